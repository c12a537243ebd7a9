// bpfvm_random_diff: the random-program differential test at any scale.
//
//   bpfvm_random_diff [--count N] [--seed S] [--hostile] [--keep-args] [--leaf] [--selects] [--kernel]
//                     [--save DIR]
//
// --hostile adds stray accesses (only the checked engines run those); --keep-args lets programs
// read r1-r5 after helper calls (bpfvm keeps them; the kernel does not); --leaf makes programs with
// no calls and no legacy packet loads (the JIT's leaf functions); --selects adds clang's one-write
// forward jumps (RandomProgramOptions::selects). --kernel compares every engine
// with the running kernel instead (BPF_PROG_TEST_RUN, as the Oracle tests do): the programs are
// shaped for its verifier, and those it refuses are counted, not compared.
//
// Generates N programs from seeds S, S+1, ..., runs each on every engine and compares them with
// the checked interpreter. Each disagreement is printed and, with --save, written to DIR as a
// conformance-format file to keep as a regression test (tests/data/jit_regressions/).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "bpfvm/kernel/diff.hpp"
#include "bpfvm/kernel/bpf.hpp"
#include "differential.hpp"
#include "random_program.hpp"

namespace {

struct KernelComparison : bpfvm::test::Disagreement {
    bool refused = false;  // by the kernel's verifier: nothing compared
};

// Every engine against the running kernel on one program and buffer.
KernelComparison against_kernel(const bpfvm::vm::Program& program, const std::vector<uint8_t>& buffer) {
    using namespace bpfvm;
    KernelComparison out;
    std::unique_ptr<kernel::Subject> reference = kernel::kernel_raw_program(program);
    std::vector<std::unique_ptr<kernel::Subject>> owned;
    std::vector<const kernel::Subject*> engines;
    for (jit::Engine e : jit::available_engines()) {
        Expected<std::unique_ptr<kernel::Subject>> subject = kernel::bpfvm_raw_program(program, e);
        if (!subject) {
            out.any = true;
            out.report += "  " + std::string(jit::to_string(e)) + ": " + subject.error().message() + "\n";
            continue;
        }
        owned.push_back(std::move(*subject));
        engines.push_back(owned.back().get());
    }
    const kernel::DiffResult d = kernel::diff(*reference, engines, {"buffer", {buffer, {}, 1}}, 0);
    out.refused = d.verdict == kernel::DiffResult::Verdict::Refused;
    for (const auto& [engine, difference] : d.differences) {
        out.any = true;
        out.report += "  " + engine + ": " + difference.what + ": kernel " + difference.kernel + ", " + engine + " " +
                      difference.other + "\n";
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    using namespace bpfvm;
    uint64_t count = 10000;
    uint64_t seed = 1;
    bool hostile = false;
    bool keep_args = false;
    bool leaf = false;
    bool selects = false;
    bool kernel = false;
    std::string save;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "bpfvm_random_diff: %s needs a value\n", arg.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        try {
            if (arg == "--count") {
                count = std::stoull(value());
            } else if (arg == "--seed") {
                seed = std::stoull(value());
            } else if (arg == "--hostile") {
                hostile = true;
            } else if (arg == "--keep-args") {
                keep_args = true;
            } else if (arg == "--leaf") {
                leaf = true;
            } else if (arg == "--selects") {
                selects = true;
            } else if (arg == "--kernel") {
                kernel = true;
            } else if (arg == "--save") {
                save = value();
            } else {
                std::fprintf(stderr, "bpfvm_random_diff: unknown argument '%s' (see the comment in %s)\n", arg.c_str(),
                             __FILE__);
                return 2;
            }
        } catch (const std::exception&) {
            std::fprintf(stderr, "bpfvm_random_diff: %s needs a number\n", arg.c_str());
            return 2;
        }
    }
    test::RandomProgramOptions options;
    options.hostile = hostile;
    options.reset_after_calls = !keep_args;
    options.selects = selects;
    if (leaf) {
        options.functions = 0;
        options.helper_calls = false;
        options.legacy_packet = false;
    }
    if (kernel) {
        if (hostile) {
            std::fprintf(stderr, "bpfvm_random_diff: --kernel runs only programs the kernel can verify, not --hostile\n");
            return 2;
        }
        if (!kernel::availability().ok) {
            std::fprintf(stderr, "bpfvm_random_diff: %s\n", kernel::availability().reason.c_str());
            return 2;
        }
        // (the shape of the Oracle test's programs: see tests/kernel_oracle_test.cpp)
        options.helper_calls = false;
        options.legacy_packet = false;
        options.reset_after_calls = true;
        options.stack_size = 96;
        options.init_stack = true;
        options.call_all_functions = true;
    }
    const vm::HelperTable helpers = test::mix_helpers();
    uint64_t differ = 0;
    uint64_t refused = 0;
    uint64_t instructions = 0;
    const auto start = std::chrono::steady_clock::now();
    for (uint64_t s = seed; s < seed + count; ++s) {
        Expected<vm::Program> program = vm::Program::from_raw(test::random_program(s, options));
        if (!program) {
            std::printf("seed %llu: generated an invalid program: %s\n", static_cast<unsigned long long>(s),
                        program.error().message().c_str());
            ++differ;
            continue;
        }
        instructions += program->size();
        const std::vector<uint8_t> buffer = test::random_buffer(s, options.buffer_size);
        test::Disagreement d;
        if (kernel) {
            const KernelComparison k = against_kernel(*program, buffer);
            refused += k.refused ? 1 : 0;
            d = k;
        } else {
            d = test::compare_engines(*program, helpers, buffer, 1'000'000);
        }
        if (!d.any) {
            continue;
        }
        ++differ;
        std::printf("seed %llu:\n%s", static_cast<unsigned long long>(s), d.report.c_str());
        if (!save.empty()) {
            std::filesystem::create_directories(save);
            const std::string path = save + "/seed-" + std::to_string(s) + (hostile ? "-hostile" : "") + ".data";
            std::ofstream(path) << test::as_test_file(*program, buffer,
                                                      "bpfvm_random_diff seed " + std::to_string(s) + "\n" + d.report);
            std::printf("saved %s\n", path.c_str());
        }
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("%llu programs (%llu instructions, %.1f s): %llu agree, %llu differ",
                static_cast<unsigned long long>(count), static_cast<unsigned long long>(instructions), seconds,
                static_cast<unsigned long long>(count - differ - refused), static_cast<unsigned long long>(differ));
    if (kernel) {
        std::printf(", %llu refused by the kernel", static_cast<unsigned long long>(refused));
    }
    std::printf("\n");
    return differ == 0 ? 0 : 1;
}
