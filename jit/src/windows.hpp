// Checked mode's check hoisting (private to jit/, shared by the back ends): loops whose accesses
// walk memory by a fixed stride per iteration run, for as many iterations as provably stay inside
// the regions their first iteration lands in, as a copy without access checks.
//
// A window loop is a single path of instructions from a budget charge point (the header) back to
// it: each instruction on it goes on to the next by falling through or by a jump (a goto, or a
// conditional jump to the header or backwards; its other way out leaves the loop), nothing but
// the path itself enters it except at the header, and it holds no calls, exits, atomics or
// legacy packet loads.
// Within it every register value that an access address depends on is, at the start of each
// iteration, its value at the start of the first one plus the iteration number times a constant
// (a 64-bit `r += c`, or a 32-bit `w = w + c` while it does not wrap: a guard bounds the window so
// that it cannot). A register that ends the iteration as a sum of such registers moves so too,
// from the first iteration on when at entry it holds that sum less one step (WindowEntry, checked
// at run time). Each access is then at X + k * stride in iteration k, and the window at loop
// entry is (at most 2^32)
//
//   N = min over accesses of ((hi - X) >> s) + 1 (stride > 0; (X - lo) for stride < 0), s = ceil(log2 |stride|)
//
// (rounding |stride| up to a power of two only shortens the window: it stays sound).
// with [lo, hi] taken from the access cache once the first address is found in a region (never
// trapping: an address outside every region just means no window). The budget bounds the copy:
// the run's budget is lowered to N * cost for the window, so the charge at the header of
// iteration N fails and hands the rest of the loop, with the real budget back, to the checked code.
// Every exit from the copy gives the held-back budget back too.
#pragma once

#include <cstdint>
#include <vector>

#include "bpfvm/vm/program.hpp"

namespace bpfvm::jit {

struct WindowAccess {
    uint32_t pc = 0;  // the load or store
    uint8_t width = 0;
    bool write = false;
    uint8_t terms = 0;        // 1 or 2 registers summed
    uint8_t regs[2] = {};     // ... their values at the header
    int32_t disp = 0;         // plus this: the address in the first iteration
    int64_t stride = 0;       // the address moves by this per iteration (0: it stays)
};

// A register whose value enters an address through a 32-bit operation: r + dz stays below 2^32
// for every dz used (up to max_dz) in every iteration of the window.
struct WindowGuard {
    uint8_t reg = 0;
    uint32_t max_dz = 0;
    int64_t stride = 0;  // r's step per iteration (>= 0)
};

// A register that moves regularly only if, at entry, it holds the sum of registers (its value at
// the back edge) less its step: checked at run time, no window otherwise.
struct WindowEntry {
    uint8_t reg = 0;
    uint8_t terms = 0;
    uint8_t regs[2] = {};
    int32_t disp = 0;
};

struct Window {
    uint32_t header = 0;
    std::vector<uint32_t> path;  // the loop's instructions in the order they run, header first
    uint32_t cost = 0;           // the budget charge at the header (budget_charges)
    std::vector<WindowAccess> accesses;
    std::vector<WindowGuard> guards;
    std::vector<WindowEntry> entries;
};

// Ascending by header; no instruction is on two paths. `costs` is vm::budget_charges(program).
std::vector<Window> find_windows(const vm::Program& program, const std::vector<uint32_t>& costs,
                                 const std::vector<uint8_t>& boundary);

}  // namespace bpfvm::jit
