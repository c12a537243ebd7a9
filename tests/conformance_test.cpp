// Every bpf_conformance file on every engine (STYLE.md, habit 12): one value-parameterised suite
// over (file x engine): every engine this build has (jit::available_engines).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "bpfvm/vm/conformance_file.hpp"
#include "bpfvm/jit/engine.hpp"
#include "bpfvm/vm/interpreter.hpp"
#include "test_support.hpp"

namespace bpfvm::vm {
namespace {

namespace fs = std::filesystem;

using jit::Engine;

struct Case {
    std::string file;
    Engine engine;
};

std::vector<Case> all_cases() {
    std::vector<std::string> files;
    const fs::path dir(BPFVM_CONFORMANCE_DIR);
    if (fs::is_directory(dir)) {
        for (const auto& e : fs::directory_iterator(dir)) {
            if (e.path().extension() == ".data") {
                files.push_back(e.path().filename().string());
            }
        }
    }
    std::sort(files.begin(), files.end());
    std::vector<Case> cases;
    for (const std::string& f : files) {
        for (Engine e : jit::available_engines()) {
            cases.push_back({f, e});
        }
    }
    return cases;
}

void PrintTo(const Case& c, std::ostream* os) {
    *os << c.file << " (" << jit::to_string(c.engine) << ")";
}

class Conformance : public ::testing::TestWithParam<Case> {};

TEST_P(Conformance, MatchesExpectedResult) {
    const Case& c = GetParam();
    const std::string path = std::string(BPFVM_CONFORMANCE_DIR) + "/" + c.file;
    const std::string text = test::read_file(path);
    Expected<ConformanceTest> parsed = parse_conformance(text, c.file);
    ASSERT_TRUE(parsed) << parsed.error().message();
    ASSERT_TRUE(parsed->runnable()) << c.file << " has no program or no expected result";
    Expected<std::vector<RawInsn>> raw = parsed->instructions();
    ASSERT_TRUE(raw) << raw.error().message();
    Expected<Program> program = Program::from_raw(*raw);
    ASSERT_TRUE(program) << program.error().message();
    const HelperTable helpers = test::conformance_helpers();
    std::vector<uint8_t> mem = parsed->mem;
    Expected<jit::Executable> exe = jit::Executable::create(*program, helpers, c.engine);
    ASSERT_TRUE(exe) << exe.error().message();
    const RunResult r = exe->run_buffer(mem, 1'000'000);
    ASSERT_TRUE(r.ok()) << r.trap->message();
    ASSERT_TRUE(parsed->result.has_value());
    EXPECT_EQ(r.r0, *parsed->result) << std::hex << "r0 = 0x" << r.r0 << ", expected 0x" << *parsed->result;
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
    std::string name = info.param.file.substr(0, info.param.file.size() - 5);
    for (char& ch : name) {
        if (!std::isalnum(static_cast<unsigned char>(ch))) {
            ch = '_';
        }
    }
    std::string engine(jit::to_string(info.param.engine));
    std::replace(engine.begin(), engine.end(), '-', '_');
    return name + "_" + engine;
}

INSTANTIATE_TEST_SUITE_P(AllFiles, Conformance, ::testing::ValuesIn(all_cases()), case_name);

// The suite above is empty if the folder is missing; this makes that a failure, not a pass.
TEST(ConformanceSuite, FindsAll313Files) {
    EXPECT_EQ(all_cases().size(), jit::available_engines().size() * 313u)
        << "conformance folder: " << BPFVM_CONFORMANCE_DIR;
}

}  // namespace
}  // namespace bpfvm::vm
