// The random-program differential test: generated programs on every engine against the checked
// interpreter, the generator's coverage of the instruction set, and the mismatches kept as
// regression tests. BPFVM_RANDOM_PROGRAMS=N changes how many programs run (bpfvm_random_diff
// runs millions).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <set>

#include "bpfvm/vm/conformance_file.hpp"
#include "bpfvm/vm/interpreter.hpp"
#include "random/differential.hpp"
#include "random/random_program.hpp"
#include "test_support.hpp"

namespace bpfvm::test {
namespace {

uint64_t program_count(uint64_t fallback) {
    const char* env = std::getenv("BPFVM_RANDOM_PROGRAMS");
    return env != nullptr ? std::strtoull(env, nullptr, 10) : fallback;
}

void agree_on(uint64_t first_seed, uint64_t count, const RandomProgramOptions& options) {
    const vm::HelperTable helpers = mix_helpers();
    unsigned failures = 0;
    for (uint64_t seed = first_seed; seed < first_seed + count && failures < 5; ++seed) {
        Expected<vm::Program> program = vm::Program::from_raw(random_program(seed, options));
        ASSERT_TRUE(program) << "seed " << seed << ": " << program.error().message();
        const std::vector<uint8_t> buffer = random_buffer(seed, options.buffer_size);
        const Disagreement d = compare_engines(*program, helpers, buffer, 1'000'000);
        if (d.any) {
            ++failures;
            ADD_FAILURE() << "seed " << seed << ":\n" << d.report << as_test_file(*program, buffer, "");
        }
    }
}

TEST(RandomPrograms, EveryEngineAgreesOnValidPrograms) {
    agree_on(1, program_count(2000), {});
}

TEST(RandomPrograms, EveryEngineAgreesWhenProgramsReadR1ToR5AfterHelperCalls) {
    RandomProgramOptions options;
    options.reset_after_calls = false;
    agree_on(2'000'000, program_count(2000) / 2, options);
}

// With clang's one-write forward jumps, which the JIT lowers as setccs, cmovs and zero idioms.
TEST(RandomPrograms, EveryEngineAgreesOnProgramsWithSelects) {
    RandomProgramOptions options;
    options.selects = true;
    agree_on(5'000'000, program_count(2000) / 2, options);
}

// No calls and no legacy packet loads: the JIT compiles these as leaf functions (no RunState,
// frame on the native stack).
TEST(RandomPrograms, EveryEngineAgreesOnLeafPrograms) {
    RandomProgramOptions options;
    options.functions = 0;
    options.helper_calls = false;
    options.legacy_packet = false;
    agree_on(3'000'000, program_count(2000) / 2, options);
}

TEST(RandomPrograms, CheckedEnginesAgreeOnHostilePrograms) {
    RandomProgramOptions options;
    options.hostile = true;
    agree_on(1'000'000, program_count(2000) / 2, options);
}

// Budgets short of what a run charges: the checked engines stop at the same charge point, with
// the same memory and the same charge taken.
TEST(RandomPrograms, CheckedEnginesRunOutOfBudgetAtTheSamePlace) {
    const vm::HelperTable helpers = mix_helpers();
    unsigned stopped = 0;
    for (uint64_t seed = 4'000'000; seed < 4'000'000 + program_count(2000) / 10; ++seed) {
        Expected<vm::Program> program = vm::Program::from_raw(random_program(seed));
        ASSERT_TRUE(program);
        Expected<vm::Interpreter> interp = vm::Interpreter::create(*program, helpers);
        ASSERT_TRUE(interp);
        const std::vector<uint8_t> buffer = random_buffer(seed, RandomProgramOptions{}.buffer_size);
        std::vector<uint8_t> mem = buffer;
        const vm::RunResult full = interp->run_buffer(mem, {vm::Mode::Checked, 0});
        ASSERT_TRUE(full.ok()) << "seed " << seed;
        for (uint64_t k = 1; k < 4; ++k) {
            const uint64_t budget = std::max<uint64_t>(1, full.instructions * k / 4);
            mem = buffer;
            stopped += interp->run_buffer(mem, {vm::Mode::Checked, budget}).ok() ? 0 : 1;
            const Disagreement d = compare_engines(*program, helpers, buffer, budget);
            ASSERT_FALSE(d.any) << "seed " << seed << ", budget " << budget << ":\n" << d.report;
        }
    }
    EXPECT_GT(stopped, 0u);  // the budgets did stop runs
}

TEST(RandomPrograms, ValidProgramsFinishWithoutTrapping) {
    const vm::HelperTable helpers = mix_helpers();
    for (uint64_t seed = 1; seed <= 200; ++seed) {
        Expected<vm::Program> program = vm::Program::from_raw(random_program(seed));
        ASSERT_TRUE(program);
        Expected<vm::Interpreter> interp = vm::Interpreter::create(*program, helpers);
        ASSERT_TRUE(interp);
        std::vector<uint8_t> buffer = random_buffer(seed, 64);
        const vm::RunResult r = interp->run_buffer(buffer, {vm::Mode::Checked, 1'000'000});
        ASSERT_TRUE(r.ok()) << "seed " << seed << ": " << r.trap->message();
    }
}

TEST(RandomPrograms, SameSeedSameProgramAndHostileOnesTrap) {
    EXPECT_EQ(random_program(42), random_program(42));
    EXPECT_NE(random_program(42), random_program(43));
    RandomProgramOptions options;
    options.hostile = true;
    unsigned trapped = 0;
    for (uint64_t seed = 1; seed <= 100; ++seed) {
        Expected<vm::Program> program = vm::Program::from_raw(random_program(seed, options));
        ASSERT_TRUE(program);
        Expected<vm::Interpreter> interp = vm::Interpreter::create(*program, mix_helpers());
        std::vector<uint8_t> buffer = random_buffer(seed, 64);
        trapped += interp->run_buffer(buffer, {vm::Mode::Checked, 1'000'000}).ok() ? 0 : 1;
    }
    EXPECT_GT(trapped, 30u);  // stray accesses are common enough to reach
}

TEST(RandomPrograms, GeneratorCoversEveryAluJumpMemoryAndCallForm) {
    std::set<vm::Op> seen;
    for (uint64_t seed = 1; seed <= 500; ++seed) {
        Expected<vm::Program> program = vm::Program::from_raw(random_program(seed));
        ASSERT_TRUE(program);
        for (std::size_t pc = 0; pc < program->size(); pc += (*program)[pc].slots()) {
            seen.insert((*program)[pc].op);
        }
    }
    for (const vm::OpInfo& row : vm::kOpTable) {
        const bool wanted =
            row.form != vm::Form::CallBtf && !(row.form == vm::Form::LoadImm64 && row.op != vm::Op::LddwImm);
        if (wanted) {
            EXPECT_TRUE(seen.count(row.op)) << row.name << " never generated";
        }
    }
}

// Every mismatch the random programs found, kept: they must agree from now on.
TEST(JitRegressions, KeptMismatchesAgree) {
    const std::filesystem::path dir = std::filesystem::path(BPFVM_TESTDATA_DIR) / "jit_regressions";
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
        files.push_back(e.path());
    }
    ASSERT_FALSE(files.empty()) << dir;
    for (const auto& path : files) {
        Expected<vm::ConformanceTest> t = vm::parse_conformance(read_file(path.string()), path.string());
        ASSERT_TRUE(t) << t.error().message();
        Expected<std::vector<vm::RawInsn>> raw = t->instructions();
        ASSERT_TRUE(raw) << raw.error().message();
        Expected<vm::Program> program = vm::Program::from_raw(*raw);
        ASSERT_TRUE(program) << program.error().message();
        const Disagreement d = compare_engines(*program, mix_helpers(), t->mem, 1'000'000);
        EXPECT_FALSE(d.any) << path << ":\n" << d.report;
    }
}

}  // namespace
}  // namespace bpfvm::test
