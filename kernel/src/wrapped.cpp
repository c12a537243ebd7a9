#include "wrapped.hpp"

#include <cstring>

#include "bpfvm/kernel/bpf.hpp"
#include "kernel_maps.hpp"

namespace bpfvm::kernel {

namespace {

using vm::RawInsn;

constexpr uint8_t kLddw = 0x18;
constexpr uint8_t kPseudoMapFd = 1;
constexpr uint8_t kPseudoMapValue = 2;
constexpr uint8_t kMapByIndex = 5;       // bpfvm's loader: lddw of map number imm
constexpr uint8_t kMapValueByIndex = 6;  // bpfvm's loader: lddw of map number imm's value + next imm

std::vector<RawInsn> lddw_fd(uint8_t reg, int fd) {
    return {RawInsn{kLddw, reg, kPseudoMapFd, 0, fd}, RawInsn{}};
}

// The wrapper in front of the program (which is appended after it, so `call` reaches it at the
// wrapper's end): r1/r2 = the input map's value and length (0, 0 without input), r3-r5 = 0, call,
// store r0 in the result map, return XDP_PASS.
std::vector<RawInsn> wrapper(int input_fd, uint32_t input_size, int result_fd) {
    std::vector<RawInsn> w;
    auto emit = [&](RawInsn i) { w.push_back(i); };
    auto emit_all = [&](const std::vector<RawInsn>& v) { w.insert(w.end(), v.begin(), v.end()); };
    std::vector<std::size_t> to_fail;  // jumps to the failure exit, patched at the end
    if (input_fd >= 0) {
        emit({0x62, 10, 0, -4, 0});  // *(u32 *)(r10 - 4) = 0
        emit({0xbf, 2, 10, 0, 0});   // r2 = r10
        emit({0x07, 2, 0, 0, -4});   // r2 += -4
        emit_all(lddw_fd(1, input_fd));
        emit({0x85, 0, 0, 0, 1});  // call bpf_map_lookup_elem
        to_fail.push_back(w.size());
        emit({0x15, 0, 0, 0, 0});  // if r0 == 0 goto fail
        emit({0xbf, 1, 0, 0, 0});  // r1 = r0
        emit({0xb7, 2, 0, 0, static_cast<int32_t>(input_size)});
    } else {
        emit({0xb7, 1, 0, 0, 0});
        emit({0xb7, 2, 0, 0, 0});
    }
    emit({0xb7, 3, 0, 0, 0});
    emit({0xb7, 4, 0, 0, 0});
    emit({0xb7, 5, 0, 0, 0});
    const std::size_t call = w.size();
    emit({0x85, 0, 1, 0, 0});  // call the program (imm patched below)
    emit({0xbf, 6, 0, 0, 0});  // r6 = r0
    emit({0x62, 10, 0, -4, 0});
    emit({0xbf, 2, 10, 0, 0});
    emit({0x07, 2, 0, 0, -4});
    emit_all(lddw_fd(1, result_fd));
    emit({0x85, 0, 0, 0, 1});
    to_fail.push_back(w.size());
    emit({0x15, 0, 0, 0, 0});
    emit({0x7b, 0, 6, 0, 0});  // *(u64 *)(r0 + 0) = r6
    emit({0xb7, 0, 0, 0, 2});  // r0 = XDP_PASS
    emit({0x95, 0, 0, 0, 0});
    const std::size_t fail = w.size();
    emit({0xb7, 0, 0, 0, 0});
    emit({0x95, 0, 0, 0, 0});
    for (std::size_t j : to_fail) {
        w[j].off = static_cast<int16_t>(fail - j - 1);
    }
    w[call].imm = static_cast<int32_t>(w.size() - call - 1);
    return w;
}

}  // namespace

WrappedKernelProgram::WrappedKernelProgram(std::vector<vm::RawInsn> insns, std::vector<vm::MapSpec> maps,
                                           std::string name)
    : insns_(std::move(insns)), maps_(std::move(maps)), name_(std::move(name)) {}

Outcome WrappedKernelProgram::run(const DiffInput& input, uint32_t time_repeat) const {
    Outcome out;
    out.retval_is_64_bits = true;
    if (!availability().ok) {
        out.status = Outcome::Status::Unavailable;
        out.reason = availability().reason;
        return out;
    }
    auto refused = [&](std::string why) {
        out.status = Outcome::Status::ProgramRefused;
        out.reason = std::move(why);
        return out;
    };
    // The program's maps, as bpfvm sees them.
    std::vector<Fd> fds;
    std::vector<KernelMap> watched;
    for (const vm::MapSpec& spec : maps_) {
        if (!spec.initial_slots.empty() || !spec.inner.empty()) {
            return refused("map '" + spec.name + "' holds programs or maps, which a wrapped program cannot have");
        }
        MapDefinition def;
        def.type = spec.type;
        def.key_size = spec.key_size;
        def.value_size = spec.value_size;
        def.max_entries = spec.max_entries;
        def.flags = spec.flags;
        def.name = spec.name.substr(0, 15);
        Expected<Fd> fd = create_map(def);
        if (!fd) {
            return refused("map '" + spec.name + "': " + fd.error().message());
        }
        if (!spec.initial_value.empty()) {
            const uint32_t zero = 0;
            if (auto u = update_map(*fd, {reinterpret_cast<const uint8_t*>(&zero), 4}, spec.initial_value); !u) {
                return refused("map '" + spec.name + "': " + u.error().message());
            }
        }
        if ((spec.flags & vm::kMapFlagRdonlyProg) != 0) {
            (void)freeze_map(*fd);
        }
        watched.push_back({spec.name, spec.type, spec.key_size, spec.value_size, fd->get()});
        fds.push_back(std::move(*fd));
    }
    // The input and the result.
    const std::vector<uint8_t>& data = input.input.data;
    Fd input_map;
    if (!data.empty()) {
        MapDefinition def;
        def.value_size = static_cast<uint32_t>(data.size());
        def.name = "diff_input";
        Expected<Fd> fd = create_map(def);
        if (!fd) {
            return refused("the input map: " + fd.error().message());
        }
        input_map = std::move(*fd);
    }
    MapDefinition rdef;
    rdef.value_size = 8;
    rdef.name = "diff_result";
    Expected<Fd> result_map = create_map(rdef);
    if (!result_map) {
        return refused("the result map: " + result_map.error().message());
    }
    // The program, its map references turned into the kernel's.
    std::vector<RawInsn> code =
        wrapper(input_map.valid() ? input_map.get() : -1, static_cast<uint32_t>(data.size()), result_map->get());
    const std::size_t base = code.size();
    code.insert(code.end(), insns_.begin(), insns_.end());
    for (std::size_t pc = base; pc + 1 < code.size(); ++pc) {
        RawInsn& i = code[pc];
        if (i.opcode != kLddw) {
            continue;
        }
        if (i.src == kMapByIndex || i.src == kMapValueByIndex) {
            const auto index = static_cast<std::size_t>(i.imm);
            if (index >= fds.size()) {
                return refused("pc " + std::to_string(pc - base) + ": lddw of map " + std::to_string(index) +
                               ", which the object does not have");
            }
            i.src = i.src == kMapByIndex ? kPseudoMapFd : kPseudoMapValue;
            i.imm = fds[index].get();
        }
        ++pc;  // the second slot
    }
    kernel::LoadOptions lo;
    lo.log_level = 4;  // BPF_LOG_STATS: the verifier's summary line only
    Expected<Loaded> prog = load_program(vm::ProgramType::Xdp, code, lo);
    if (!prog) {
        out.verifier = "refused: " + prog.error().message();
        return refused(prog.error().message());
    }
    {
        std::string log = prog->log;
        while (!log.empty() && (log.back() == '\n' || log.back() == 0)) {
            log.pop_back();
        }
        out.verifier = "accepted: " + log.substr(log.rfind('\n') == std::string::npos ? 0 : log.rfind('\n') + 1);
    }
    MapWatch watch(watched);
    const uint32_t zero = 0;
    const std::span<const uint8_t> key(reinterpret_cast<const uint8_t*>(&zero), 4);
    if (input_map.valid()) {
        if (auto u = update_map(input_map, key, data); !u) {
            return refused(u.error().message());
        }
    }
    const std::vector<uint8_t> packet(64, 0);
    TestRunInput t;
    t.data = packet;
    auto r = on_cpu0([&] { return test_run_raw(prog->fd.get(), t); });
    if (auto* e = std::get_if<TestRunError>(&r)) {
        out.status = Outcome::Status::InputRefused;
        out.err = e->err;
        out.reason = e->message;
        return out;
    }
    if (std::get<TestRun>(r).retval != 2) {
        return refused("the wrapper could not reach its maps");
    }
    Expected<std::vector<uint8_t>> result = lookup_map(*result_map, key, 8);
    if (result) {
        std::memcpy(&out.retval, result->data(), 8);
    }
    out.has_data = true;
    if (input_map.valid()) {
        Expected<std::vector<uint8_t>> after = lookup_map(input_map, key, static_cast<uint32_t>(data.size()));
        if (after) {
            out.data_out = std::move(*after);
        }
    }
    out.maps = watch.dump();
    if (time_repeat > 0) {
        t.repeat = time_repeat;
        auto timed = on_cpu0([&] { return test_run_raw(prog->fd.get(), t); });
        if (auto* tr = std::get_if<TestRun>(&timed)) {
            out.ns_per_run = tr->duration_ns;
        }
    }
    return out;
}

}  // namespace bpfvm::kernel
