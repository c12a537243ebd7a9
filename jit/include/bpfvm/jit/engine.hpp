// The engines that run a program, by one name each, behind one interface: what the CLI, the
// tests, the benchmarks and the fuzz targets choose from instead of knowing each engine's API.
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "bpfvm/jit/jit.hpp"
#include "bpfvm/vm/interpreter.hpp"

namespace bpfvm::jit {

enum class Engine : uint8_t {
    InterpChecked,  // interpreter with run-time checks (unverified programs)
    Interp,         // interpreter without checks (verified programs)
    JitChecked,     // JIT with run-time checks
    Jit,            // JIT without checks
};

// Whether this build has a JIT back end for the machine it runs on.
#if defined(BPFVM_JIT_X86_64)
inline constexpr bool kHaveJit = true;
#else
inline constexpr bool kHaveJit = false;
#endif

inline constexpr std::array<Engine, 4> kAllEngines = {Engine::InterpChecked, Engine::Interp, Engine::JitChecked,
                                                      Engine::Jit};
// The engines this build can run: all of them, or the interpreter's where there is no JIT.
std::vector<Engine> available_engines();

std::string_view to_string(Engine engine);  // "interp-checked", "interp", "jit-checked", "jit"
std::optional<Engine> engine_from_string(std::string_view name);
constexpr bool is_checked(Engine e) {
    return e == Engine::InterpChecked || e == Engine::JitChecked;
}
constexpr bool is_jit(Engine e) {
    return e == Engine::JitChecked || e == Engine::Jit;
}

// A program prepared for one engine.
class Executable {
public:
    static Expected<Executable> create(const vm::Program& program, const vm::HelperTable& helpers, Engine engine,
                                       const JitOptions& jit_options = {});

    // `budget` bounds the executed instructions in the checked engines (0 = none).
    [[nodiscard]] vm::RunResult run(const vm::RunInput& input, uint64_t budget = 0) const;
    [[nodiscard]] vm::RunResult run_buffer(std::span<uint8_t> buffer, uint64_t budget = 0) const;

    [[nodiscard]] Engine engine() const { return engine_; }
    // The JIT's code, for the JIT engines (null for the interpreter).
    [[nodiscard]] const JitProgram* jit() const { return jit_.get(); }

private:
    Executable() = default;
    Engine engine_ = Engine::InterpChecked;
    std::optional<vm::Interpreter> interp_;
    std::shared_ptr<const JitProgram> jit_;
};

}  // namespace bpfvm::jit
