// The map types and their helpers, driven through a clang-compiled object of syscall programs
// (tests/progs/maps_tour.bpf.c), on every engine.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <thread>

#include "bpfvm/helpers/runtime.hpp"
#include "bpfvm/loader/object.hpp"
#include "object_fixture.hpp"

namespace bpfvm::helpers {
namespace {

class MapsTour : public test::ObjectTest {
protected:
    void SetUp() override {
        load("maps_tour");
        for (const loader::ProgramInfo& p : object_.programs) {
            programs_.emplace(p.name, executable(p.name));
            targets_.emplace(p.name, interpreter(p.name));
        }
        // prog_array slots named in the object's `.values`.
        const uint32_t jumps = *object_.find_map("jumps");
        for (const auto& [slot, name] : object_.maps[jumps].initial_slots) {
            ASSERT_TRUE(runtime_->set_tail_call_target("jumps", slot, targets_.at(name).get()));
        }
    }

    vm::RunResult run(const std::string& name, std::vector<uint8_t> ctx = std::vector<uint8_t>(16)) {
        std::vector<vm::Region> regions{vm::Region::of(std::span<uint8_t>(ctx), "ctx")};
        vm::RunInput in;
        in.r1 = reinterpret_cast<uintptr_t>(ctx.data());
        runtime_->prepare(in, regions);
        const vm::RunResult r = programs_.at(name)->run(in, 1'000'000);
        EXPECT_TRUE(r.ok()) << name << ": " << r.trap->message();
        return r;
    }

    std::map<std::string, std::unique_ptr<jit::Executable>> programs_;
    std::map<std::string, std::unique_ptr<vm::Interpreter>> targets_;  // what tail calls jump to
};

TEST_P(MapsTour, LpmTrieFindsTheLongestPrefix) {
    Map* routes = runtime_->find_map("routes");
    auto add = [&](uint32_t len, std::array<uint8_t, 4> addr, uint32_t hop) {
        uint8_t key[8];
        std::memcpy(key, &len, 4);
        std::memcpy(key + 4, addr.data(), 4);
        ASSERT_EQ(routes->write(key, &hop, kAny), 0);
    };
    add(8, {10, 0, 0, 0}, 1);
    add(16, {10, 1, 0, 0}, 2);
    add(24, {10, 1, 2, 0}, 3);
    EXPECT_EQ(run("lpm_route", {10, 1, 2, 3}).r0, 3u);
    EXPECT_EQ(run("lpm_route", {10, 1, 9, 9}).r0, 2u);
    EXPECT_EQ(run("lpm_route", {10, 7, 7, 7}).r0, 1u);
    EXPECT_EQ(run("lpm_route", {192, 168, 0, 1}).r0, 0u);
}

TEST_P(MapsTour, RingBufferDeliversSubmittedRecordsInOrder) {
    EXPECT_EQ(run("ringbuf_events", {5, 0, 0, 0}).r0, 0u);
    auto* rb = dynamic_cast<RingBuffer*>(runtime_->find_map("events"));
    ASSERT_NE(rb, nullptr);
    const std::vector<std::vector<uint8_t>> records = rb->consume();
    ASSERT_EQ(records.size(), 2u);  // the discarded one is skipped
    EXPECT_EQ(records[0], (std::vector<uint8_t>{5, 0, 0, 0, 0xaa, 0xaa, 0, 0}));
    EXPECT_EQ(records[1], (std::vector<uint8_t>{6, 0, 0, 0}));
    EXPECT_TRUE(rb->consume().empty());
}

TEST_P(MapsTour, QueuePopsOldestAndStackNewest) {
    EXPECT_EQ(run("queue_stack").r0, 1u * 16 + 3u);
    Map* fifo = runtime_->find_map("fifo");
    uint32_t v = 0;
    EXPECT_EQ(fifo->pop(&v), 0);
    EXPECT_EQ(v, 2u);
    EXPECT_EQ(fifo->pop(&v), 0);
    EXPECT_EQ(fifo->pop(&v), -kENOENT);
}

TEST_P(MapsTour, BloomFilterHasNoFalseNegatives) {
    for (uint32_t i = 0; i < 20; ++i) {
        std::vector<uint8_t> ctx(8);
        const uint32_t add = i * 7919, probe = i * 7919;
        std::memcpy(ctx.data(), &add, 4);
        std::memcpy(ctx.data() + 4, &probe, 4);
        EXPECT_EQ(run("bloom", ctx).r0, 1u);
    }
}

TEST_P(MapsTour, TailCallsJumpAndStopAfter33) {
    const vm::RunResult first = run("tail_first");
    EXPECT_EQ(first.r0, 42u);
    EXPECT_EQ(first.tail_calls, 1u);
    const vm::RunResult loop = run("tail_loop");
    EXPECT_EQ(loop.r0, 99u);  // the 34th entry's tail call fails, and it returns
    EXPECT_EQ(loop.tail_calls, 33u);
    uint64_t entries = 0;
    const uint32_t zero = 0;
    ASSERT_EQ(runtime_->find_map(".bss")->read(&zero, &entries), 0);
    EXPECT_EQ(entries, 34u);
}

TEST_P(MapsTour, PerCpuValuesStayApart) {
    // Two threads, each its own CPU slot; the embedder reads every slot.
    std::thread a([&] {
        for (int i = 0; i < 3; ++i) {
            run("percpu_count");
        }
    });
    a.join();
    std::thread b([&] {
        for (int i = 0; i < 5; ++i) {
            run("percpu_count");
        }
    });
    b.join();
    Map* per_cpu = runtime_->find_map("per_cpu");
    ASSERT_EQ(per_cpu->user_value_size(), 8u * runtime_->options().cpus);
    std::vector<uint64_t> values(runtime_->options().cpus);
    const uint32_t zero = 0;
    ASSERT_EQ(per_cpu->read(&zero, values.data()), 0);
    uint64_t total = 0;
    unsigned nonzero = 0;
    for (uint64_t v : values) {
        total += v;
        nonzero += v != 0 ? 1 : 0;
    }
    EXPECT_EQ(total, 8u);
    EXPECT_EQ(nonzero, 2u);  // consecutive threads take different slots
}

TEST_P(MapsTour, BpfLoopRunsTheCallbackOnTheCallersStackContext) {
    auto ctx = [](uint32_t n, uint32_t stop) {
        std::vector<uint8_t> c(8);
        std::memcpy(c.data(), &n, 4);
        std::memcpy(c.data() + 4, &stop, 4);
        return c;
    };
    EXPECT_EQ(run("loop_sum", ctx(5, 100)).r0, 10u * 1000 + 5);  // 0+1+2+3+4, 5 iterations
    EXPECT_EQ(run("loop_sum", ctx(100, 3)).r0, 6u * 1000 + 4);   // stops after index 3
    EXPECT_EQ(run("loop_sum", ctx(0, 0)).r0, 0u);
}

TEST_P(MapsTour, ForEachMapElemVisitsEveryElement) {
    EXPECT_EQ(run("weighted_sum").r0, (1u * 10 + 2 * 20 + 3 * 30) * 10 + 3);
}

TEST_P(MapsTour, SnprintfAndStrtolRoundTrip) {
    std::vector<uint8_t> ctx(32);
    const uint32_t n = 4711;
    std::memcpy(ctx.data(), &n, 4);
    // "n=4711" is 7 bytes with its NUL; strtol uses the 4 digits.
    EXPECT_EQ(run("format_parse", ctx).r0, 4711u * 100 + 7 * 10 + 4);
}

TEST_P(MapsTour, PerfEventOutputQueuesSamplesPerCpu) {
    EXPECT_EQ(run("perf_out", {7, 0, 0, 0}).r0, 1u);
    auto* perf = dynamic_cast<PerfEventArray*>(runtime_->find_map("samples"));
    ASSERT_NE(perf, nullptr);
    const auto samples = perf->consume();
    ASSERT_EQ(samples.size(), 2u);
    EXPECT_LT(samples[0].first, runtime_->options().cpus);
    // 8 bytes of data arrive as 12 (a perf buffer's raw samples fill 8-byte words with their
    // 4-byte size, as the kernel delivers them).
    EXPECT_EQ(samples[0].second, (std::vector<uint8_t>{7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}));
    EXPECT_EQ(samples[1].first, 2u);
    EXPECT_EQ(samples[1].second, (std::vector<uint8_t>{8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}));
    EXPECT_TRUE(perf->consume().empty());
}

INSTANTIATE_TEST_SUITE_P(Variants, MapsTour, test::object_variants(), test::variant_name);

}  // namespace
}  // namespace bpfvm::helpers
