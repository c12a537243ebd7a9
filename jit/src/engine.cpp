#include "bpfvm/jit/engine.hpp"

namespace bpfvm::jit {

std::string_view to_string(Engine engine) {
    switch (engine) {
        case Engine::InterpChecked:
            return "interp-checked";
        case Engine::Interp:
            return "interp";
        case Engine::JitChecked:
            return "jit-checked";
        case Engine::Jit:
            return "jit";
    }
    return "?";
}

std::vector<Engine> available_engines() {
    std::vector<Engine> out;
    for (Engine e : kAllEngines) {
        if (kHaveJit || !is_jit(e)) {
            out.push_back(e);
        }
    }
    return out;
}

std::optional<Engine> engine_from_string(std::string_view name) {
    for (Engine e : kAllEngines) {
        if (to_string(e) == name) {
            return e;
        }
    }
    return std::nullopt;
}

Expected<Executable> Executable::create(const vm::Program& program, const vm::HelperTable& helpers, Engine engine,
                                        const JitOptions& jit_options) {
    Executable x;
    x.engine_ = engine;
    if (is_jit(engine)) {
        JitOptions options = jit_options;
        options.checked = is_checked(engine);
        Expected<std::unique_ptr<JitProgram>> code = JitProgram::compile(program, helpers, options);
        if (!code) {
            return code.error();
        }
        x.jit_ = std::move(*code);
    } else {
        Expected<vm::Interpreter> interp = vm::Interpreter::create(program, helpers);
        if (!interp) {
            return interp.error();
        }
        x.interp_.emplace(std::move(*interp));
    }
    return x;
}

vm::RunResult Executable::run(const vm::RunInput& input, uint64_t budget) const {
    if (jit_ != nullptr) {
        return jit_->run(input, budget);
    }
    const vm::RunOptions options{is_checked(engine_) ? vm::Mode::Checked : vm::Mode::Fast,
                                 is_checked(engine_) ? budget : 0};
    return interp_->run(input, options);
}

vm::RunResult Executable::run_buffer(std::span<uint8_t> buffer, uint64_t budget) const {
    if (jit_ != nullptr) {
        return jit_->run_buffer(buffer, budget);
    }
    const vm::RunOptions options{is_checked(engine_) ? vm::Mode::Checked : vm::Mode::Fast,
                                 is_checked(engine_) ? budget : 0};
    return interp_->run_buffer(buffer, options);
}

}  // namespace bpfvm::jit
