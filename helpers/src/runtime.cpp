#include "bpfvm/helpers/runtime.hpp"

#include <algorithm>
#include <cstring>

#include "bpfvm/helpers/context.hpp"

namespace bpfvm::helpers {

Expected<std::unique_ptr<Runtime>> Runtime::create(const std::vector<vm::MapSpec>& maps, RuntimeOptions options) {
    std::unique_ptr<Runtime> rt(new Runtime());
    rt->options_ = std::move(options);
    const MapOptions map_options{rt->options_.cpus};
    for (const vm::MapSpec& spec : maps) {
        Expected<std::unique_ptr<Map>> m = create_map(spec, map_options);
        if (!m) {
            return m.error();
        }
        rt->regions_.push_back((*m)->region());
        rt->maps_.push_back(std::move(*m));
    }
    // Maps of maps start with the inner maps their definition names (`.values = { &a, &b }`).
    for (std::size_t i = 0; i < maps.size(); ++i) {
        if (maps[i].type != vm::MapType::ArrayOfMaps && maps[i].type != vm::MapType::HashOfMaps) {
            continue;
        }
        auto* outer = dynamic_cast<HandleMap*>(rt->maps_[i].get());
        for (const auto& [slot, name] : maps[i].initial_slots) {
            Map* inner = rt->find_map(name);
            if (inner == nullptr || outer == nullptr) {
                return make_error("map '" + maps[i].name + "'", "slot " + std::to_string(slot) + " names map '" + name +
                                                                    "', which the object does not define");
            }
            std::vector<uint8_t> key(maps[i].key_size, 0);
            std::memcpy(key.data(), &slot, std::min<std::size_t>(4, key.size()));
            outer->set_handle(key.data(), reinterpret_cast<uintptr_t>(inner), static_cast<uint32_t>(i + 1));
        }
    }
    add_kernel_helpers(rt->helpers_);
    return rt;
}

Expected<vm::Program> Runtime::link(std::span<const vm::RawInsn> insns, vm::ProgramType type) const {
    std::vector<vm::RawInsn> out(insns.begin(), insns.end());
    if (const ContextModel* model = context_model(type)) {
        Expected<std::vector<vm::RawInsn>> rewritten = rewrite_context_accesses(insns, *model);
        if (!rewritten) {
            return rewritten.error();
        }
        out = std::move(*rewritten);
    }
    for (std::size_t pc = 0; pc < out.size(); ++pc) {
        vm::RawInsn& insn = out[pc];
        const std::string at = "pc " + std::to_string(pc);
        if (insn.opcode == 0x85 && insn.src == 0 && helpers_.find(static_cast<uint32_t>(insn.imm)) == nullptr &&
            insn.imm != vm::kCorePoisonHelper) {  // a CO-RE access with no match fails only when reached
            return make_error(at, "call to helper " + std::to_string(insn.imm) +
                                      ", which this runtime does not provide (register it before linking)");
        }
        if (insn.opcode != 0x18 || pc + 1 >= out.size()) {
            continue;
        }
        vm::RawInsn& next = out[pc + 1];
        if (insn.src == 5 || insn.src == 6) {
            const auto index = static_cast<uint32_t>(insn.imm);
            if (index >= maps_.size()) {
                return make_error(at, "lddw names map index " + std::to_string(index) + ", but there are " +
                                          std::to_string(maps_.size()) + " maps");
            }
            uint64_t address = reinterpret_cast<uintptr_t>(maps_[index].get());
            if (insn.src == 6) {
                // The value of a single-element map (global data) at an offset.
                const Map& m = *maps_[index];
                const auto offset = static_cast<uint32_t>(next.imm);
                if (m.spec().max_entries != 1 || offset >= m.spec().value_size) {
                    return make_error(at, "lddw takes the address of map '" + m.spec().name + "' + " +
                                              std::to_string(offset) + ", outside its one value");
                }
                address = m.region().begin + offset;
            }
            insn.src = 0;
            insn.imm = static_cast<int32_t>(static_cast<uint32_t>(address));
            next.imm = static_cast<int32_t>(static_cast<uint32_t>(address >> 32));
        } else if (insn.src != 0 && insn.src != 4) {  // src 4 (a function's address) the engines resolve
            return make_error(at, "lddw with src " + std::to_string(insn.src) + " is not produced by the loader");
        }
        ++pc;
    }
    return vm::Program::from_raw(std::move(out));
}

Map* Runtime::find_map(std::string_view name) const {
    for (const auto& m : maps_) {
        if (m->spec().name == name) {
            return m.get();
        }
    }
    return nullptr;
}

Map* Runtime::map_from_handle(uint64_t handle) const {
    for (const auto& m : maps_) {
        if (reinterpret_cast<uintptr_t>(m.get()) == handle) {
            return m.get();
        }
    }
    return nullptr;
}

Expected<Unit> Runtime::set_tail_call_target(std::string_view prog_array, uint32_t slot, const vm::Interpreter* program,
                                             uint32_t id) {
    Map* m = find_map(prog_array);
    auto* handles = dynamic_cast<HandleMap*>(m);
    if (handles == nullptr || m->spec().type != vm::MapType::ProgArray) {
        return make_error("map '" + std::string(prog_array) + "'", "is not a prog_array of this runtime");
    }
    const int r = handles->set_handle(&slot, reinterpret_cast<uintptr_t>(program), id);
    if (r != 0) {
        return make_error(
            "map '" + std::string(prog_array) + "'",
            "slot " + std::to_string(slot) + " is beyond max_entries " + std::to_string(m->spec().max_entries));
    }
    return Unit{};
}

std::vector<std::string> Runtime::trace_lines() const {
    std::lock_guard lock(trace_mutex_);
    return {trace_lines_.begin(), trace_lines_.end()};
}

uint64_t Runtime::trace_lines_dropped() const {
    std::lock_guard lock(trace_mutex_);
    return trace_dropped_;
}

void Runtime::trace(std::string_view line) {
    if (options_.trace_sink) {
        options_.trace_sink(line);
        return;
    }
    std::lock_guard lock(trace_mutex_);
    if (options_.trace_capacity == 0) {
        ++trace_dropped_;
        return;
    }
    if (trace_lines_.size() >= options_.trace_capacity) {
        trace_lines_.pop_front();
        ++trace_dropped_;
    }
    trace_lines_.emplace_back(line);
}

std::optional<std::pair<uint32_t, uint64_t>> Runtime::last_redirect() const {
    std::lock_guard lock(trace_mutex_);
    return redirect_;
}

void Runtime::record_redirect(uint32_t ifindex, uint64_t flags) {
    std::lock_guard lock(trace_mutex_);
    redirect_ = std::make_pair(ifindex, flags);
}

void Runtime::prepare(vm::RunInput& input, std::vector<vm::Region>& regions, vm::ProgramType type) const {
    input.program_type = type;
    regions.insert(regions.end(), regions_.begin(), regions_.end());
    input.regions = regions;
    input.runtime = const_cast<Runtime*>(this);
}

}  // namespace bpfvm::helpers
