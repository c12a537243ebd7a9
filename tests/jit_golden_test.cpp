// Golden listings: the x86-64 code (asmjit's logger text, eBPF interleaved) for one small program
// per instruction kind, checked in under tests/golden/x86_64 and compared. A file holds the
// program (-- asm), how to compile it (-- options: verified, checked, blind) and the listing.
// After an intended change of the code, BPFVM_UPDATE_GOLDEN=1 rewrites the listings; review the
// diff before committing it.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "bpfvm/jit/jit.hpp"
#include "bpfvm/vm/assembler.hpp"
#include "test_support.hpp"

namespace bpfvm::jit {
namespace {

namespace fs = std::filesystem;

uint64_t add_all(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e, vm::CallContext*) {
    return a + b + c + d + e;
}

struct Golden {
    std::string asm_text;
    std::string options;
    std::string listing;
};

Golden parse(const std::string& text) {
    Golden g;
    std::string* section = nullptr;
    std::size_t start = 0;
    while (start < text.size()) {
        std::size_t end = text.find('\n', start);
        end = end == std::string::npos ? text.size() : end + 1;
        const std::string line = text.substr(start, end - start);
        start = end;
        if (line == "-- asm\n") {
            section = &g.asm_text;
        } else if (line == "-- options\n") {
            section = &g.options;
        } else if (line == "-- listing\n") {
            section = &g.listing;
        } else if (section != nullptr) {
            *section += line;
        }
    }
    return g;
}

// Host functions (helpers, hooks) are called through r10 or r11 loaded with their address, which
// differs from run to run: shown as <address>.
std::string normalise(const std::string& listing) {
    static const std::regex address("mov (r10|r11), [0-9]+\ncall (r10|r11)\n");
    return std::regex_replace(listing, address, "mov $1, <address>\ncall $2\n");
}

std::vector<fs::path> golden_files() {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(fs::path(BPFVM_SOURCE_DIR) / "tests/golden/x86_64")) {
        files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    return files;
}

TEST(JitGolden, ListingsMatchTheCheckedInCode) {
    const bool update = std::getenv("BPFVM_UPDATE_GOLDEN") != nullptr;
    vm::HelperTable helpers;
    ASSERT_TRUE(helpers.add(1, "add_all", add_all));
    const std::vector<fs::path> files = golden_files();
    ASSERT_GE(files.size(), 20u);
    for (const fs::path& path : files) {
        SCOPED_TRACE(path.filename().string());
        const Golden g = parse(test::read_file(path.string()));
        Expected<std::vector<vm::RawInsn>> raw = vm::assemble(g.asm_text);
        ASSERT_TRUE(raw) << raw.error().message();
        Expected<vm::Program> program = vm::Program::from_raw(*raw);
        ASSERT_TRUE(program) << program.error().message();
        JitOptions options;
        options.keep_listing = true;
        options.checked = g.options.find("checked") != std::string::npos;
        options.blind_constants = g.options.find("blind") != std::string::npos;
        options.blinding_seed = 1;
        // Code for Intel's cores unless the file says `other`: the same listing on any machine.
        options.tuning = g.options.find("other") != std::string::npos ? JitOptions::Tuning::Other
                                                                       : JitOptions::Tuning::Intel;
        Expected<std::unique_ptr<JitProgram>> code = JitProgram::compile(*program, helpers, options);
        ASSERT_TRUE(code) << code.error().message();
        const std::string listing = normalise((*code)->listing());
        if (update) {
            std::ofstream(path) << "-- asm\n" << g.asm_text << "-- options\n" << g.options << "-- listing\n" << listing;
            continue;
        }
        EXPECT_EQ(listing, g.listing) << "BPFVM_UPDATE_GOLDEN=1 rewrites the listings after an intended change";
    }
}

// The golden programs together use every form of the opcode table.
TEST(JitGolden, CoverEveryInstructionForm) {
    std::set<vm::Form> forms;
    for (const fs::path& path : golden_files()) {
        Expected<std::vector<vm::RawInsn>> raw = vm::assemble(parse(test::read_file(path.string())).asm_text);
        ASSERT_TRUE(raw) << path;
        Expected<vm::Program> program = vm::Program::from_raw(*raw);
        ASSERT_TRUE(program) << path;
        for (const vm::Instruction& insn : program->instructions()) {
            forms.insert(insn.info().form);
        }
    }
    for (const vm::OpInfo& row : vm::kOpTable) {
        EXPECT_TRUE(forms.count(row.form)) << row.name << ": no golden program has its form";
    }
}

}  // namespace
}  // namespace bpfvm::jit
