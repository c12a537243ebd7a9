// The kernel as oracle: the harness itself (a deliberately wrong engine is caught, with the
// exact difference), bpfvm's test-run input rules against the running kernel's, and the
// conformance suite, the test programs and random programs run in both and compared. Every test
// here needs bpf() (root on this project's machines); where it is unavailable each one skips with
// the reason.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "bpfvm/helpers/test_run.hpp"
#include "bpfvm/kernel/bpf.hpp"
#include "bpfvm/kernel/diff.hpp"
#include "bpfvm/vm/assembler.hpp"
#include "bpfvm/vm/conformance_file.hpp"
#include "random/random_program.hpp"
#include "test_support.hpp"

namespace bpfvm::kernel {
namespace {

#define NEEDS_BPF()                                \
    do {                                           \
        if (!availability().ok) {                  \
            GTEST_SKIP() << availability().reason; \
        }                                          \
    } while (0)

vm::Program assembled(const std::string& text) {
    Expected<std::vector<vm::RawInsn>> raw = vm::assemble(text);
    EXPECT_TRUE(raw) << raw.error().message();
    Expected<vm::Program> p = vm::Program::from_raw(*raw);
    EXPECT_TRUE(p) << p.error().message();
    return *p;
}

template <typename T>
T take(Expected<T> e) {
    EXPECT_TRUE(e) << e.error().message();
    return std::move(*e);
}

std::vector<uint8_t> file_bytes(const std::string& path) {
    const std::string s = test::read_file(path);
    return {s.begin(), s.end()};
}

// A test double: an engine that is wrong on purpose, flipping one bit of r0 or of a packet byte.
class Flipping : public Subject {
public:
    enum class What { Retval, PacketByte };
    Flipping(std::unique_ptr<Subject> inner, What what, std::size_t byte = 0)
        : inner_(std::move(inner)), what_(what), byte_(byte) {}
    [[nodiscard]] const std::string& name() const override { return name_; }
    [[nodiscard]] Outcome run(const DiffInput& input, uint32_t repeat) const override {
        Outcome o = inner_->run(input, repeat);
        if (what_ == What::Retval) {
            o.retval ^= 1;
        } else if (byte_ < o.data_out.size()) {
            o.data_out[byte_] ^= 0x10;
        }
        return o;
    }

private:
    std::unique_ptr<Subject> inner_;
    What what_;
    std::size_t byte_;
    std::string name_ = "flipped";
};

TEST(Oracle, AWrongEngineIsReportedWithTheExactDifference) {
    NEEDS_BPF();
    // r0 = 1 + 2, and the input's byte 2 doubled.
    const vm::Program p = assembled("ldxb %r3, [%r1+2]\nadd %r3, %r3\nstxb [%r1+2], %r3\nmov %r0, 1\nadd %r0, 2\nexit");
    const DiffInput in{"four bytes", {{1, 2, 3, 4}, {}, 1}};
    std::unique_ptr<Subject> kernel = kernel_raw_program(p);
    std::unique_ptr<Subject> right = take(bpfvm_raw_program(p, jit::Engine::InterpChecked));
    Flipping wrong_r0(take(bpfvm_raw_program(p, jit::Engine::InterpChecked)), Flipping::What::Retval);
    Flipping wrong_packet(take(bpfvm_raw_program(p, jit::Engine::InterpChecked)), Flipping::What::PacketByte, 2);

    const DiffResult ok = diff(*kernel, {right.get()}, in, 0);
    EXPECT_EQ(ok.verdict, DiffResult::Verdict::Agree);
    EXPECT_TRUE(ok.differences.empty());
    EXPECT_EQ(ok.outcomes[0].second.retval, 3u);
    EXPECT_EQ(ok.outcomes[0].second.data_out, (std::vector<uint8_t>{1, 2, 6, 4}));

    const DiffResult r0 = diff(*kernel, {right.get(), &wrong_r0}, in, 0);
    EXPECT_EQ(r0.verdict, DiffResult::Verdict::Differ);
    ASSERT_EQ(r0.differences.size(), 1u);
    EXPECT_EQ(r0.differences[0].first, "flipped");
    EXPECT_EQ(r0.differences[0].second.what, "retval");
    EXPECT_EQ(r0.differences[0].second.kernel, "3 (0x3)");
    EXPECT_EQ(r0.differences[0].second.other, "2 (0x2)");

    const DiffResult pkt = diff(*kernel, {&wrong_packet}, in, 0);
    ASSERT_EQ(pkt.differences.size(), 1u);
    EXPECT_EQ(pkt.differences[0].second.what, "packet at byte 2");
    EXPECT_EQ(pkt.differences[0].second.kernel, "0604");
    EXPECT_EQ(pkt.differences[0].second.other, "1604");
}

TEST(Oracle, AWrongEngineOnAnObjectIsReportedToo) {
    NEEDS_BPF();
    const std::string path = std::string(BPFVM_TEST_PROGS_DIR) + "/xdp_rewrite.v3.o";
    const std::vector<uint8_t> bytes = file_bytes(path);
    auto object = KernelObject::open(bytes, path);
    ASSERT_TRUE(object) << object.error().message();
    std::shared_ptr<const KernelObject> shared = std::move(*object);
    std::unique_ptr<Subject> kernel = kernel_program(shared, bytes, path, "xdp_swap");
    Flipping wrong(take(bpfvm_program(bytes, path, "xdp_swap", jit::Engine::Jit)), Flipping::What::PacketByte, 0);
    const DiffInput in = default_inputs(vm::ProgramType::Xdp).front();
    const DiffResult d = diff(*kernel, {&wrong}, in, 0);
    EXPECT_EQ(d.verdict, DiffResult::Verdict::Differ);
    ASSERT_EQ(d.differences.size(), 1u);
    EXPECT_EQ(d.differences[0].second.what, "packet at byte 0");
    // (xdp_swap swapped the MAC addresses: the kernel's packet starts with the source's 02.)
    EXPECT_EQ(d.differences[0].second.kernel.substr(0, 2), "02");
    EXPECT_EQ(d.differences[0].second.other.substr(0, 2), "12");
}

// bpfvm refuses exactly the inputs the kernel refuses, with its errno.
TEST(Oracle, TestRunInputRulesAreTheKernels) {
    NEEDS_BPF();
    const vm::RawInsn ret2[] = {{0xb7, 0, 0, 0, 2}, {0x95, 0, 0, 0, 0}};
    struct Case {
        vm::ProgramType type;
        helpers::TestInput input;
        std::string what;
    };
    std::vector<Case> cases;
    auto eth = [](std::size_t size, uint16_t type) {
        std::vector<uint8_t> p(size, 0x5a);
        if (size >= 14) {
            std::fill(p.begin(), p.begin() + 12, 0);
            p[12] = static_cast<uint8_t>(type >> 8);
            p[13] = static_cast<uint8_t>(type);
        }
        return p;
    };
    for (vm::ProgramType t : {vm::ProgramType::Xdp, vm::ProgramType::SchedCls, vm::ProgramType::SocketFilter}) {
        for (std::size_t size : {0u, 10u, 13u, 14u, 33u, 34u, 53u, 54u, 60u, 3520u, 3600u, 3712u, 3713u, 9000u}) {
            for (uint16_t type : {0x0800, 0x86dd, 0x0806, 0x8100}) {
                cases.push_back({t,
                                 {eth(size, type), {}, 1},
                                 "packet of " + std::to_string(size) + " bytes, ethertype " + std::to_string(type)});
            }
        }
    }
    // __sk_buff: each field set alone, and a few values of the checked ones.
    for (vm::ProgramType t : {vm::ProgramType::SchedCls, vm::ProgramType::SocketFilter}) {
        for (std::size_t off = 0; off < 192; off += 4) {
            std::vector<uint8_t> ctx(192, 0);
            ctx[off] = 1;
            cases.push_back({t, {eth(64, 0x0800), ctx, 1}, "__sk_buff byte " + std::to_string(off) + " = 1"});
        }
        for (uint32_t wire : {10u, 49u, 50u, 63u, 64u, 65536u, 65537u}) {
            std::vector<uint8_t> ctx(192, 0);
            std::memcpy(ctx.data() + 160, &wire, 4);
            cases.push_back({t, {eth(64, 0x0800), ctx, 1}, "wire_len " + std::to_string(wire)});
        }
        for (uint32_t ifindex : {1u, 77u}) {
            std::vector<uint8_t> ctx(192, 0);
            std::memcpy(ctx.data() + 40, &ifindex, 4);
            cases.push_back({t, {eth(64, 0x0800), ctx, 1}, "ifindex " + std::to_string(ifindex)});
        }
        std::vector<uint8_t> longer(200, 0);
        cases.push_back({t, {eth(64, 0x0800), longer, 1}, "__sk_buff of 200 zero bytes"});
        longer[196] = 1;
        cases.push_back({t, {eth(64, 0x0800), longer, 1}, "__sk_buff of 200 bytes, not zero past 192"});
        cases.push_back({t, {eth(64, 0x0800), std::vector<uint8_t>(12, 0), 1}, "__sk_buff of 12 bytes"});
    }
    // xdp_md.
    auto md = [](uint32_t data, uint32_t end, uint32_t meta, uint32_t ifindex, uint32_t rxq) {
        std::vector<uint8_t> c(24, 0);
        const uint32_t v[5] = {data, end, meta, ifindex, rxq};
        std::memcpy(c.data(), v, sizeof v);
        return c;
    };
    for (auto ctx : {md(0, 64, 0, 0, 0), md(4, 64, 0, 0, 0), md(8, 64, 0, 1, 0), md(4, 64, 2, 0, 0), md(0, 64, 0, 0, 1),
                     md(0, 64, 0, 77, 0), md(70, 64, 0, 0, 0)}) {
        cases.push_back({vm::ProgramType::Xdp, {eth(64, 0x0800), ctx, 1}, "an xdp_md"});
    }
    // Syscall and raw tracepoint programs.
    for (std::size_t size : {0u, 1u, 100u, 65535u, 65536u}) {
        cases.push_back({vm::ProgramType::Syscall,
                         {{}, std::vector<uint8_t>(size, 1), 0},
                         "syscall context of " + std::to_string(size)});
    }
    cases.push_back({vm::ProgramType::Syscall, {{}, std::vector<uint8_t>(8, 1), 1}, "syscall with repeat"});
    cases.push_back({vm::ProgramType::Syscall, {eth(64, 0x0800), {}, 0}, "syscall with a packet"});
    for (std::size_t size : {0u, 4u, 8u, 96u, 100u}) {
        cases.push_back({vm::ProgramType::RawTracepoint,
                         {{}, std::vector<uint8_t>(size, 1), 0},
                         "raw tracepoint arguments of " + std::to_string(size)});
    }
    cases.push_back({vm::ProgramType::RawTracepoint, {{}, std::vector<uint8_t>(8, 1), 1}, "raw tracepoint repeat"});

    unsigned refused = 0;
    for (const Case& c : cases) {
        LoadOptions lo;
        lo.prog_flags = c.type == vm::ProgramType::Syscall ? 16 : 0;  // sleepable
        lo.log_level = 0;
        Expected<Loaded> prog = load_program(c.type, ret2, lo);
        ASSERT_TRUE(prog) << prog.error().message();
        const bool packets = c.type != vm::ProgramType::Syscall && c.type != vm::ProgramType::RawTracepoint;
        TestRunInput t;
        t.data = c.input.data;
        t.ctx = c.input.ctx;
        t.repeat = c.input.repeat;
        t.data_out_size = packets ? static_cast<uint32_t>(c.input.data.size() + 4096) : 0;
        const auto kernel = test_run_raw(prog->fd.get(), t);
        const auto ours = helpers::refuse_input(c.type, c.input);
        const int kernel_err = std::holds_alternative<TestRunError>(kernel) ? std::get<TestRunError>(kernel).err : 0;
        EXPECT_EQ(ours ? ours->err : 0, kernel_err)
            << vm::to_string(c.type) << ", " << c.what << (ours ? ": bpfvm says " + ours->reason : ": bpfvm accepts");
        refused += kernel_err != 0 ? 1 : 0;
    }
    EXPECT_GT(refused, 20u);  // the grid does hit the rules
    EXPECT_LT(refused, cases.size() - 20);
}

TEST(Oracle, ConformanceSuiteAgreesWithTheKernel) {
    NEEDS_BPF();
    std::set<std::string> refused;
    unsigned agree = 0;
    for (const auto& entry : std::filesystem::directory_iterator(BPFVM_CONFORMANCE_DIR)) {
        if (entry.path().extension() != ".data") {
            continue;
        }
        const std::string name = entry.path().filename().string();
        Expected<vm::ConformanceTest> t = vm::parse_conformance(test::read_file(entry.path().string()), name);
        ASSERT_TRUE(t) << t.error().message();
        Expected<std::vector<vm::RawInsn>> raw = t->instructions();
        ASSERT_TRUE(raw);
        Expected<vm::Program> p = vm::Program::from_raw(*raw);
        ASSERT_TRUE(p);
        std::unique_ptr<Subject> kernel = kernel_raw_program(*p);
        std::vector<std::unique_ptr<Subject>> owned;
        std::vector<const Subject*> engines;
        for (jit::Engine e : jit::available_engines()) {
            owned.push_back(take(bpfvm_raw_program(*p, e)));
            engines.push_back(owned.back().get());
        }
        const DiffResult d = diff(*kernel, engines, {"mem", {t->mem, {}, 1}}, 0);
        for (const auto& [engine, difference] : d.differences) {
            ADD_FAILURE() << name << ": " << engine << ": " << difference.what << ": kernel " << difference.kernel
                          << ", " << engine << " " << difference.other;
        }
        if (d.verdict == DiffResult::Verdict::Refused) {
            refused.insert(name);
        } else if (d.verdict == DiffResult::Verdict::Agree) {
            ++agree;
            EXPECT_EQ(d.outcomes[0].second.retval, t->result) << name << ": the kernel's own answer";
        }
    }
    // The kernel refuses constant shifts out of range (RFC 9669 masks them) and has no callx.
    const std::set<std::string> expected = {"arsh32-imm-high.data", "arsh32-imm-neg.data", "arsh64-imm-high.data",
                                            "arsh64-imm-neg.data",  "callx.data",          "lsh32-imm-high.data",
                                            "lsh32-imm-neg.data",   "lsh64-imm-high.data", "lsh64-imm-neg.data",
                                            "rsh32-imm-high.data",  "rsh32-imm-neg.data",  "rsh64-imm-high.data",
                                            "rsh64-imm-neg.data"};
    EXPECT_EQ(refused, expected);
    EXPECT_EQ(agree, 300u);
}

// Every program of tests/progs on the default inputs (packets, contexts or buffers by type).
TEST(Oracle, TestProgramsAgreeWithTheKernel) {
    NEEDS_BPF();
    unsigned agree = 0;
    std::set<std::string> refused_programs;
    for (const auto& entry : std::filesystem::directory_iterator(BPFVM_TEST_PROGS_DIR)) {
        if (entry.path().extension() != ".o") {
            continue;
        }
        const std::string path = entry.path().string();
        const std::string file = entry.path().filename().string();
        const std::vector<uint8_t> bytes = file_bytes(path);
        auto object = KernelObject::open(bytes, path);
        ASSERT_TRUE(object) << object.error().message();
        std::shared_ptr<const KernelObject> shared = std::move(*object);
        Expected<loader::Object> obj = loader::load_object(bytes, path, kernel_like_load_options());
        if (!obj) {
            // bpfvm refuses it: so must the kernel, every program.
            for (const Verdict& v : shared->verdicts()) {
                EXPECT_FALSE(v.accepted) << file << ": bpfvm refuses the object (" << obj.error().message()
                                         << ") but the kernel accepts " << v.program;
            }
            refused_programs.insert(file);
            continue;
        }
        for (const loader::ProgramInfo& p : obj->programs) {
            std::unique_ptr<Subject> kernel = kernel_program(shared, bytes, path, p.name);
            std::vector<std::unique_ptr<Subject>> owned;
            std::vector<const Subject*> engines;
            for (jit::Engine e : jit::available_engines()) {
                owned.push_back(take(bpfvm_program(bytes, path, p.name, e)));
                engines.push_back(owned.back().get());
            }
            for (const DiffInput& in : default_inputs(p.type)) {
                const DiffResult d = diff(*kernel, engines, in, 0);
                for (const auto& [engine, difference] : d.differences) {
                    ADD_FAILURE() << file << " " << p.name << " on " << in.name << ": " << engine << ": "
                                  << difference.what << ": kernel " << difference.kernel << ", " << engine << " "
                                  << difference.other;
                }
                agree += d.verdict == DiffResult::Verdict::Agree ? 1 : 0;
                if (d.verdict == DiffResult::Verdict::Refused) {
                    refused_programs.insert(file + " " + p.name);
                }
            }
        }
    }
    EXPECT_GT(agree, 100u);
    std::string refused;
    for (const std::string& r : refused_programs) {
        refused += " " + r;
    }
    RecordProperty("refused_by_the_kernel", refused);
}

// Random programs shaped for the kernel's verifier (no helpers, no legacy packet loads, r1-r5 reset
// after calls, 96 bytes of stack per function, every function called): those it accepts agree.
TEST(Oracle, RandomProgramsTheKernelAcceptsAgree) {
    NEEDS_BPF();
    test::RandomProgramOptions options;
    options.helper_calls = false;
    options.legacy_packet = false;
    options.reset_after_calls = true;
    options.stack_size = 96;            // the kernel's 512 bytes for the whole call chain
    options.init_stack = true;          // its frames are not zeroed
    options.call_all_functions = true;  // and it refuses unreachable code
    unsigned accepted = 0;
    const unsigned count = 300;
    for (uint64_t seed = 7'000'000; seed < 7'000'000 + count; ++seed) {
        Expected<vm::Program> p = vm::Program::from_raw(test::random_program(seed, options));
        ASSERT_TRUE(p);
        std::unique_ptr<Subject> kernel = kernel_raw_program(*p);
        std::vector<std::unique_ptr<Subject>> owned;
        std::vector<const Subject*> engines;
        for (jit::Engine e : jit::available_engines()) {
            owned.push_back(take(bpfvm_raw_program(*p, e)));
            engines.push_back(owned.back().get());
        }
        const DiffResult d =
            diff(*kernel, engines, {"buffer", {test::random_buffer(seed, options.buffer_size), {}, 1}}, 0);
        for (const auto& [engine, difference] : d.differences) {
            ADD_FAILURE() << "seed " << seed << ": " << engine << ": " << difference.what << ": kernel "
                          << difference.kernel << ", " << engine << " " << difference.other;
        }
        accepted += d.verdict != DiffResult::Verdict::Refused ? 1 : 0;
    }
    EXPECT_GT(accepted, count / 10) << "the kernel accepted too few random programs to compare";
    RecordProperty("accepted_by_the_kernel", std::to_string(accepted) + " of " + std::to_string(count));
}

}  // namespace
}  // namespace bpfvm::kernel
