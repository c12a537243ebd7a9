// The runtime: maps with kernel semantics, linking a clang-compiled object against its maps and
// the kernel helpers, running it on every engine, and many threads on the same maps.
#include "bpfvm/helpers/runtime.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <thread>

#include "bpfvm/helpers/context.hpp"
#include "bpfvm/helpers/test_run.hpp"
#include "bpfvm/loader/object.hpp"
#include "bpfvm/vm/assembler.hpp"
#include "object_fixture.hpp"

namespace bpfvm::helpers {
namespace {

vm::MapSpec spec(vm::MapType type, uint32_t key, uint32_t value, uint32_t max) {
    vm::MapSpec s;
    s.name = "m";
    s.type = type;
    s.key_size = key;
    s.value_size = value;
    s.max_entries = max;
    return s;
}

TEST(Maps, ArrayFollowsKernelSemantics) {
    auto m = create_map(spec(vm::MapType::Array, 4, 8, 2));
    ASSERT_TRUE(m) << m.error().message();
    Map& a = **m;
    const uint32_t k0 = 0, k1 = 1, k2 = 2;
    const uint64_t v = 42;
    EXPECT_EQ(a.update(&k0, &v, kAny), 0);
    EXPECT_EQ(a.update(&k1, &v, kExist), 0);
    EXPECT_EQ(a.update(&k1, &v, kNoExist), -kEEXIST);
    EXPECT_EQ(a.update(&k2, &v, kAny), -kE2BIG);
    EXPECT_EQ(a.update(&k0, &v, 7), -kEINVAL);
    EXPECT_EQ(a.erase(&k0), -kEINVAL);
    EXPECT_EQ(a.lookup(&k2), nullptr);
    uint64_t out = 0;
    EXPECT_EQ(a.read(&k1, &out), 0);
    EXPECT_EQ(out, 42u);
    uint32_t next = 99;
    EXPECT_EQ(a.next_key(nullptr, &next), 0);
    EXPECT_EQ(next, 0u);
    EXPECT_EQ(a.next_key(&k0, &next), 0);
    EXPECT_EQ(next, 1u);
    EXPECT_EQ(a.next_key(&k1, &next), -kENOENT);
    EXPECT_EQ(a.entries().size(), 2u);
}

TEST(Maps, HashFollowsKernelSemantics) {
    auto m = create_map(spec(vm::MapType::Hash, 4, 4, 2));
    ASSERT_TRUE(m) << m.error().message();
    Map& h = **m;
    const uint32_t a = 10, b = 20, c = 30, va = 1, vb = 2;
    EXPECT_EQ(h.update(&a, &va, kExist), -kENOENT);
    EXPECT_EQ(h.update(&a, &va, kNoExist), 0);
    EXPECT_EQ(h.update(&a, &vb, kNoExist), -kEEXIST);
    EXPECT_EQ(h.update(&b, &vb, kAny), 0);
    EXPECT_EQ(h.update(&c, &vb, kAny), -kE2BIG);  // full
    void* pa = h.lookup(&a);
    ASSERT_NE(pa, nullptr);
    EXPECT_EQ(h.update(&a, &vb, kExist), 0);
    EXPECT_EQ(h.lookup(&a), pa);  // values keep their address
    EXPECT_EQ(*static_cast<uint32_t*>(pa), 2u);
    EXPECT_EQ(h.erase(&c), -kENOENT);
    EXPECT_EQ(h.erase(&a), 0);
    EXPECT_EQ(h.lookup(&a), nullptr);
    EXPECT_EQ(h.update(&c, &va, kAny), 0);  // the freed slot is reused
    EXPECT_EQ(h.entries().size(), 2u);
}

TEST(Maps, RefusesBadDefinitions) {
    EXPECT_EQ(create_map(spec(vm::MapType::Array, 8, 8, 1)).error().message(),
              "map 'm': an array's key_size must be 4, is 8");
    EXPECT_EQ(create_map(spec(vm::MapType::Hash, 4, 8, 0)).error().message(), "map 'm': max_entries is 0");
    EXPECT_EQ(create_map(spec(vm::MapType::Hash, 4, 0, 1)).error().message(), "map 'm': value_size is 0");
    EXPECT_EQ(create_map(spec(vm::MapType::Hash, 4, 1u << 20, 1u << 20)).error().message(),
              "map 'm': 1099515822080 bytes of storage is more than the 1 GiB a map may have");
}

std::string prog_path(const char* variant) {
    return std::string(BPFVM_TEST_PROGS_DIR) + "/flow_counter." + variant + ".o";
}

struct Loaded {
    loader::Object object;
    std::unique_ptr<Runtime> runtime;
    vm::Program program;  // linked
    std::unique_ptr<jit::Executable> exe;
};

Loaded load_flow_counter(const char* variant, uint32_t weight, jit::Engine engine = jit::Engine::InterpChecked) {
    Expected<loader::Object> obj = loader::load_object_file(prog_path(variant));
    EXPECT_TRUE(obj) << obj.error().message();
    const auto* w = reinterpret_cast<const uint8_t*>(&weight);
    Expected<Unit> set = obj->set_global("weight", {w, 4});
    EXPECT_TRUE(set) << set.error().message();
    Expected<std::unique_ptr<Runtime>> rt = Runtime::create(obj->maps);
    EXPECT_TRUE(rt) << rt.error().message();
    Expected<vm::Program> prog = (*rt)->link(obj->programs.at(0).insns);
    EXPECT_TRUE(prog) << prog.error().message();
    Expected<jit::Executable> exe = jit::Executable::create(*prog, (*rt)->helpers(), engine);
    EXPECT_TRUE(exe) << exe.error().message();
    return Loaded{std::move(*obj), std::move(*rt), *prog, std::make_unique<jit::Executable>(std::move(*exe))};
}

vm::RunResult run_record(const Loaded& l, std::array<uint32_t, 3> record, const jit::Executable* exe = nullptr) {
    std::vector<vm::Region> regions{
        vm::Region{reinterpret_cast<uintptr_t>(record.data()), sizeof record, true, "input"}};
    vm::RunInput in;
    in.r1 = reinterpret_cast<uintptr_t>(record.data());
    in.r2 = sizeof record;
    l.runtime->prepare(in, regions);
    return (exe != nullptr ? *exe : *l.exe).run(in, 1'000'000);
}

uint64_t read_u64(Map& m, const void* key) {
    uint64_t v = 0;
    EXPECT_EQ(m.read(key, &v), 0);
    return v;
}

TEST(Runtime, RunsAClangObjectWithMapsGlobalDataAndTracePrintk) {
    for (const char* variant : {"v3", "v4"}) {
        for (jit::Engine engine : jit::available_engines()) {
            SCOPED_TRACE(std::string(variant) + " " + std::string(jit::to_string(engine)));
            Loaded l = load_flow_counter(variant, 3, engine);
            const vm::RunResult r1 = run_record(l, {1, 2, 100});
            ASSERT_TRUE(r1.ok()) << r1.trap->message();
            EXPECT_EQ(r1.r0, 1u);  // records_seen (.bss)
            const vm::RunResult r2 = run_record(l, {1, 2, 10});
            ASSERT_TRUE(r2.ok()) << r2.trap->message();
            EXPECT_EQ(r2.r0, 2u);
            ASSERT_TRUE(run_record(l, {4, 5, 7}).ok());

            Map* flows = l.runtime->find_map("flows");
            ASSERT_NE(flows, nullptr);
            const uint32_t f12[2] = {1, 2};
            const uint32_t f45[2] = {4, 5};
            EXPECT_EQ(read_u64(*flows, f12), 330u);  // (100 + 10) * weight 3
            EXPECT_EQ(read_u64(*flows, f45), 21u);
            Map* totals = l.runtime->find_map("totals");
            const uint32_t odd = 1, even = 0;
            EXPECT_EQ(read_u64(*totals, &odd), 330u);
            EXPECT_EQ(read_u64(*totals, &even), 21u);
            const std::vector<std::string> trace = l.runtime->trace_lines();
            ASSERT_EQ(trace.size(), 3u);
            EXPECT_EQ(trace[0], "flow 1 -> 2: 300 bytes");
            EXPECT_EQ(trace[2], "flow 4 -> 5: 21 bytes");
        }
    }
}

TEST(Runtime, ReadOnlyDataCannotBeWrittenByAProgram) {
    Loaded l = load_flow_counter("v3", 1);
    Map* rodata = l.runtime->find_map(".rodata");
    ASSERT_NE(rodata, nullptr);
    EXPECT_FALSE(rodata->region().writable);
    EXPECT_TRUE(l.runtime->find_map(".bss")->region().writable);
}

TEST(Runtime, LinkRefusesUnknownHelpersAndBadMapIndices) {
    Expected<std::unique_ptr<Runtime>> rt = Runtime::create({});
    ASSERT_TRUE(rt);
    const std::vector<vm::RawInsn> call_unknown = {{0x85, 0, 0, 0, 9999}, {0x95, 0, 0, 0, 0}};
    EXPECT_EQ((*rt)->link(call_unknown).error().message(),
              "pc 0: call to helper 9999, which this runtime does not provide (register it before linking)");
    const std::vector<vm::RawInsn> bad_map = {{0x18, 1, 5, 0, 3}, {0, 0, 0, 0, 0}, {0x95, 0, 0, 0, 0}};
    EXPECT_EQ((*rt)->link(bad_map).error().message(), "pc 0: lddw names map index 3, but there are 0 maps");
}

// Found by fuzz_loader under UBSan: bpf_probe_read of 0 bytes from a null address called memmove
// with a null source. Copies of nothing touch no memory, on every engine.
TEST(Runtime, ProbeReadOfNothingFromNullCopiesNothing) {
    Expected<std::unique_ptr<Runtime>> rt = Runtime::create({});
    ASSERT_TRUE(rt);
    const std::vector<vm::RawInsn> read_nothing = {
        {0xb7, 1, 0, 0, 0}, {0xb7, 2, 0, 0, 0}, {0xb7, 3, 0, 0, 0}, {0x85, 0, 0, 0, 4}, {0x95, 0, 0, 0, 0}};
    Expected<vm::Program> prog = (*rt)->link(read_nothing);
    ASSERT_TRUE(prog) << prog.error().message();
    for (jit::Engine e : jit::available_engines()) {
        Expected<jit::Executable> exe = jit::Executable::create(*prog, (*rt)->helpers(), e);
        ASSERT_TRUE(exe) << exe.error().message();
        vm::RunInput in;
        std::vector<vm::Region> regions;
        (*rt)->prepare(in, regions);
        const vm::RunResult r = exe->run(in, 1000);
        ASSERT_TRUE(r.ok()) << jit::to_string(e) << ": " << r.trap->message();
        EXPECT_EQ(r.r0, 0u) << jit::to_string(e);
    }
}

TEST(Runtime, TraceKeepsTheLatestLinesUpToItsCapacityAndCountsTheDropped) {
    RuntimeOptions options;
    options.trace_capacity = 3;
    Expected<std::unique_ptr<Runtime>> rt = Runtime::create({}, options);
    ASSERT_TRUE(rt);
    for (int i = 0; i < 10; ++i) {
        (*rt)->trace("line " + std::to_string(i));
    }
    EXPECT_EQ((*rt)->trace_lines(), (std::vector<std::string>{"line 7", "line 8", "line 9"}));
    EXPECT_EQ((*rt)->trace_lines_dropped(), 7u);

    options.trace_capacity = 0;  // none kept
    Expected<std::unique_ptr<Runtime>> none = Runtime::create({}, options);
    ASSERT_TRUE(none);
    (*none)->trace("x");
    EXPECT_TRUE((*none)->trace_lines().empty());
    EXPECT_EQ((*none)->trace_lines_dropped(), 1u);
}

TEST(TestRun, RepeatRunsTheProgramThatOftenOnWhatTheLastRunLeftAndStopsAtATrap) {
    Expected<std::unique_ptr<Runtime>> rt = Runtime::create({});
    ASSERT_TRUE(rt);
    TestInput input;
    input.data.assign(64, 0);
    input.repeat = 5;
    unsigned runs = 0;
    // Each run moves the packet's start 2 bytes on (as bpf_xdp_adjust_head would) and returns
    // how many runs it has seen: the next run sees the packet as this one left it.
    auto outcome = test_run(**rt, vm::ProgramType::Xdp, input, [&](const vm::RunInput& in) {
        auto* md = reinterpret_cast<XdpContext*>(in.r1);
        md->data += 2;
        md->data_meta += 2;
        vm::RunResult r;
        r.r0 = ++runs;
        return r;
    });
    ASSERT_TRUE(std::holds_alternative<TestOutput>(outcome));
    const TestOutput& out = std::get<TestOutput>(outcome);
    EXPECT_EQ(runs, 5u);
    EXPECT_EQ(out.result.r0, 5u);
    EXPECT_EQ(out.data_out.size(), 64u - 10u);
    EXPECT_GT(out.ns_per_run, 0.0);

    runs = 0;
    auto trapped = test_run(**rt, vm::ProgramType::Xdp, input, [&](const vm::RunInput&) {
        vm::RunResult r;
        if (++runs == 2) {
            r.trap = vm::Trap{};
        }
        return r;
    });
    EXPECT_EQ(runs, 2u);
    EXPECT_FALSE(std::get<TestOutput>(trapped).result.ok());
}

TEST(Runtime, ManyThreadsCountWithoutLosingUpdates) {
    Loaded l = load_flow_counter("v4", 1);
    // Create the flow first so every thread takes the atomic-add path.
    ASSERT_TRUE(run_record(l, {7, 8, 0}).ok());
    // Each thread on another engine.
    std::vector<jit::Executable> engines;
    for (jit::Engine e : jit::available_engines()) {
        engines.push_back(*jit::Executable::create(l.program, l.runtime->helpers(), e));
    }
    constexpr int kThreads = 4;
    constexpr int kRuns = 5000;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < kRuns; ++i) {
                const vm::RunResult r =
                    run_record(l, {7, 8, 1}, &engines[static_cast<std::size_t>(t) % engines.size()]);
                ASSERT_TRUE(r.ok());
            }
        });
    }
    // The embedder reads and writes another key meanwhile.
    Map* flows = l.runtime->find_map("flows");
    const uint32_t other[2] = {100, 200};
    for (uint64_t i = 0; i < 2000; ++i) {
        ASSERT_EQ(flows->update(other, &i, kAny), 0);
        uint64_t back = 0;
        ASSERT_EQ(flows->read(other, &back), 0);
        ASSERT_LE(back, i);
    }
    for (std::thread& th : threads) {
        th.join();
    }
    const uint32_t key[2] = {7, 8};
    EXPECT_EQ(read_u64(*flows, key), uint64_t{kThreads} * kRuns);
}

// ---- XDP ------------------------------------------------------------------------------------

std::vector<uint8_t> bytes_of(const std::string& hex) {
    std::vector<uint8_t> out;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
        out.push_back(static_cast<uint8_t>(std::stoul(hex.substr(i, 2), nullptr, 16)));
    }
    return out;
}

const std::string kEth =
    "001122334455"
    "66778899aabb";
const std::string kIpv4Udp =
    "4500001c00010000"
    "4011"
    "0000"
    "0a000001"
    "0a000002"
    "303900350008"
    "0000";

struct XdpRun {
    uint64_t retval;
    std::vector<uint8_t> packet;
    std::vector<uint8_t> meta;  // [data_meta, data)
};

class Xdp : public test::ObjectTest {
protected:
    void SetUp() override { load("xdp_rewrite"); }

    XdpRun run(const char* program, const std::vector<uint8_t>& packet) {
        const std::unique_ptr<jit::Executable> exe = executable(program);
        XdpFrame frame(packet);
        std::vector<vm::Region> regions = frame.regions();
        vm::RunInput in;
        in.r1 = reinterpret_cast<uintptr_t>(&frame.context());
        runtime_->prepare(in, regions, vm::ProgramType::Xdp);
        const vm::RunResult r = exe->run(in, 100'000);
        EXPECT_TRUE(r.ok()) << r.trap->message();
        const auto* meta = reinterpret_cast<const uint8_t*>(frame.context().data_meta);
        return XdpRun{r.r0, frame.packet(),
                      std::vector<uint8_t>(meta, reinterpret_cast<const uint8_t*>(frame.context().data))};
    }

    uint64_t count(uint32_t slot) { return read_u64(*runtime_->find_map("proto_counts"), &slot); }
};

TEST_P(Xdp, SwapsMacsAndDecrementsTtlOnIpv4) {
    const XdpRun r = run("xdp_swap", bytes_of(kEth + "0800" + kIpv4Udp));
    EXPECT_EQ(r.retval, 3u);  // XDP_TX
    EXPECT_EQ(r.packet, bytes_of("66778899aabb"
                                 "001122334455"
                                 "0800"
                                 "4500001c00010000"
                                 "3f11"
                                 "0100"
                                 "0a000001"
                                 "0a000002"
                                 "303900350008"
                                 "0000"));
    EXPECT_EQ(count(0), 1u);
}

TEST_P(Xdp, PassesIpv6AndOtherProtocolsUnchanged) {
    const std::vector<uint8_t> v6 = bytes_of(kEth + "86dd" + std::string(80, '0'));
    const XdpRun r6 = run("xdp_swap", v6);
    EXPECT_EQ(r6.retval, 2u);  // XDP_PASS
    EXPECT_EQ(r6.packet, v6);
    const XdpRun arp = run("xdp_swap", bytes_of(kEth + "0806" + std::string(56, '0')));
    EXPECT_EQ(arp.retval, 2u);
    EXPECT_EQ(count(1), 1u);
    EXPECT_EQ(count(2), 1u);
}

TEST_P(Xdp, DropsTruncatedPacketsAndReadsThroughVlanTags) {
    EXPECT_EQ(run("xdp_swap", bytes_of("0011223344")).retval, 1u);                // XDP_DROP
    EXPECT_EQ(run("xdp_swap", bytes_of(kEth + "0800" + "45000014")).retval, 1u);  // short IPv4
    EXPECT_EQ(run("xdp_swap", bytes_of(kEth + "8100" + "0064" + "0800" + kIpv4Udp)).retval, 3u);
    EXPECT_EQ(count(3), 2u);
    EXPECT_EQ(count(0), 1u);
}

TEST_P(Xdp, PopsAVlanTagWithAdjustHead) {
    const XdpRun r = run("xdp_pop_vlan", bytes_of(kEth + "8100" + "0064" + "0800" + kIpv4Udp));
    EXPECT_EQ(r.retval, 2u);
    EXPECT_EQ(r.packet, bytes_of(kEth + "0800" + kIpv4Udp));
}

TEST_P(Xdp, AdjustsTailAndMetaAndRedirects) {
    const std::vector<uint8_t> in = bytes_of(kEth + "0800" + kIpv4Udp);
    const XdpRun r = run("xdp_trim", in);
    EXPECT_EQ(r.retval, 4u);  // XDP_REDIRECT
    // As the kernel's test run returns it: the 4 bytes of metadata, then the trimmed packet.
    ASSERT_GE(r.packet.size(), 4u);
    EXPECT_EQ(std::vector<uint8_t>(r.packet.begin() + 4, r.packet.end()),
              std::vector<uint8_t>(in.begin(), in.end() - 4));
    uint32_t sum = 0;
    for (int i = 0; i < 8; ++i) {
        sum += in[i];
    }
    ASSERT_EQ(r.meta.size(), 4u);
    uint32_t meta = 0;
    std::memcpy(&meta, r.meta.data(), 4);
    EXPECT_EQ(meta, sum);
    ASSERT_TRUE(runtime_->last_redirect().has_value());
    EXPECT_EQ(runtime_->last_redirect()->first, 7u);
    // Too short to trim and keep an Ethernet header: adjust_tail refuses.
    EXPECT_EQ(run("xdp_trim", bytes_of(kEth + "0800")).retval, 0u);  // XDP_ABORTED
}

INSTANTIATE_TEST_SUITE_P(Variants, Xdp, test::object_variants(), test::variant_name);

// ---- __sk_buff: socket filters and tc ---------------------------------------------------------

class Skb : public test::ObjectTest {
protected:
    void SetUp() override { load("skb_progs"); }

    uint64_t run(const char* program, const std::vector<uint8_t>& packet, SkbContext* out = nullptr) {
        const loader::ProgramInfo* p = object_.find_program(program);
        const std::unique_ptr<jit::Executable> exe = executable(program);
        SkbFrame frame(packet, p->type != vm::ProgramType::SocketFilter);
        std::vector<vm::Region> regions = frame.regions();
        vm::RunInput in;
        in.r1 = reinterpret_cast<uintptr_t>(&frame.context());
        in.packet = frame.data();
        runtime_->prepare(in, regions);
        const vm::RunResult r = exe->run(in, 100'000);
        EXPECT_TRUE(r.ok()) << r.trap->message();
        if (out != nullptr) {
            *out = frame.context();
        }
        return r.r0;
    }
};

TEST_P(Skb, SocketFilterReadsFromTheNetworkHeaderWithLdAbs) {
    EXPECT_EQ(run("count_udp", bytes_of(kEth + "0800" + kIpv4Udp)), 64u);
    std::string tcp = kIpv4Udp;
    tcp[18] = '0';
    tcp[19] = '6';  // protocol byte: TCP
    EXPECT_EQ(run("count_udp", bytes_of(kEth + "0800" + tcp)), 0u);
    EXPECT_EQ(run("count_udp", bytes_of(kEth + "86dd" + std::string(80, '0'))), 0u);
    const uint32_t zero = 0;
    EXPECT_EQ(read_u64(*runtime_->find_map("udp_packets"), &zero), 1u);
}

TEST_P(Skb, TcClassifierWritesContextFieldsAndSeesTheEthernetHeader) {
    SkbContext after;
    EXPECT_EQ(run("classify", bytes_of(kEth + "0800" + kIpv4Udp), &after), 0u);  // TC_ACT_OK
    EXPECT_EQ(after.mark, 0x1011u);
    EXPECT_EQ(after.priority, 1u);
    EXPECT_EQ(after.tc_classid, 0x10001u);
    EXPECT_EQ(after.cb[0], 42u);                                       // skb->len counts the Ethernet header for tc
    EXPECT_EQ(run("classify", bytes_of(kEth + "0800" + "4500")), 2u);  // TC_ACT_SHOT
}

INSTANTIATE_TEST_SUITE_P(Variants, Skb, test::object_variants(), test::variant_name);

TEST(ContextRewrite, SocketFiltersHaveNoDirectPacketAccess) {
    Expected<std::vector<vm::RawInsn>> raw = vm::assemble("ldxw %r2, [%r1+76]\nmov %r0, 0\nexit");
    ASSERT_TRUE(raw);
    Expected<std::vector<vm::RawInsn>> out =
        rewrite_context_accesses(*raw, *context_model(vm::ProgramType::SocketFilter));
    ASSERT_FALSE(out);
    EXPECT_EQ(out.error().message(),
              "pc 0: read of __sk_buff.data (offset 76, 4 bytes): not available to socket_filter programs in bpfvm");
    Expected<std::vector<vm::RawInsn>> mark = vm::assemble("stw [%r1+8], 1\nmov %r0, 0\nexit");
    EXPECT_EQ(rewrite_context_accesses(*mark, *context_model(vm::ProgramType::SocketFilter)).error().message(),
              "pc 0: write to __sk_buff.mark, which programs may not write");
    EXPECT_TRUE(rewrite_context_accesses(*mark, *context_model(vm::ProgramType::SchedCls)).has_value());
}

std::string rewrite_error(std::string_view text) {
    Expected<std::vector<vm::RawInsn>> raw = vm::assemble(text);
    EXPECT_TRUE(raw) << raw.error().message();
    Expected<std::vector<vm::RawInsn>> out = rewrite_context_accesses(*raw, *context_model(vm::ProgramType::Xdp));
    return out ? "rewritten" : out.error().message();
}

TEST(ContextRewrite, FollowsTheContextThroughMovesSpillsAndCalls) {
    Expected<std::vector<vm::RawInsn>> raw = vm::assemble(
        "mov %r6, %r1\n"
        "stxdw [%r10-8], %r6\n"
        "ldxdw %r2, [%r10-8]\n"
        "ldxw %r3, [%r2+4]\n"  // data_end through a spilled copy
        "mov %r1, %r6\n"
        "add %r1, 12\n"
        "call local f\n"
        "exit\n"
        "f: ldxw %r0, [%r1+4]\n"  // rx_queue_index (12 + 4) in a subprogram
        "exit\n");
    ASSERT_TRUE(raw);
    Expected<std::vector<vm::RawInsn>> out = rewrite_context_accesses(*raw, *context_model(vm::ProgramType::Xdp));
    ASSERT_TRUE(out) << out.error().message();
    EXPECT_EQ((*out)[3].opcode, 0x79);  // now a 64-bit load of the host pointer
    EXPECT_EQ((*out)[3].off, static_cast<int16_t>(offsetof(XdpContext, data_end)));
    EXPECT_EQ((*out)[8].opcode, 0x61);
    EXPECT_EQ((*out)[8].off, static_cast<int16_t>(offsetof(XdpContext, rx_queue_index) - 12));
}

TEST(ContextRewrite, RefusesUnknownFieldsWritesAndAmbiguousPointers) {
    EXPECT_EQ(rewrite_error("ldxw %r0, [%r1+24]\nexit"),
              "pc 0: read of xdp_md at offset 24 (4 bytes): xdp_md has no field there");
    EXPECT_EQ(rewrite_error("stw [%r1+12], 1\nmov %r0, 0\nexit"),
              "pc 0: write to xdp_md.ingress_ifindex, which programs may not write");
    EXPECT_EQ(rewrite_error("ldxh %r0, [%r1+0]\nexit"),
              "pc 0: partial or signed read of the pointer field xdp_md.data");
    EXPECT_EQ(rewrite_error("jeq %r2, 0, +1\nmov %r1, %r10\nldxw %r0, [%r1-4]\nexit"),
              "pc 2: load through r1, which is the context on some paths and not on others (or the result of "
              "arithmetic on it); bpfvm cannot rewrite it");
    EXPECT_EQ(rewrite_error("ldxb %r0, [%r1+13]\nexit"), "rewritten");  // a narrow read inside a field
}

}  // namespace
}  // namespace bpfvm::helpers
