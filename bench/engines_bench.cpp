// Every workload on every engine, in one run: native -O2 of the same C, the interpreter in fast
// and checked mode. Prints Google Benchmark's table, then a summary with ratios to native and
// ns per executed eBPF instruction. Each BPF result is checked against native first.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bpfvm/helpers/linked_object.hpp"
#include "bpfvm/jit/engine.hpp"
#include "bpfvm/vm/files.hpp"
#include "bpfvm/jit/jit.hpp"
#include "bpfvm/kernel/bpf.hpp"
#include "bpfvm/loader/object.hpp"
#include "bpfvm/vm/interpreter.hpp"
#include "random_program.hpp"

extern "C" {
#define DECLARE(name) uint64_t native_##name(uint8_t* mem, uint64_t len);
DECLARE(sum)
DECLARE(checksum)
DECLARE(fnv1a)
DECLARE(primes)
DECLARE(log2)
DECLARE(log2_large)
DECLARE(switch64)
DECLARE(memcpy)
DECLARE(strcmp)
#undef DECLARE
}

namespace {

using namespace bpfvm;
using namespace bpfvm::vm;

using NativeFn = uint64_t (*)(uint8_t*, uint64_t);

struct Workload {
    std::string name;
    NativeFn native;
    std::vector<uint8_t> input;  // prepared once; each engine runs on its own copy
    std::map<jit::Engine, std::unique_ptr<jit::Executable>> engines;
    std::unique_ptr<Program> program;
    uint64_t instructions = 0;  // executed per run (from a checked run)
    // The kernel's JIT: the workload as a subprogram of a tc (sched_cls) program that finds the input in a
    // one-slot array map. Null if bpf() is unavailable or the kernel's verifier refused it.
    std::unique_ptr<kernel::Fd> kernel_map;
    std::unique_ptr<kernel::Fd> kernel_prog;
    uint32_t kernel_repeat = 1;
    std::string kernel_note;  // why there is no kernel number
};

// The wrapper (a tc program: an XDP test run with repeat > 1 swaps the XDP dispatcher, two RCU
// grace periods, about 19 ms of wall time per BPF_PROG_TEST_RUN here): look up slot 0 of the map, call the workload
// (appended at pc 13) with (value, size), return its r0 (BPF_PROG_TEST_RUN reports the low 32 bits).
std::vector<RawInsn> kernel_wrapper(int map_fd, uint32_t size, const std::vector<RawInsn>& workload) {
    std::vector<RawInsn> p = {
        {0x62, 10, 0, -4, 0},                         // *(u32 *)(r10 - 4) = 0
        {0xbf, 2, 10, 0, 0},                          // r2 = r10
        {0x07, 2, 0, 0, -4},                          // r2 += -4
        {0x18, 1, 1, 0, map_fd},                      // r1 = the map (lddw, src 1: a map fd)
        {0x00, 0, 0, 0, 0},                           //
        {0x85, 0, 0, 0, 1},                           // call bpf_map_lookup_elem
        {0x15, 0, 0, 4, 0},                           // if r0 == 0 goto 11
        {0xbf, 1, 0, 0, 0},                           // r1 = r0
        {0xb7, 2, 0, 0, static_cast<int32_t>(size)},  // r2 = size
        {0x85, 0, 1, 0, 3},                           // call the workload (pc 13)
        {0x95, 0, 0, 0, 0},                           // exit
        {0xb7, 0, 0, 0, 0},                           // r0 = 0
        {0x95, 0, 0, 0, 0},                           // exit
    };
    p.insert(p.end(), workload.begin(), workload.end());
    return p;
}

// How many runs make a test run of about 2 ms.
uint32_t kernel_repeat_for(const kernel::Fd& prog) {
    const std::vector<uint8_t> packet(64);
    Expected<kernel::TestRun> run = kernel::test_run(prog, {packet, {}, 64, 0, 0});
    const double per_run = run ? std::max<double>(run->duration_ns, 1.0) : 1000.0;
    return static_cast<uint32_t>(std::clamp(2e6 / per_run, 1.0, 1e6));
}

// Loads the wrapped workload with its input in a one-slot array map, or says why not.
Expected<Unit> load_with_map(Workload& w, bool frozen, bool explain) {
    kernel::MapDefinition def;
    def.value_size = static_cast<uint32_t>(w.input.size());
    def.name = "bench_input";
    def.flags = frozen ? 0x80 : 0;  // BPF_F_RDONLY_PROG
    Expected<kernel::Fd> map = kernel::create_map(def);
    if (!map) {
        return map.error();
    }
    const uint32_t zero = 0;
    if (auto up = kernel::update_map(*map, {reinterpret_cast<const uint8_t*>(&zero), 4}, w.input); !up) {
        return up.error();
    }
    if (frozen) {
        if (auto f = kernel::freeze_map(*map); !f) {
            return f.error();
        }
    }
    const std::vector<RawInsn> insns =
        kernel_wrapper(map->get(), static_cast<uint32_t>(w.input.size()), w.program->raw());
    kernel::LoadOptions options;
    options.log_level = explain ? 1 : 0;  // (a log costs the verifier time on every instruction)
    Expected<kernel::Loaded> prog = kernel::load_program(ProgramType::SchedCls, insns, options);
    if (!prog) {
        return prog.error();
    }
    w.kernel_map = std::make_unique<kernel::Fd>(std::move(*map));
    w.kernel_prog = std::make_unique<kernel::Fd>(std::move(prog->fd));
    w.kernel_repeat = kernel_repeat_for(*w.kernel_prog);
    return Unit{};
}

// The kernel's verifier explores each loop iteration by iteration; a loop whose bound it reads
// from the input is endless to it (sum, primes, strcmp). A workload that only reads its input gets
// it, if need be, in a frozen read-only map, whose contents the verifier knows: the loops are then
// bounded for it. The code it JITs still loads the input at run time.
void load_into_kernel(Workload& w, bool writes_input) {
    if (!kernel::availability().ok) {
        w.kernel_note = kernel::availability().reason;
        return;
    }
    Expected<Unit> plain = load_with_map(w, false, writes_input);
    if (plain || writes_input) {
        w.kernel_note = plain ? "" : plain.error().message();
        return;
    }
    Expected<Unit> frozen = load_with_map(w, true, true);
    w.kernel_note = frozen ? "" : frozen.error().message() + " (also with the input in a frozen map)";
}

uint64_t xorshift(uint64_t& s) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
}

std::vector<uint8_t> random_bytes(std::size_t n, uint64_t seed) {
    std::vector<uint8_t> v(n);
    for (auto& b : v) {
        b = static_cast<uint8_t>(xorshift(seed));
    }
    return v;
}

std::vector<uint8_t> u32_input(uint32_t value) {
    std::vector<uint8_t> v(64, 0);
    std::memcpy(v.data(), &value, 4);
    return v;
}

std::vector<uint8_t> input_for(const std::string& name) {
    if (name == "sum") {
        return u32_input(10'000);
    }
    if (name == "primes") {
        return u32_input(2'000);  // (the kernel's verifier refuses 4,000: over a million states)
    }
    if (name == "checksum" || name == "fnv1a") {
        return random_bytes(1024, 1);
    }
    if (name == "log2") {
        return random_bytes(4096, 2);
    }
    if (name == "log2_large") {  // the same loop on 16 times as many values: a branch-prediction test
        return random_bytes(65536, 6);
    }
    if (name == "switch64") {  // the values 0..4095 in order: each case 64 times
        std::vector<uint8_t> v(4096);
        for (std::size_t i = 0; i < v.size(); ++i) {
            v[i] = static_cast<uint8_t>(i);
        }
        return v;
    }
    if (name == "switch64_random") {  // the same switch on random values: a branch-prediction test
        return random_bytes(4096, 3);
    }
    if (name == "memcpy") {
        std::vector<uint8_t> v = random_bytes(131072, 4);
        std::fill(v.begin() + 65536, v.end(), 0);
        return v;
    }
    // strcmp: two strings of 32,767 non-zero bytes, differing in the last one (the kernel's
    // verifier walks the loop once per byte: 64 KiB strings take it over a million instructions).
    const std::size_t half = 32768;
    std::vector<uint8_t> v(2 * half, 0);
    uint64_t seed = 5;
    for (std::size_t i = 0; i + 1 < half; ++i) {
        v[i] = v[half + i] = static_cast<uint8_t>(1 + xorshift(seed) % 255);
    }
    v[half - 2] = 1;
    v[2 * half - 2] = 2;
    return v;
}

std::vector<Workload>& workloads() {
    static std::vector<Workload> all;
    return all;
}

bool load_workloads() {
    const std::pair<const char*, NativeFn> list[] = {
        {"sum", native_sum},       {"checksum", native_checksum}, {"fnv1a", native_fnv1a},
        {"primes", native_primes}, {"log2", native_log2},         {"log2_large", native_log2_large},
        {"switch64", native_switch64},
        {"memcpy", native_memcpy}, {"strcmp", native_strcmp},     {"switch64_random", native_switch64},
    };
    for (const auto& [name, fn] : list) {
        const std::string file = std::string(name) == "switch64_random" ? "switch64" : name;
        const std::string path = std::string(BPFVM_BENCH_DIR) + "/" + file + ".bin";
        Expected<std::vector<uint8_t>> bytes = vm::read_file(path);
        if (!bytes) {
            std::fprintf(stderr, "%s\n", bytes.error().message().c_str());
            return false;
        }
        Expected<Program> program = Program::from_bytes(*bytes);
        if (!program) {
            std::fprintf(stderr, "%s: %s\n", path.c_str(), program.error().message().c_str());
            return false;
        }
        Workload w{name, fn, input_for(name), {}, std::make_unique<Program>(*program), 0};
        std::vector<uint8_t> expected_mem = w.input;
        const uint64_t expected = fn(expected_mem.data(), expected_mem.size());
        RunResult r;
        for (jit::Engine e : jit::available_engines()) {
            Expected<jit::Executable> exe = jit::Executable::create(*program, {}, e);
            if (!exe) {
                std::fprintf(stderr, "%s: %s\n", path.c_str(), exe.error().message().c_str());
                return false;
            }
            std::vector<uint8_t> mem = w.input;
            const RunResult got = exe->run_buffer(mem);
            if (!got.ok() || got.r0 != expected || mem != expected_mem) {
                std::fprintf(stderr, "%s: %s and native disagree (%s r0=%llu, native %llu)\n", name,
                             std::string(jit::to_string(e)).c_str(), got.ok() ? "ok" : got.trap->message().c_str(),
                             static_cast<unsigned long long>(got.r0), static_cast<unsigned long long>(expected));
                return false;
            }
            if (e == jit::Engine::InterpChecked) {
                r = got;
            }
            w.engines[e] = std::make_unique<jit::Executable>(std::move(*exe));
        }
        w.instructions = r.instructions;
        load_into_kernel(w, w.input != expected_mem);
        if (w.kernel_prog) {
            const std::vector<uint8_t> packet(64);
            Expected<kernel::TestRun> run = kernel::test_run(*w.kernel_prog, {packet, {}, 1, 0, 0});
            if (!run || run->retval != static_cast<uint32_t>(expected)) {
                std::fprintf(stderr, "%s: the kernel and native disagree (%s)\n", name,
                             run ? ("retval " + std::to_string(run->retval)).c_str() : run.error().message().c_str());
                return false;
            }
        }
        workloads().push_back(std::move(w));
    }
    return true;
}

void run_native(benchmark::State& state, const Workload* w) {
    std::vector<uint8_t> mem = w->input;
    for (auto _ : state) {
        benchmark::DoNotOptimize(w->native(mem.data(), mem.size()));
        benchmark::ClobberMemory();
    }
}

// The kernel's JIT through BPF_PROG_TEST_RUN: each iteration is one test run of `kernel_repeat`
// runs (about 2 ms), timed by the kernel: its mean per run, which includes the test run's own
// per-run cost (kernel/empty measures it). A fixed number of iterations bounds the wall time.
void run_kernel(benchmark::State& state, const Workload* w) {
    const std::vector<uint8_t> packet(64);
    for (auto _ : state) {
        Expected<kernel::TestRun> run = kernel::test_run(*w->kernel_prog, {packet, {}, w->kernel_repeat, 0, 0});
        if (!run) {
            state.SkipWithError(run.error().message().c_str());
            return;
        }
        state.SetIterationTime(static_cast<double>(run->duration_ns) * 1e-9);
    }
}

// Compiles `program` once an iteration (and frees it), and reports its size and the time per
// 1,000 of its instructions: `per_1000_insns`, the mean over the iterations (as Google Benchmark
// times a run), and `p50_per_1000`, the median of the iterations' own times, which a few
// iterations slowed by the machine's neighbours do not move.
void compile_loop(benchmark::State& state, const Program& program, const HelperTable& helpers,
                  const jit::JitOptions& options) {
    std::vector<double> times;
    for (auto _ : state) {
        const auto start = std::chrono::steady_clock::now();
        auto code = jit::JitProgram::compile(program, helpers, options);
        benchmark::DoNotOptimize(code);
        if (code) {
            code->reset();  // (the free is timed with the compile)
        }
        times.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count());
    }
    const double thousands = static_cast<double>(program.size()) / 1000.0;
    state.counters["insns"] = static_cast<double>(program.size());
    state.counters["per_1000_insns"] = benchmark::Counter(static_cast<double>(state.iterations()) * thousands,
                                                          benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
    if (!times.empty()) {
        std::nth_element(times.begin(), times.begin() + static_cast<std::ptrdiff_t>(times.size() / 2), times.end());
        state.counters["p50_per_1000"] = times[times.size() / 2] / thousands;  // (us)
    }
}

// Compile time of the JIT, per 1,000 eBPF instructions of the workload.
void compile_jit(benchmark::State& state, const Workload* w) {
    compile_loop(state, *w->program, {}, {});
}

// Compile time on larger programs: generated ones (tests/random) of about 1,000 and 10,000
// instructions, in both JIT modes.
void compile_large(benchmark::State& state, unsigned statements, bool checked) {
    test::RandomProgramOptions options;
    options.statements = statements;
    options.functions = 3;
    const Program program = *Program::from_raw(test::random_program(7, options));
    jit::JitOptions jo;
    jo.checked = checked;
    compile_loop(state, program, test::mix_helpers(), jo);
}

// Compile time on real clang-compiled programs (ebpf-samples), linked against their maps.
void compile_sample(benchmark::State& state, const char* file, bool checked) {
    const std::string path = std::string(BPFVM_SHARED_DIR) + "/ebpf-samples/" + file;
    Expected<loader::Object> obj = loader::load_object_file(path);
    if (!obj) {
        state.SkipWithError(obj.error().message().c_str());
        return;
    }
    // The largest program of the object.
    const loader::ProgramInfo* p = &obj->programs.front();
    for (const loader::ProgramInfo& q : obj->programs) {
        p = q.insns.size() > p->insns.size() ? &q : p;
    }
    std::vector<helpers::ProgramSource> sources{{p->name, p->type, p->insns}};
    Expected<std::unique_ptr<helpers::LinkedObject>> linked = helpers::LinkedObject::create(obj->maps, sources);
    if (!linked) {
        state.SkipWithError(linked.error().message().c_str());
        return;
    }
    jit::JitOptions jo;
    jo.checked = checked;
    compile_loop(state, *(*linked)->linked_program(p->name), (*linked)->runtime().helpers(), jo);
}

// A native function of the leaf's signature that returns 0, called through a pointer the compiler
// cannot see through: the floor a JIT's round trip can reach on this machine (empty/native).
[[gnu::noinline]] uint64_t native_empty(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t) {
    return 0;
}
void native_round_trip(benchmark::State& state) {
    uint64_t (*fn)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t) = native_empty;
    std::vector<uint8_t> mem(16);
    for (auto _ : state) {
        benchmark::DoNotOptimize(fn);
        benchmark::DoNotOptimize(vm::RunResult(fn(reinterpret_cast<uintptr_t>(mem.data()), mem.size(), 0, 0, 0)).r0);
    }
}

// The cost of a run itself: an empty program (r0 = 0; exit) on each engine, one loop per engine
// as an embedder's would be. (The caller still builds the RunResult: the stores of its fields and
// a test of its trap before it is destroyed are most of what empty/jit takes over empty/native.)
const Program& empty_program() {
    static const Program empty = *Program::from_raw({{0xb7, 0, 0, 0, 0}, {0x95, 0, 0, 0, 0}});
    return empty;
}
const jit::JitProgram& empty_jit() {
    static const std::unique_ptr<jit::JitProgram> code = std::move(jit::JitProgram::compile(empty_program(), {})).value();
    return *code;
}
void empty_round_trip_jit(benchmark::State& state) {
    const jit::JitProgram& code = empty_jit();
    std::vector<uint8_t> mem(16);
    for (auto _ : state) {
        benchmark::DoNotOptimize(code.run_buffer(mem).r0);
    }
}
// The same code called as the plain function a verified leaf is (JitProgram::function()): the
// whole run is the call.
void empty_round_trip_jit_function(benchmark::State& state) {
    std::vector<uint8_t> mem(16);
    jit::JitProgram::Function fn = empty_jit().function();
    for (auto _ : state) {
        benchmark::DoNotOptimize(fn);
        benchmark::DoNotOptimize(fn(reinterpret_cast<uintptr_t>(mem.data()), mem.size(), 0, 0, 0));
    }
}
void empty_round_trip_interp(benchmark::State& state, Mode mode) {
    static const Interpreter interp = *Interpreter::create(empty_program(), {});
    std::vector<uint8_t> mem(16);
    for (auto _ : state) {
        benchmark::DoNotOptimize(interp.run_buffer(mem, RunOptions{mode, 0}).r0);
    }
}

void run_engine(benchmark::State& state, const Workload* w, jit::Engine engine) {
    std::vector<uint8_t> mem = w->input;
    const jit::Executable& exe = *w->engines.at(engine);
    for (auto _ : state) {
        benchmark::DoNotOptimize(exe.run_buffer(mem).r0);
    }
    state.counters["ns_per_insn"] =
        benchmark::Counter(static_cast<double>(w->instructions) * static_cast<double>(state.iterations()),
                           benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
    state.counters["insns"] = static_cast<double>(w->instructions);
}

// Ratios that noise on a shared machine cannot skew: each iteration is one round that times a
// batch of about 0.5 ms on native code, the JIT in both modes and the kernel's JIT, back to back,
// so all of them see the same machine; the counters are the medians of the per-round ratios.
double time_batch_ns(const std::function<void()>& run_once, uint32_t batch) {
    const auto t0 = std::chrono::steady_clock::now();
    for (uint32_t i = 0; i < batch; ++i) {
        run_once();
    }
    const auto t1 = std::chrono::steady_clock::now();
    return std::chrono::duration<double, std::nano>(t1 - t0).count() / batch;
}

double median_of(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v.size() % 2 == 1 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

void paired(benchmark::State& state, const Workload* w) {
    std::vector<uint8_t> native_mem = w->input;
    std::vector<uint8_t> jit_mem = w->input;
    std::vector<uint8_t> chk_mem = w->input;
    const jit::Executable& jit = *w->engines.at(jit::Engine::Jit);
    const jit::Executable& chk = *w->engines.at(jit::Engine::JitChecked);
    const std::function<void()> native_once = [&] {
        benchmark::DoNotOptimize(w->native(native_mem.data(), native_mem.size()));
        benchmark::ClobberMemory();
    };
    const std::function<void()> jit_once = [&] { benchmark::DoNotOptimize(jit.run_buffer(jit_mem).r0); };
    const std::function<void()> chk_once = [&] { benchmark::DoNotOptimize(chk.run_buffer(chk_mem).r0); };
    // Batches of about 0.5 ms of native code.
    const double probe = std::max(time_batch_ns(native_once, 64), 1.0);
    const auto batch = static_cast<uint32_t>(std::clamp(5e5 / probe, 1.0, 1e6));
    const uint32_t kernel_repeat = std::max<uint32_t>(w->kernel_repeat / 4, 1);
    const std::vector<uint8_t> packet(64);
    std::vector<double> jit_native, chk_jit, jit_kernel;
    for (auto _ : state) {
        const double n = time_batch_ns(native_once, batch);
        const double j = time_batch_ns(jit_once, batch);
        const double c = time_batch_ns(chk_once, batch);
        jit_native.push_back(j / n);
        chk_jit.push_back(c / j);
        if (w->kernel_prog) {
            Expected<kernel::TestRun> run = kernel::test_run(*w->kernel_prog, {packet, {}, kernel_repeat, 0, 0});
            if (run && run->duration_ns > 0) {
                jit_kernel.push_back(j / static_cast<double>(run->duration_ns));
            }
        }
    }
    state.counters["jit/native"] = median_of(jit_native);
    state.counters["chk/jit"] = median_of(chk_jit);
    if (!jit_kernel.empty()) {
        state.counters["jit/kern"] = median_of(jit_kernel);
    }
}

// Collects each run's time so the summary can print ratios measured in this one run.
class SummaryReporter : public benchmark::ConsoleReporter {
public:
    void ReportRuns(const std::vector<Run>& runs) override {
        for (const Run& r : runs) {
            if (r.run_type == Run::RT_Aggregate && r.aggregate_name != "median") {
                continue;
            }
            ns_[r.run_name.function_name] = r.GetAdjustedRealTime();
            for (const auto& [name, counter] : r.counters) {
                if (r.run_name.function_name.rfind("paired/", 0) == 0) {
                    ratios_[r.run_name.function_name + " " + name] = counter.value;
                }
            }
        }
        ConsoleReporter::ReportRuns(runs);
    }

    void print_summary() const {
        std::printf("\nns per run (medians), and ratios to native -O2, measured in this one run\n");
        std::printf("%-16s %10s %10s %10s %10s %10s %10s %8s %8s %8s %8s %8s %9s %9s %8s\n", "workload", "native",
                    "jit", "jit-chk", "kernel", "interp", "interp-chk", "jit", "jit-chk", "kernel", "interp", "int-chk",
                    "chk/jit", "jit/kern", "ns/insn");
        std::vector<std::string> notes;
        for (const Workload& w : workloads()) {
            const double native = get("native/" + w.name);
            const double kern = get("kernel/" + w.name);
            const double jitted = get("jit/" + w.name);
            const double jit_checked = get("jit-checked/" + w.name);
            const double interp = get("interp/" + w.name);
            const double checked = get("interp-checked/" + w.name);
            if (native <= 0 || jitted <= 0) {
                continue;  // (filtered out of this run)
            }
            char kcol[32] = "-";
            char kratio[32] = "-";
            char jk[32] = "-";
            if (kern > 0) {
                std::snprintf(kcol, sizeof kcol, "%.1f", kern);
                std::snprintf(kratio, sizeof kratio, "%.2fx", kern / native);
                std::snprintf(jk, sizeof jk, "%.2fx", jitted / kern);
            } else if (!w.kernel_note.empty()) {
                notes.push_back(w.name + ": " + w.kernel_note);
            }
            std::printf(
                "%-16s %10.1f %10.1f %10.1f %10s %10.1f %10.1f %7.2fx %7.2fx %8s %7.1fx %7.1fx %8.2fx %9s %8.2f\n",
                w.name.c_str(), native, jitted, jit_checked, kcol, interp, checked, jitted / native,
                jit_checked / native, kratio, interp / native, checked / native, jit_checked / jitted, jk,
                interp / static_cast<double>(w.instructions));
        }
        const double kempty = get("kernel/empty");
        if (kempty > 0) {
            std::printf("kernel column: BPF_PROG_TEST_RUN's mean per run; an empty tc program measures %.1f ns there\n",
                        kempty);
        }
        for (const std::string& n : notes) {
            std::printf("no kernel number for %s\n", n.c_str());
        }
        bool any = false;
        for (const Workload& w : workloads()) {
            const double jn = ratio("paired/" + w.name + " jit/native");
            if (jn <= 0) {
                continue;
            }
            if (!any) {
                std::printf("\npaired ratios: engines timed back to back in each round, medians of the rounds' ratios\n");
                std::printf("%-16s %10s %10s %10s\n", "workload", "jit/native", "chk/jit", "jit/kern");
                any = true;
            }
            const double jk = ratio("paired/" + w.name + " jit/kern");
            char jkcol[32] = "-";
            if (jk > 0) {
                std::snprintf(jkcol, sizeof jkcol, "%.2fx", jk);
            }
            std::printf("%-16s %9.2fx %9.2fx %10s\n", w.name.c_str(), jn, ratio("paired/" + w.name + " chk/jit"),
                        jkcol);
        }
    }

private:
    double get(const std::string& name) const {
        auto it = ns_.find(name);
        return it == ns_.end() ? 0.0 : it->second;
    }
    double ratio(const std::string& name) const {
        auto it = ratios_.find(name);
        return it == ratios_.end() ? 0.0 : it->second;
    }
    std::map<std::string, double> ns_;
    std::map<std::string, double> ratios_;  // "paired/W counter": the last (or median) value
};

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
        return 2;
    }
    if (!load_workloads()) {
        return 1;
    }
    for (const Workload& w : workloads()) {
        benchmark::RegisterBenchmark(("native/" + w.name).c_str(), run_native, &w);
        for (jit::Engine e : jit::available_engines()) {
            benchmark::RegisterBenchmark((std::string(jit::to_string(e)) + "/" + w.name).c_str(), run_engine, &w, e);
        }
        if (w.kernel_prog) {
            benchmark::RegisterBenchmark(("kernel/" + w.name).c_str(), run_kernel, &w)->UseManualTime()->Iterations(25);
        }
        benchmark::RegisterBenchmark(("jit-compile/" + w.name).c_str(), compile_jit, &w);
        if (jit::kHaveJit) {
            benchmark::RegisterBenchmark(("paired/" + w.name).c_str(), paired, &w)->Iterations(31);
        }
    }
    for (const char* sample : {"linux/xdp_tx_iptunnel_kern.o", "linux/sockex2_kern.o", "linux/sockex3_kern.o"}) {
        benchmark::RegisterBenchmark((std::string("jit-compile/") + sample).c_str(), compile_sample, sample, false);
        benchmark::RegisterBenchmark((std::string("jit-checked-compile/") + sample).c_str(), compile_sample, sample,
                                     true);
    }
    benchmark::RegisterBenchmark("jit-compile/random-1k", compile_large, 45, false);
    benchmark::RegisterBenchmark("jit-compile/random-10k", compile_large, 450, false);
    benchmark::RegisterBenchmark("jit-checked-compile/random-1k", compile_large, 45, true);
    // The kernel's own per-run cost in BPF_PROG_TEST_RUN: an empty tc program.
    if (kernel::availability().ok) {
        const RawInsn empty[] = {{0xb7, 0, 0, 0, 0}, {0x95, 0, 0, 0, 0}};
        Expected<kernel::Loaded> loaded = kernel::load_program(ProgramType::SchedCls, empty);
        if (loaded) {
            static Workload empty_workload;
            empty_workload.name = "empty";
            empty_workload.kernel_prog = std::make_unique<kernel::Fd>(std::move(loaded->fd));
            empty_workload.kernel_repeat = kernel_repeat_for(*empty_workload.kernel_prog);
            benchmark::RegisterBenchmark("kernel/empty", run_kernel, &empty_workload)->UseManualTime()->Iterations(25);
        }
    }
    benchmark::RegisterBenchmark("empty/native", native_round_trip);
    benchmark::RegisterBenchmark("empty/jit", empty_round_trip_jit);
    benchmark::RegisterBenchmark("empty/jit-function", empty_round_trip_jit_function);
    benchmark::RegisterBenchmark("empty/interp", empty_round_trip_interp, Mode::Fast);
    benchmark::RegisterBenchmark("empty/interp-checked", empty_round_trip_interp, Mode::Checked);
    SummaryReporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    reporter.print_summary();
    benchmark::Shutdown();
    return 0;
}
