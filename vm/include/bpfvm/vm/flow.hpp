// Control flow of a validated program, as every pass that walks it sees it: the successors of an
// instruction within its function, and the instruction budget's charge points.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "bpfvm/vm/helpers.hpp"
#include "bpfvm/vm/program.hpp"

namespace bpfvm::vm {

// Where control goes after the instruction at `pc`, within its function: the next instruction
// and a jump target, each -1 when absent. Calls fall through (the callee is a function of its
// own); exits and kernel-function calls (which trap) have no successor.
struct Successors {
    int64_t next = -1;
    int64_t target = -1;
};
Successors successors(const Program& program, std::size_t pc);

// The successors of every instruction, computed once for the passes that walk them many times.
// The second slot of an lddw has none.
class ControlFlow {
public:
    explicit ControlFlow(const Program& program);
    [[nodiscard]] int32_t next(std::size_t pc) const { return next_[pc]; }
    [[nodiscard]] int32_t target(std::size_t pc) const { return target_[pc]; }
    [[nodiscard]] std::size_t size() const { return next_.size(); }

private:
    std::vector<int32_t> next_;
    std::vector<int32_t> target_;
};

// The instruction budget of checked runs is charged ahead, at charge points: each function
// entry, and each loop header (the target of a back edge of a depth-first walk from the function
// entries; every cycle passes through one). A charge point costs the longest path, in
// instructions, from it to an exit or to the next charge point. Every checked engine charges
// the same amounts at the same places, so they all stop at the same pc; the budget bounds the
// instructions a run executes (a run that branches around its longest paths pays for them).
//
// cost[pc] is the charge at pc (0 where pc is not a charge point).
std::vector<uint32_t> budget_charges(const Program& program);
std::vector<uint32_t> budget_charges(const Program& program, const ControlFlow& flow);

// How many bytes below r10 a run of `program` can touch in any frame: when r10 is used only as
// the base of loads, stores and atomics with constant offsets (never copied, compared, stored
// or passed on), the deepest such offset rounded up to 32 bytes; otherwise the whole frame
// (kStackFrameBytes). Engines zero only this much of each frame they enter: the rest is memory
// the program has no way to address.
uint32_t frame_bytes_used(const Program& program);

// Whether a run of `program` may run callbacks (CallContext::invoke): it calls a helper that takes
// a function (an argument of kind ArgKind::Function), or calls helpers by a register (callx).
// Only then do the engines run a program's functions as callbacks (the JIT compiles the entries
// for it); an invoke from any other helper fails (see CallContext::invoke).
bool may_run_callbacks(const Program& program, const HelperTable& helpers);
// ... for one helper call (call or callx) of it.
bool may_run_callbacks(const Instruction& call, const HelperTable& helpers);

}  // namespace bpfvm::vm
