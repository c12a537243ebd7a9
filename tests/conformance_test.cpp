// Every bpf_conformance file on every engine (STYLE.md, habit 12): one value-parameterised suite
// over (file x engine). The JITs join by adding to kEngines.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "bpfvm/vm/conformance_file.hpp"
#include "bpfvm/vm/interpreter.hpp"
#ifdef BPFVM_HAVE_JIT
#include "bpfvm/jit/jit.hpp"
#endif
#include "test_support.hpp"

namespace bpfvm::vm {
namespace {

namespace fs = std::filesystem;

// The engines every conformance file runs on.
enum class Engine { Checked, Fast, Jit };

const char* engine_name(Engine e) {
    switch (e) {
        case Engine::Checked:
            return "checked";
        case Engine::Fast:
            return "fast";
        case Engine::Jit:
            return "jit";
    }
    return "?";
}

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
        cases.push_back({f, Engine::Checked});
        cases.push_back({f, Engine::Fast});
#ifdef BPFVM_HAVE_JIT
        cases.push_back({f, Engine::Jit});
#endif
    }
    return cases;
}

void PrintTo(const Case& c, std::ostream* os) {
    *os << c.file << " (" << engine_name(c.engine) << ")";
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
    RunResult r;
    if (c.engine == Engine::Jit) {
#ifdef BPFVM_HAVE_JIT
        Expected<std::unique_ptr<jit::JitProgram>> code = jit::JitProgram::compile(*program, helpers);
        ASSERT_TRUE(code) << code.error().message();
        r = (*code)->run_buffer(mem);
#endif
    } else {
        Expected<Interpreter> interp = Interpreter::create(*program, helpers);
        ASSERT_TRUE(interp) << interp.error().message();
        r = interp->run_buffer(mem, RunOptions{c.engine == Engine::Checked ? Mode::Checked : Mode::Fast, 1'000'000});
    }
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
    return name + "_" + engine_name(info.param.engine);
}

INSTANTIATE_TEST_SUITE_P(AllFiles, Conformance, ::testing::ValuesIn(all_cases()), case_name);

// The suite above is empty if the folder is missing; this makes that a failure, not a pass.
TEST(ConformanceSuite, FindsAll313Files) {
#ifdef BPFVM_HAVE_JIT
    EXPECT_EQ(all_cases().size(), 3u * 313u) << "conformance folder: " << BPFVM_CONFORMANCE_DIR;
#else
    EXPECT_EQ(all_cases().size(), 2u * 313u) << "conformance folder: " << BPFVM_CONFORMANCE_DIR;
#endif
}

}  // namespace
}  // namespace bpfvm::vm
