// Helper functions as the VM sees them (DESIGN.md, decision 4): plain functions registered by
// id with a name and a prototype. The kernel's helpers live in helpers/; the embedder adds its own.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "bpfvm/vm/expected.hpp"
#include "bpfvm/vm/memory.hpp"
#include "bpfvm/vm/specs.hpp"

namespace bpfvm::vm {

// What a helper receives besides r1..r5.
struct CallContext {
    void* user = nullptr;  // the embedder's pointer from RunInput::user
    void* runtime = nullptr;
    ProgramType program_type = ProgramType::Unspecified;  // from RunInput::program_type          // the runtime the
                                                          // program was linked against (helpers/)
    std::span<const Region> regions;                      // memory the program may touch (excluding its stack)
    std::span<const Region> stack;                        // the program's stack (one region)
    uint32_t pc = 0;                                      // pc of the call instruction
    bool checked = false;                                 // the run is in checked mode
    // A helper that meets a fault it cannot express as a return value sets this to a static
    // string; the run then ends with a HelperFault trap.
    const char* fault = nullptr;
    // bpf_tail_call: a helper that sets this to another program's Interpreter makes the run
    // continue there (with r1 = tail_call_ctx) instead of returning. tail_calls counts the chain.
    const void* tail_call = nullptr;
    uint64_t tail_call_ctx = 0;
    uint32_t tail_calls = 0;
    // Callbacks (bpf_loop, ...): invoke(ctx, fn, r1..r5) runs the program's function `fn` (a
    // value the program got from an lddw of a function, see function_pointer) to its exit and
    // returns its r0. When the callback traps, invoke sets fault and callback_trap, and returns 0.
    // A helper that runs callbacks declares the argument that carries the function as
    // ArgKind::Function: callbacks run only in programs that call such a helper (or callx; see
    // may_run_callbacks), and invoke sets fault (kNoCallbacks) and returns 0 in any other.
    uint64_t (*invoke)(CallContext* ctx, uint64_t fn, uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4,
                       uint64_t r5) = nullptr;
    const void* engine = nullptr;     // the engine running the program (for invoke)
    // The calls the helper's caller is inside: bpf-to-bpf calls, and callbacks with theirs, of
    // every run up to this one (the frames in use, minus one). A callback takes one more frame,
    // and no chain may use more than kMaxCallFrames: invoke refuses one that would.
    uint32_t depth = 0;
    uint64_t* budget_left = nullptr;  // checked runs: the instructions the run may still execute
    std::optional<Trap> callback_trap;
    // One more region the next invoked callback may read (a key a helper lends it).
    const Region* callback_region = nullptr;

    // True if [addr, addr + len) lies inside one region the program may touch.
    [[nodiscard]] bool allowed(uint64_t addr, uint64_t len, bool write) const;
    // For engines' invoke: true, with the fault set, when a callback run now would take more than
    // kMaxCallFrames frames in all.
    [[nodiscard]] bool callback_too_deep();
};

// The fault of an invoke in a program that calls no helper taking a function (may_run_callbacks).
inline constexpr const char* kNoCallbacks =
    "a helper ran a callback, but the program calls no helper with a function argument (ArgKind::Function)";

// What a program sees for the address of its function at `pc` (lddw src 4 after linking): an
// opaque value only helpers that take callbacks understand.
inline constexpr uint32_t kFunctionPointerTag = 0xca11bacc;
constexpr uint64_t function_pointer(uint32_t pc) {
    return (uint64_t{kFunctionPointerTag} << 32) | pc;
}

// The helper id a CO-RE relocation with no match in the target BTF leaves behind (as libbpf):
// calling it traps, so only code that reaches the access fails.
inline constexpr int32_t kCorePoisonHelper = 0xbad2310;

using HelperFn = uint64_t (*)(uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4, uint64_t r5, CallContext* ctx);

// Argument kinds, as the verifier will check them (after the kernel's bpf_arg_type).
enum class ArgKind : uint8_t {
    None,         // argument not used
    Anything,     // any initialised value
    Scalar,       // a number
    MapHandle,    // pointer to a map (lddw map form)
    MapKey,       // pointer to key_size readable bytes
    MapValue,     // pointer to value_size readable bytes
    Context,      // the program's context pointer
    ReadableMem,  // pointer to memory, size in the next argument
    WritableMem,  // pointer to memory the helper fills, size in the next argument
    Size,         // size of the preceding memory argument, > 0
    SizeOrZero,   // size of the preceding memory argument, >= 0
    Function,     // pointer to a callback subprogram
};

enum class RetKind : uint8_t {
    Integer,         // a number (possibly a negative errno)
    Void,            // nothing meaningful in r0
    MapValueOrNull,  // pointer into a map value, or 0
    MemOrNull,       // pointer to memory of a known size, or 0
};

struct HelperPrototype {
    RetKind ret = RetKind::Integer;
    std::array<ArgKind, 5> args{ArgKind::Anything, ArgKind::Anything, ArgKind::Anything, ArgKind::Anything,
                                ArgKind::Anything};
};

struct Helper {
    uint32_t id = 0;
    std::string name;
    HelperFn fn = nullptr;
    HelperPrototype prototype;

    // An argument is a function (the helper may run it as a callback).
    [[nodiscard]] bool takes_function() const {
        for (ArgKind a : prototype.args) {
            if (a == ArgKind::Function) {
                return true;
            }
        }
        return false;
    }
};

// The helpers a program may call, by id.
// Copies share the helpers (each engine keeps the table it was made with, so copying must be
// cheap); add() gives this table its own copy first when it is shared.
class HelperTable {
public:
    // Fails if the id is already taken or fn is null.
    Expected<Unit> add(uint32_t id, std::string name, HelperFn fn, HelperPrototype prototype = {});
    [[nodiscard]] const Helper* find(uint32_t id) const;
    [[nodiscard]] const std::vector<Helper>& all() const;

private:
    std::shared_ptr<std::vector<Helper>> helpers_;  // sorted by id; null when empty
};

}  // namespace bpfvm::vm
