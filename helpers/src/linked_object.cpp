#include "bpfvm/helpers/linked_object.hpp"

#include "bpfvm/helpers/context.hpp"

namespace bpfvm::helpers {

bool uses_raw_memory(vm::ProgramType type) {
    return type == vm::ProgramType::Unspecified || type == vm::ProgramType::Syscall ||
           type == vm::ProgramType::RawTracepoint || type == vm::ProgramType::RawTracepointWritable;
}

Expected<std::unique_ptr<LinkedObject>> LinkedObject::create(const std::vector<vm::MapSpec>& maps,
                                                             const std::vector<ProgramSource>& programs,
                                                             RuntimeOptions options) {
    std::unique_ptr<LinkedObject> obj(new LinkedObject());
    Expected<std::unique_ptr<Runtime>> rt = Runtime::create(maps, std::move(options));
    if (!rt) {
        return rt.error();
    }
    obj->runtime_ = std::move(*rt);
    for (const ProgramSource& p : programs) {
        obj->types_[p.name] = p.type;
        const std::string where = "program '" + p.name + "'";
        if (!uses_raw_memory(p.type) && context_model(p.type) == nullptr) {
            obj->failures_.emplace(
                p.name,
                make_error(where,
                           "is a " + std::string(vm::to_string(p.type)) +
                               " program, whose context model bpfvm does not "
                               "have yet (xdp, tc, socket filter, syscall, raw tracepoint and .text programs run)"));
            continue;
        }
        Expected<vm::Program> linked = obj->runtime_->link(p.insns, p.type);
        if (!linked) {
            obj->failures_.emplace(p.name, make_error(where, linked.error().message()));
            continue;
        }
        Expected<vm::Interpreter> interp = vm::Interpreter::create(*linked, obj->runtime_->helpers());
        if (!interp) {
            obj->failures_.emplace(p.name, make_error(where, interp.error().message()));
            continue;
        }
        obj->programs_.emplace(p.name, std::make_unique<vm::Interpreter>(std::move(*interp)));
        obj->linked_.emplace(p.name, std::move(*linked));
    }
    // prog_array slots the object initialises (`.values = { [1] = &prog }`).
    for (const vm::MapSpec& m : maps) {
        if (m.type != vm::MapType::ProgArray) {
            continue;
        }
        uint32_t id = 1;
        for (const auto& [slot, name] : m.initial_slots) {
            auto it = obj->programs_.find(name);
            if (it == obj->programs_.end()) {
                continue;  // a program that could not be linked leaves its slot empty
            }
            Expected<Unit> set = obj->runtime_->set_tail_call_target(m.name, slot, it->second.get(), id++);
            if (!set) {
                return set.error();
            }
        }
    }
    return obj;
}

Expected<const vm::Interpreter*> LinkedObject::program(const std::string& name) const {
    auto it = programs_.find(name);
    if (it != programs_.end()) {
        return it->second.get();
    }
    auto f = failures_.find(name);
    if (f != failures_.end()) {
        return f->second;
    }
    return make_error("program '" + name + "'", "no such program");
}

const vm::Program* LinkedObject::linked_program(const std::string& name) const {
    auto it = linked_.find(name);
    return it == linked_.end() ? nullptr : &it->second;
}

vm::ProgramType LinkedObject::type(const std::string& name) const {
    auto it = types_.find(name);
    return it == types_.end() ? vm::ProgramType::Unspecified : it->second;
}

}  // namespace bpfvm::helpers
