// The interpreter: pre-decoded instructions and threaded dispatch, in two modes
// (DESIGN.md, decision 3).
//
// Checked mode is for programs nobody has verified: every load and store is checked against
// the regions the program may touch (its stack, and what RunInput::regions lists), atomics must
// be aligned, and an optional budget bounds the number of executed instructions (charged ahead
// at function entries and loop headers: vm/flow.hpp). Any fault ends the run with a Trap naming
// the pc and address; the host never crashes.
//
// Fast mode has no run-time checks and is only for programs a verifier accepted. On every
// program that does not trap, both modes give the same results.
//
// Defined in both modes, so that results never depend on earlier runs: registers r0, r3-r9 start
// at 0, and each stack frame starts zeroed. Not checked: reading r1-r5 after a helper call
// (they keep their values).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "bpfvm/vm/expected.hpp"
#include "bpfvm/vm/helpers.hpp"
#include "bpfvm/vm/memory.hpp"
#include "bpfvm/vm/program.hpp"
#include "bpfvm/vm/specs.hpp"

namespace bpfvm::vm {

enum class Mode : uint8_t {
    Checked,
    Fast,
};

struct RunOptions {
    Mode mode = Mode::Checked;
    // Checked mode only: the instruction budget (0 = no limit), charged at function entries and
    // loop headers for the longest path to the next one (budget_charges in vm/flow.hpp).
    uint64_t budget = 0;
    // Tail calls the chain has taken before this run (another engine started it).
    uint32_t tail_calls = 0;
};

// LD_ABS and LD_IND offsets are signed 32-bit values: they reach the first 2 GiB of a packet, and
// every engine treats a packet as at most that long.
inline constexpr uint64_t kPacketReach = uint64_t{1} << 31;

// The registers and memory a run starts with.
struct RunInput {
    uint64_t r1 = 0;
    uint64_t r2 = 0;
    uint64_t r3 = 0;
    uint64_t r4 = 0;
    uint64_t r5 = 0;
    uint32_t start_pc = 0;                                // a function's entry (callbacks); 0 for the program
    uint32_t frames_above = 0;                            // callbacks: the frames the runs outside it use
    ProgramType program_type = ProgramType::Unspecified;  // helpers whose result depends on it read it
    std::span<const Region> regions;                      // memory the program may touch besides its stack
    std::span<const uint8_t> packet;                      // what LD_ABS / LD_IND read (RFC 9669, 5.5; kPacketReach)
    void* user = nullptr;                                 // passed to helpers in CallContext::user
    void* runtime = nullptr;                              // passed to helpers in CallContext::runtime
};

struct RunResult {
    uint64_t r0 = 0;
    std::optional<Trap> trap;
    uint64_t instructions = 0;  // budget charged (checked mode only; 0 in fast mode): at least the
                                // instructions executed, exactly that on paths that branch nowhere
    uint32_t tail_calls = 0;    // bpf_tail_call jumps taken
    // Internal: set when the program took a tail call (run() follows it).
    const void* tail_call = nullptr;
    uint64_t tail_call_ctx = 0;

    RunResult() = default;
    // A run that returned r0 without trapping. (Built this way, only the fields are written: the
    // compilers we use otherwise clear the whole struct, trap's storage included, which on some
    // of them is a `rep stos` that costs more than a JIT's empty program.)
    explicit RunResult(uint64_t returned) : r0(returned) {}

    [[nodiscard]] bool ok() const { return !trap.has_value(); }
};

inline constexpr uint32_t kMaxTailCalls = 33;  // MAX_TAIL_CALL_CNT: a chain of at most 33 jumps

class Interpreter {
public:
    // Prepares a program for execution; helper calls are bound to `helpers` now (a call to an id
    // missing from the table traps when executed). Fails if the program holds an lddw whose
    // map or variable reference was never resolved by a loader.
    static Expected<Interpreter> create(const Program& program, const HelperTable& helpers);

    [[nodiscard]] RunResult run(const RunInput& input, const RunOptions& options = {}) const;

    // The conformance suite's contract: r1 = the buffer (or 0 if empty), r2 = its length, and
    // the buffer is both the input region and the packet.
    [[nodiscard]] RunResult run_buffer(std::span<uint8_t> buffer, const RunOptions& options = {}) const;

    // One pre-decoded instruction (internal layout, public only so the run loop can be a free
    // function template).
    struct Slot {
        int32_t handler;  // offset of this op's handler in the run loop (direct threading)
        uint8_t op;       // Op
        uint8_t dst;
        uint8_t src;
        uint8_t width;  // bits for movsx / byte swaps
        int32_t off;    // memory offset, or absolute target pc for jumps and local calls
        int32_t imm;    // imm; helper index for calls; lddw: low half here, high half in the tail slot
    };
    static_assert(sizeof(Slot) == 16);

private:
    std::vector<Slot> checked_;         // slots for checked mode
    std::vector<Slot> fast_;            // the same, pointing at the fast loop's handlers
    std::vector<Helper> bound_;         // helpers called by id (index in Slot::imm)
    std::vector<uint8_t> is_function_;  // per pc: a function entry (valid callback targets)
    bool callbacks_ = false;            // may_run_callbacks: else invoke refuses
    std::vector<uint32_t> charges_;     // the budget charged at each pc (budget_charges)
    uint32_t zero_bytes_ = 0;           // of each frame entered, zeroed (frame_bytes_used)

    static uint64_t invoke_callback(CallContext* ctx, uint64_t fn, uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4,
                                    uint64_t r5);
    [[nodiscard]] RunResult run_from(const RunInput& input, Mode mode, uint64_t budget, uint32_t tail_calls) const;
    HelperTable helpers_;  // every helper, for callx
};

}  // namespace bpfvm::vm
