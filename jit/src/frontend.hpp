// The JIT's shared front end (private to jit/): the state generated code runs against, the C hooks
// it calls, executable memory, and the interface a back end implements.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "bpfvm/jit/jit.hpp"

namespace bpfvm::jit {

struct AccessCache {
    uint64_t lo = ~uint64_t{0};
    uint64_t hi[4] = {};  // for accesses of 1, 2, 4 and 8 bytes
};

// What generated code reads and writes while it runs; its layout is part of the ABI between the
// front end and the back ends (they use offsetof).
struct RunState {
    uint64_t args[5] = {};   // r1..r5 at entry; r1..r5 for callx
    uint64_t stack_top = 0;  // r10 of the main frame
    vm::CallContext* call_ctx = nullptr;
    uint64_t saved_rsp = 0;  // native stack pointer at entry, for unwinding on a trap
    uint64_t spill[2] = {};  // what the callx hook leaves for the trap: register, helper id
    uint32_t depth = 0;      // bpf-to-bpf call depth
    uint32_t trap_kind = 0;  // 0: none; else TrapKind + 1
    uint32_t trap_pc = 0;
    uint64_t trap_address = 0;
    const uint8_t* packet = nullptr;  // what LD_ABS / LD_IND read
    uint64_t packet_size = 0;
    const vm::HelperTable* helpers = nullptr;  // for callx
    uint64_t callback_target = 0;              // callbacks: the function the callback entry calls
    // The frames entered in this run, [innermost r10 - 512, top): what checked accesses and
    // helpers may use of the stack. Calls and returns move `begin` by a frame.
    vm::Region stack_region;
    // Checked mode. The budget the run may still spend (kept in r9 while code runs; here across
    // C calls), and two caches of the last region a checked load (rd) or store (wr) landed in:
    // an access of k bytes at a hits when lo <= a <= hi[log2 k] (hi[i] = end - 2^i, the last
    // address such an access may start at), compared unsigned. An empty cache has lo = ~0.
    uint64_t budget = ~uint64_t{0};
    AccessCache rd;
    AccessCache wr;
    uint32_t trap_size = 0;  // memory traps: access width, store or not, the region's name
    uint32_t trap_write = 0;
    const char* trap_detail = nullptr;
    // Checked mode's windows (windows.hpp): the budget held back while a loop runs unchecked, and
    // the window's length while it is worked out across a call of bpfvm_jit_probe.
    uint64_t window_excess = 0;
    uint64_t window_n = 0;
};

// Packs a checked access for bpfvm_jit_check: pc, width and whether it stores.
constexpr uint64_t access_info(uint32_t pc, uint32_t len, bool write) {
    return (uint64_t{pc} << 32) | (uint64_t{write} << 8) | len;
}

using EntryFn = uint64_t (*)(RunState*);
using LeafFn = uint64_t (*)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);

// C functions generated code calls.
extern "C" uint64_t bpfvm_jit_callx(RunState* st, uint64_t id, uint32_t pc, uint32_t reg);
// Checked mode's slow path for an access the caches did not hold: finds its region and fills the
// caches, or records an OutOfBounds / ReadOnly trap in `st`.
extern "C" void bpfvm_jit_check(RunState* st, uint64_t addr, uint64_t info);
// Checked mode's windows: whether an access (as for bpfvm_jit_check) lies in a region it may use,
// and if so the caches now hold that region; 0 otherwise (nothing recorded: no trap).
extern "C" uint64_t bpfvm_jit_probe(RunState* st, uint64_t addr, uint64_t info);

// Code in read-execute pages, never writable and executable at once: written through a memory
// file that no writable mapping shows (or, where those are refused, in an anonymous mapping made
// read-execute after writing).
class ExecutableMemory {
public:
    static Expected<std::unique_ptr<ExecutableMemory>> create(std::span<const uint8_t> code);
    ~ExecutableMemory();
    ExecutableMemory(const ExecutableMemory&) = delete;
    ExecutableMemory& operator=(const ExecutableMemory&) = delete;

    [[nodiscard]] void* base() const { return base_; }
    [[nodiscard]] std::size_t size() const { return size_; }

private:
    ExecutableMemory(void* base, std::size_t size, void* chunk, std::size_t offset)
        : base_(base), size_(size), chunk_(chunk), offset_(offset) {}
    void* base_;
    std::size_t size_;
    void* chunk_;  // the memory file's chunk it lies in (frontend.cpp), or null: its own mapping
    std::size_t offset_;
};

// What a back end produces: position-independent code (relocated when copied), the offset of
// the entry point, and optionally a listing.
struct Compiled {
    // The code: in the back end's buffer, valid until the next compile on this thread (the front
    // end places it in executable memory at once; no copy of it is made in between).
    std::span<const uint8_t> code;
    std::size_t entry = 0;
    bool leaf = false;               // entry is `uint64_t f(r1, r2, r3, r4, r5)`, needing no RunState
    std::size_t callback_entry = SIZE_MAX;  // `uint64_t f(RunState*)` calling callback_target
                                            // (SIZE_MAX: none, vm::may_run_callbacks is false)
    std::vector<std::pair<uint32_t, std::size_t>> functions;  // (pc, offset of its call entry)
    std::vector<std::pair<uint32_t, uint32_t>> helper_calls;   // (pc, helper id) of each call, by pc
    std::string listing;
};

// Implemented by x86_64/backend.cpp. `base` is where the code will be copied (for absolute
// relocations).
Expected<Compiled> compile_x86_64(const vm::Program& program, const vm::HelperTable& helpers,
                                  const JitOptions& options);

}  // namespace bpfvm::jit
