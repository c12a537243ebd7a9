// Every object in ../shared/ebpf-samples either loads (every program decoded, relocated and
// validated) or is refused with a message that names the file; the malformed ones in invalid/
// are all refused. Prints how many load.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "bpfvm/loader/object.hpp"

namespace bpfvm::loader {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> sample_files(const fs::path& dir) {
    std::vector<fs::path> files;
    if (!fs::is_directory(dir)) {
        return files;
    }
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
        if (e.is_regular_file() && (e.path().extension() == ".o" || e.path().parent_path().filename() == "invalid")) {
            files.push_back(e.path());
        }
    }
    std::sort(files.begin(), files.end());
    return files;
}

TEST(LoaderSamples, EveryObjectLoadsOrIsRefusedPrecisely) {
    const fs::path dir = fs::path(BPFVM_SHARED_DIR) / "ebpf-samples";
    const std::vector<fs::path> files = sample_files(dir);
    ASSERT_GE(files.size(), 140u) << "ebpf-samples not found at " << dir;
    // Two files in invalid/ are well-formed objects: one has a DWARF section renamed to "info"
    // (harmless to an eBPF loader), the other is a long tail-call chain that made a verifier
    // time out. They must load; the other nine are malformed and must be refused.
    const std::set<std::string> well_formed = {"ef2e42c0bfcf4dab6b9c3926759365b6dfa73634",
                                               "timeout-29db93548c671165313b314d4f83a3eefa24df37"};
    unsigned loaded = 0, refused = 0, programs = 0, maps = 0, invalid_refused = 0;
    for (const fs::path& file : files) {
        const bool invalid =
            file.parent_path().filename() == "invalid" && well_formed.count(file.filename().string()) == 0;
        Expected<Object> obj = load_object_file(file.string());
        if (obj) {
            EXPECT_FALSE(invalid) << file << " is malformed but loaded";
            ++loaded;
            programs += static_cast<unsigned>(obj->programs.size());
            maps += static_cast<unsigned>(obj->maps.size());
            for (const ProgramInfo& p : obj->programs) {
                EXPECT_TRUE(vm::Program::from_raw(p.insns).has_value()) << file << " " << p.name;
            }
        } else {
            ++refused;
            invalid_refused += invalid ? 1 : 0;
            const std::string m = obj.error().message();
            EXPECT_EQ(m.rfind(file.string(), 0), 0u) << "the error does not name the file: " << m;
            EXPECT_GT(m.size(), file.string().size() + 10) << m;
            std::printf("refused: %s\n", m.c_str());
        }
    }
    std::printf("ebpf-samples: %u objects load (%u programs, %u maps), %u refused (%u of them in invalid/)\n", loaded,
                programs, maps, refused, invalid_refused);
    EXPECT_EQ(invalid_refused, 9u);
}

}  // namespace
}  // namespace bpfvm::loader
