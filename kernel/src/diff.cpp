#include "bpfvm/kernel/diff.hpp"

#include <chrono>
#include <cstring>
#include <filesystem>

#include "bpfvm/helpers/linked_object.hpp"
#include "bpfvm/kernel/bpf.hpp"
#include "kernel_maps.hpp"
#include "wrapped.hpp"

namespace bpfvm::kernel {

namespace {

using vm::ProgramType;

constexpr uint64_t kBudget = 100'000'000;

bool takes_packets(ProgramType t) {
    return t == ProgramType::Xdp || t == ProgramType::SchedCls || t == ProgramType::SchedAct ||
           t == ProgramType::SocketFilter;
}

bool is_skb(ProgramType t) {
    return t == ProgramType::SchedCls || t == ProgramType::SchedAct || t == ProgramType::SocketFilter;
}

// bpfvm's map contents after a run, as the kernel side reports its own.
std::vector<MapDump> dump_runtime(const helpers::Runtime& runtime) {
    std::vector<MapDump> out;
    for (std::size_t i = 0; i < runtime.map_count(); ++i) {
        helpers::Map& m = runtime.map(i);
        MapDump d;
        d.name = m.spec().name;
        d.type = m.spec().type;
        const vm::MapType t = d.type;
        if (t == vm::MapType::Queue || t == vm::MapType::Stack) {
            std::vector<uint8_t> value(m.spec().value_size);
            while (m.pop(value.data()) == 0) {
                d.records.push_back(value);
            }
        } else if (t == vm::MapType::Ringbuf) {
            d.records = static_cast<helpers::RingBuffer&>(m).consume();
        } else if (t == vm::MapType::PerfEventArray) {
            for (auto& [cpu, sample] : static_cast<helpers::PerfEventArray&>(m).consume()) {
                d.records.push_back(std::move(sample));
            }
        } else if (t == vm::MapType::BloomFilter) {
            d.partial = "a bloom filter's contents cannot be listed";
        } else if (t == vm::MapType::ProgArray || t == vm::MapType::ArrayOfMaps || t == vm::MapType::HashOfMaps) {
            for (auto& [key, value] : m.entries()) {
                d.entries.emplace_back(key, std::vector<uint8_t>{});
            }
            d.partial = "slots hold program or map ids: compared by key";
        } else {
            d.entries = m.entries();
        }
        std::sort(d.entries.begin(), d.entries.end());
        out.push_back(std::move(d));
    }
    return out;
}

Outcome trapped(const vm::Trap& trap) {
    Outcome o;
    o.status = Outcome::Status::Trapped;
    o.reason = trap.message();
    return o;
}

// The checked engine an unchecked one is vetted with: an unverified program runs unchecked only
// after a checked run of the same input finished.
jit::Engine checked_twin(jit::Engine e) {
    return jit::is_jit(e) ? jit::Engine::JitChecked : jit::Engine::InterpChecked;
}

class KernelProgram : public Subject {
public:
    KernelProgram(std::shared_ptr<const KernelObject> object, std::string program)
        : object_(std::move(object)), program_(std::move(program)) {}
    [[nodiscard]] const std::string& name() const override { return name_; }
    [[nodiscard]] Outcome run(const DiffInput& input, uint32_t time_repeat) const override {
        return object_->run(program_, input.input, time_repeat);
    }

private:
    std::shared_ptr<const KernelObject> object_;
    std::string program_;
    std::string name_ = "kernel";
};

class BpfvmProgram : public Subject {
public:
    BpfvmProgram(loader::Object object, std::size_t index, jit::Engine engine)
        : object_(std::move(object)), index_(index), engine_(engine), name_(jit::to_string(engine)) {}
    [[nodiscard]] const std::string& name() const override { return name_; }

    [[nodiscard]] Outcome run(const DiffInput& input, uint32_t time_repeat) const override {
        if (!jit::is_checked(engine_)) {
            // Vet the input on the checked engine of the same kind first.
            const Outcome vetted = run_on(checked_twin(engine_), input, 0);
            if (vetted.status != Outcome::Status::Ran) {
                return vetted;
            }
        }
        return run_on(engine_, input, time_repeat);
    }

private:
    loader::Object object_;
    std::size_t index_;
    jit::Engine engine_;
    std::string name_;

    Outcome run_on(jit::Engine engine, const DiffInput& input, uint32_t time_repeat) const {
        Outcome out;
        std::vector<helpers::ProgramSource> sources;
        for (const loader::ProgramInfo& p : object_.programs) {
            sources.push_back({p.name, p.type, p.insns});
        }
        helpers::RuntimeOptions options;
        options.cpus = possible_cpus();
        Expected<std::unique_ptr<helpers::LinkedObject>> linked =
            helpers::LinkedObject::create(object_.maps, sources, options);
        const loader::ProgramInfo& p = object_.programs[index_];
        const vm::Program* program = linked ? (*linked)->linked_program(p.name) : nullptr;
        if (program == nullptr) {
            out.status = Outcome::Status::ProgramRefused;
            out.reason = linked ? (*linked)->program(p.name).error().message() : linked.error().message();
            return out;
        }
        helpers::Runtime& runtime = (*linked)->runtime();
        Expected<jit::Executable> exe = jit::Executable::create(*program, runtime.helpers(), engine);
        if (!exe) {
            out.status = Outcome::Status::ProgramRefused;
            out.reason = exe.error().message();
            return out;
        }
        const uint64_t budget = jit::is_checked(engine) ? kBudget : 0;
        auto once = [&](const DiffInput& in) -> std::variant<helpers::TestOutput, helpers::InputRefusal> {
            if (helpers::has_test_run(p.type)) {
                return on_cpu0([&] {
                    return helpers::test_run(runtime, p.type, in.input,
                                             [&](const vm::RunInput& ri) { return exe->run(ri, budget); });
                });
            }
            // Plain memory: r1 = a writable copy of the input, r2 = its length.
            helpers::TestOutput t;
            std::vector<uint8_t> buf = in.input.data;
            std::vector<vm::Region> regions;
            if (!buf.empty()) {
                regions.push_back(vm::Region::of(std::span<uint8_t>(buf), "input"));
            }
            vm::RunInput ri;
            ri.r1 = buf.empty() ? 0 : reinterpret_cast<uintptr_t>(buf.data());
            ri.r2 = buf.size();
            runtime.prepare(ri, regions, p.type);
            t.result = on_cpu0([&] {
                const uint32_t runs = std::max<uint32_t>(in.input.repeat, 1);
                const auto start = std::chrono::steady_clock::now();
                vm::RunResult result;
                for (uint32_t i = 0; i < runs && result.ok(); ++i) {
                    result = exe->run(ri, budget);
                }
                const auto end = std::chrono::steady_clock::now();
                t.ns_per_run = std::chrono::duration<double, std::nano>(end - start).count() / runs;
                return result;
            });
            t.data_out = std::move(buf);
            return t;
        };
        auto result = once(input);
        if (auto* r = std::get_if<helpers::InputRefusal>(&result)) {
            out.status = Outcome::Status::InputRefused;
            out.err = r->err;
            out.reason = r->reason;
            return out;
        }
        helpers::TestOutput& t = std::get<helpers::TestOutput>(result);
        if (t.result.trap) {
            return trapped(*t.result.trap);
        }
        const bool raw = !helpers::has_test_run(p.type);
        out.retval = t.result.r0;
        out.retval_is_64_bits = true;
        out.has_data = takes_packets(p.type) || raw;
        out.data_out = std::move(t.data_out);
        out.has_ctx = is_skb(p.type) || p.type == ProgramType::Syscall ||
                      (p.type == ProgramType::Xdp && !input.input.ctx.empty());
        out.ctx_out = std::move(t.ctx_out);
        out.maps = dump_runtime(runtime);
        if (time_repeat > 0) {
            // As the kernel side is timed: the runs of one test run with that repeat, or (where the
            // kernel takes no repeat) the mean of that many test runs' own times.
            const bool repeats = p.type != ProgramType::Syscall && p.type != ProgramType::RawTracepoint;
            DiffInput timed = input;
            timed.input.repeat = repeats ? time_repeat : 0;
            double total = 0;
            for (uint32_t i = 0; i < (repeats ? 1 : time_repeat); ++i) {
                auto r = once(timed);
                if (auto* done = std::get_if<helpers::TestOutput>(&r)) {
                    total += done->ns_per_run;
                }
            }
            out.ns_per_run = repeats ? total : total / time_repeat;
        }
        return out;
    }
};

uint64_t conformance_helper5(uint64_t r1, uint64_t, uint64_t, uint64_t, uint64_t, vm::CallContext*) {
    return r1;  // (the conformance suite's helper 5 only has to return)
}

class BpfvmRawProgram : public Subject {
public:
    BpfvmRawProgram(vm::Program program, jit::Engine engine)
        : program_(std::move(program)), engine_(engine), name_(jit::to_string(engine)) {
        (void)helpers_.add(5, "unwind", conformance_helper5);
    }
    [[nodiscard]] const std::string& name() const override { return name_; }
    [[nodiscard]] Outcome run(const DiffInput& input, uint32_t time_repeat) const override {
        if (!jit::is_checked(engine_)) {
            const Outcome vetted = run_on(checked_twin(engine_), input, 0);
            if (vetted.status != Outcome::Status::Ran) {
                return vetted;
            }
        }
        return run_on(engine_, input, time_repeat);
    }

private:
    vm::Program program_;
    jit::Engine engine_;
    std::string name_;
    vm::HelperTable helpers_;

    Outcome run_on(jit::Engine engine, const DiffInput& input, uint32_t time_repeat) const {
        Outcome out;
        Expected<jit::Executable> exe = jit::Executable::create(program_, helpers_, engine);
        if (!exe) {
            out.status = Outcome::Status::ProgramRefused;
            out.reason = exe.error().message();
            return out;
        }
        const uint64_t budget = jit::is_checked(engine) ? kBudget : 0;
        std::vector<uint8_t> mem = input.input.data;
        const vm::RunResult r = exe->run_buffer(mem, budget);
        if (r.trap) {
            return trapped(*r.trap);
        }
        out.retval = r.r0;
        out.retval_is_64_bits = true;
        out.has_data = true;
        out.data_out = std::move(mem);
        if (time_repeat > 0) {
            std::vector<uint8_t> work = input.input.data;
            const auto start = std::chrono::steady_clock::now();
            for (uint32_t i = 0; i < time_repeat; ++i) {
                (void)exe->run_buffer(work, budget);
            }
            const auto end = std::chrono::steady_clock::now();
            out.ns_per_run = std::chrono::duration<double, std::nano>(end - start).count() / time_repeat;
        }
        return out;
    }
};

// ---- packets -----------------------------------------------------------------------------------

void put16(std::vector<uint8_t>& p, std::size_t at, uint16_t v) {
    p[at] = static_cast<uint8_t>(v >> 8);
    p[at + 1] = static_cast<uint8_t>(v);
}

// Ethernet (dst 00:..:00, the loopback device's address; src 02:00:00:00:00:01) + IPv4 or IPv6
// + TCP or UDP, with `payload` bytes of payload and an optional 802.1Q tag.
std::vector<uint8_t> packet(bool ipv6, bool tcp, std::size_t payload, bool vlan = false) {
    std::vector<uint8_t> p;
    auto bytes = [&](std::initializer_list<uint8_t> b) { p.insert(p.end(), b); };
    bytes({0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 1});
    if (vlan) {
        bytes({0x81, 0x00, 0x00, 0x2a});  // VLAN 42
    }
    bytes(ipv6 ? std::initializer_list<uint8_t>{0x86, 0xdd} : std::initializer_list<uint8_t>{0x08, 0x00});
    const std::size_t l4 = (tcp ? 20 : 8) + payload;
    if (ipv6) {
        bytes({0x60, 0, 0, 0});
        p.resize(p.size() + 2);
        put16(p, p.size() - 2, static_cast<uint16_t>(l4));
        bytes({static_cast<uint8_t>(tcp ? 6 : 17), 64});
        bytes({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1});
        bytes({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2});
    } else {
        bytes({0x45, 0});
        p.resize(p.size() + 2);
        put16(p, p.size() - 2, static_cast<uint16_t>(20 + l4));
        bytes({0, 1, 0x40, 0, 64, static_cast<uint8_t>(tcp ? 6 : 17), 0, 0, 10, 0, 0, 1, 10, 0, 0, 2});
    }
    if (tcp) {
        bytes({0x30, 0x39, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0x72, 0x10, 0, 0, 0, 0});
    } else {
        bytes({0x30, 0x39, 0x00, 0x35});
        p.resize(p.size() + 2);
        put16(p, p.size() - 2, static_cast<uint16_t>(l4));
        bytes({0, 0});
    }
    for (std::size_t i = 0; i < payload; ++i) {
        p.push_back(static_cast<uint8_t>('a' + i % 26));
    }
    return p;
}

}  // namespace

loader::LoadOptions kernel_like_load_options() {
    // The running kernel's BTF, read and parsed once (it is megabytes, and the same every time).
    static const std::shared_ptr<const loader::Btf> vmlinux = []() -> std::shared_ptr<const loader::Btf> {
        if (!std::filesystem::exists("/sys/kernel/btf/vmlinux")) {
            return nullptr;
        }
        Expected<loader::Btf> btf = loader::load_btf_file("/sys/kernel/btf/vmlinux");
        return btf ? std::make_shared<const loader::Btf>(std::move(*btf)) : nullptr;
    }();
    loader::LoadOptions o;
    o.target_btf = vmlinux;
    o.kconfig = running_kconfig();
    return o;
}

std::unique_ptr<Subject> kernel_program(std::shared_ptr<const KernelObject> object, std::span<const uint8_t> bytes,
                                        const std::string& file, const std::string& program) {
    const Verdict* v = object->verdict(program);
    if (v == nullptr || v->type == vm::ProgramType::Unspecified) {
        // Not a program libbpf knows (a plain-memory .text function): wrap it, with bpfvm's maps.
        Expected<loader::Object> obj = loader::load_object(bytes, file, kernel_like_load_options());
        if (obj) {
            for (const loader::ProgramInfo& p : obj->programs) {
                if (p.name == program) {
                    return std::make_unique<WrappedKernelProgram>(p.insns, obj->maps);
                }
            }
        }
    }
    return std::make_unique<KernelProgram>(std::move(object), program);
}

Expected<std::unique_ptr<Subject>> bpfvm_program(std::span<const uint8_t> bytes, const std::string& file,
                                                 const std::string& program, jit::Engine engine) {
    Expected<loader::Object> obj = loader::load_object(bytes, file, kernel_like_load_options());
    if (!obj) {
        return obj.error();
    }
    for (std::size_t i = 0; i < obj->programs.size(); ++i) {
        if (obj->programs[i].name == program) {
            return std::unique_ptr<Subject>(new BpfvmProgram(std::move(*obj), i, engine));
        }
    }
    return make_error(file, "no program '" + program + "'");
}

std::unique_ptr<Subject> kernel_raw_program(const vm::Program& program) {
    return std::make_unique<WrappedKernelProgram>(program.raw(), std::vector<vm::MapSpec>{});
}

Expected<std::unique_ptr<Subject>> bpfvm_raw_program(const vm::Program& program, jit::Engine engine) {
    return std::unique_ptr<Subject>(new BpfvmRawProgram(program, engine));
}

DiffResult diff(const Subject& kernel, const std::vector<const Subject*>& others, const DiffInput& input,
                uint32_t time_repeat) {
    DiffResult d;
    d.input = input;
    d.outcomes.reserve(others.size() + 1);  // (k stays valid)
    d.outcomes.emplace_back(kernel.name(), kernel.run(input, time_repeat));
    const Outcome& k = d.outcomes.front().second;
    for (const Subject* s : others) {
        d.outcomes.emplace_back(s->name(), s->run(input, time_repeat));
        for (Difference& diff : compare(k, d.outcomes.back().second)) {
            d.differences.emplace_back(s->name(), std::move(diff));
        }
    }
    if (k.status == Outcome::Status::ProgramRefused || k.status == Outcome::Status::Unavailable) {
        d.verdict = DiffResult::Verdict::Refused;
    } else {
        d.verdict = d.differences.empty() ? DiffResult::Verdict::Agree : DiffResult::Verdict::Differ;
    }
    return d;
}

std::vector<DiffInput> default_inputs(ProgramType type) {
    std::vector<DiffInput> in;
    auto add = [&](std::string name, std::vector<uint8_t> data, std::vector<uint8_t> ctx = {}, uint32_t repeat = 1) {
        in.push_back({std::move(name), {std::move(data), std::move(ctx), repeat}});
    };
    if (takes_packets(type)) {
        add("ipv4-tcp", packet(false, true, 6));
        add("ipv4-udp", packet(false, false, 18));
        add("ipv6-tcp", packet(true, true, 6));
        add("ipv6-udp", packet(true, false, 18));
        add("vlan-ipv4-udp", packet(false, false, 18, true));
        std::vector<uint8_t> truncated = packet(false, true, 6);
        truncated.resize(24);  // Ethernet and 10 bytes of the IPv4 header
        add("truncated-ipv4", truncated);
        std::vector<uint8_t> eth_only = packet(false, false, 0);
        eth_only.resize(14);
        add("ethernet-only", eth_only);
        add("jumbo-ipv4-udp", packet(false, false, 9000 - 42));
        add("too-short", std::vector<uint8_t>(10, 0));
        return in;
    }
    if (type == ProgramType::Syscall) {
        add("ctx-zero-64", {}, std::vector<uint8_t>(64, 0), 0);
        std::vector<uint8_t> counting(64);
        for (std::size_t i = 0; i < counting.size(); ++i) {
            counting[i] = static_cast<uint8_t>(i * 7 + 1);
        }
        add("ctx-pattern-64", {}, counting, 0);
        add("ctx-u32-3", {}, {3, 0, 0, 0, 0, 0, 0, 0}, 0);
        return in;
    }
    if (type == ProgramType::RawTracepoint) {
        add("args-zero", {}, std::vector<uint8_t>(32, 0), 0);
        std::vector<uint8_t> args(32);
        for (std::size_t i = 0; i < 4; ++i) {
            args[i * 8] = static_cast<uint8_t>(i + 1);
        }
        add("args-1-2-3-4", {}, args, 0);
        return in;
    }
    // Plain memory.
    add("empty", {});
    std::vector<uint8_t> pattern(64);
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        pattern[i] = static_cast<uint8_t>(i * 7);
    }
    add("pattern-64", pattern);
    add("zero-16", std::vector<uint8_t>(16, 0));
    return in;
}

}  // namespace bpfvm::kernel
