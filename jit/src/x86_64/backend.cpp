// x86-64 back end on asmjit's Assembler. Fixed register map (as the kernel's JIT):
//
//   eBPF  x86-64  role
//   r0    rax     return value
//   r1    rdi     argument 1 (SysV argument 1: helper calls need no moves)
//   r2    rsi     argument 2
//   r3    rdx     argument 3
//   r4    rcx     argument 4 (shifts by a register borrow it for cl)
//   r5    r8      argument 5
//   r6    rbx     callee-saved
//   r7    r13     callee-saved
//   r8    r14     callee-saved
//   r9    r15     callee-saved
//   r10   rbp     frame pointer (read-only)
//         r12     RunState*
//         r9      checked mode: the instruction budget left; CallContext* for helpers (6th SysV
//                 argument)
//         r10,r11 scratch; r10 holds the address of a checked access
//
// The generated function is `uint64_t f(RunState*)`. Verified mode has no run-time checks.
// Checked mode adds, per load or store that is not inside the current frame by construction
// (r10 plus a constant), an inline test against a one-entry cache of the region last used
// (RunState::rd for loads, wr for stores: two compares) and, on a miss, a call to
// bpfvm_jit_check through one shared stub; at each charge point (vm/flow.hpp), `sub r9, cost; jb` charges the budget.
// Loops whose accesses walk memory by a fixed stride also get a copy without checks, run for as
// many iterations as their setup proves stay in bounds (windows.hpp).
#include <asmjit/x86.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>
#include <iterator>
#include <limits>
#include <optional>
#include <random>

#include "../analysis.hpp"
#include "../frontend.hpp"
#include "../windows.hpp"
#include "fast_assembler.hpp"
#include "bpfvm/vm/assembler.hpp"
#include "bpfvm/vm/flow.hpp"

namespace bpfvm::jit {

namespace {

using namespace asmjit;
using namespace asmjit::x86;
using vm::Form;
using vm::Sem;

const Gp kRegs[vm::kNumRegisters] = {rax, rdi, rsi, rdx, rcx, r8, rbx, r13, r14, r15, rbp};
// The compiling machine's vendor, for JitOptions::Tuning::Host (see alu_imm's shifts).
const bool kHostIsIntel = CpuInfo::host().isVendor("INTEL");
const Gp kState = r12;

// A few registers to save and restore around a call or in a frame, in order: a fixed array
// (these are made for every helper call and exit; a std::vector costs an allocation each).
class RegList {
public:
    void push_back(const Gp& g) {
        BPFVM_ASSERT(size_ < kCapacity);
        regs_[size_++] = g;
    }
    [[nodiscard]] std::size_t size() const { return size_; }
    [[nodiscard]] bool empty() const { return size_ == 0; }
    [[nodiscard]] const Gp& back() const { return regs_[size_ - 1]; }
    [[nodiscard]] const Gp* begin() const { return regs_; }
    [[nodiscard]] const Gp* end() const { return regs_ + size_; }
    [[nodiscard]] std::reverse_iterator<const Gp*> rbegin() const { return std::reverse_iterator<const Gp*>(end()); }
    [[nodiscard]] std::reverse_iterator<const Gp*> rend() const { return std::reverse_iterator<const Gp*>(begin()); }

private:
    static constexpr std::size_t kCapacity = 8;
    Gp regs_[kCapacity];
    std::size_t size_ = 0;
};
// The same registers by width, kRegsBy[w64][r]: indexed, where choosing `w64 ? r : r.r32()`
// compiles to a branch that a program's mix of 32- and 64-bit instructions mispredicts.
const Gp kRegsBy[2][vm::kNumRegisters] = {{eax, edi, esi, edx, ecx, r8d, ebx, r13d, r14d, r15d, ebp},
                                          {rax, rdi, rsi, rdx, rcx, r8, rbx, r13, r14, r15, rbp}};

// A label per pc, most of them none: kept as label ids (4 bytes a pc, where a Label is 16), so
// that a compile writes and reads less memory; in a vector kept per thread from one compile to
// the next (as the facts are), so that none is allocated.
class LabelTable {
public:
    explicit LabelTable(std::vector<uint32_t>& ids) : ids_(ids) {}
    void reset(std::size_t n) {
        static_assert(Globals::kInvalidId == 0xffffffffu);
        ids_.resize(n);
        std::memset(ids_.data(), 0xff, n * sizeof(uint32_t));  // (assign fills one element at a time)
    }
    Label operator[](std::size_t pc) const { return Label(ids_[pc]); }
    void set(std::size_t pc, const Label& label) { ids_[pc] = label.id(); }

private:
    std::vector<uint32_t>& ids_;
};

Mem field(std::size_t offset, uint32_t size = 8) {
    return ptr(kState, static_cast<int32_t>(offset), size);
}

uint32_t trap_code(vm::TrapKind k) {
    return static_cast<uint32_t>(k) + 1;
}

class Lowering {
public:
    Lowering(const vm::Program& program, const vm::HelperTable& helpers, FastAssembler& a, const JitOptions& options)
        : p_(program),
          helpers_(helpers),
          a_(a),
          listing_(options.keep_listing),
          checked_(options.checked),
          blind_(options.blind_constants),
          intel_(options.tuning == JitOptions::Tuning::Intel ||
                 (options.tuning == JitOptions::Tuning::Host && kHostIsIntel)) {
        if (checked_) {
            costs_ = vm::budget_charges(program);
        }
        zero_bytes_ = vm::frame_bytes_used(program);
        analyse(program, facts_);
        plan(program, facts_, PlanOptions{!blind_}, steps_);
        find_loops();
        if (checked_) {
            for (Window& w : find_windows(program, costs_, facts_.boundary)) {
                if (window_of_.empty()) {
                    window_of_.assign(program.size(), -1);
                    path_index_.assign(program.size(), 0);
                }
                const auto index = static_cast<int32_t>(windows_.size());
                for (std::size_t i = 0; i < w.path.size(); ++i) {
                    window_of_[w.path[i]] = index;
                    path_index_[w.path[i]] = static_cast<uint32_t>(i);
                }
                // The copy lowers whole steps: a step that also holds instructions off the path
                // (a fused way out, say `if (c) goto header; goto T`) would take the copy where
                // the window's proof does not go. No window then.
                const bool whole = std::all_of(w.path.begin(), w.path.end(), [&](uint32_t pc) {
                    for (std::size_t k = pc; k < pc + steps_[pc].span; k += p_[k].slots()) {
                        if (window_of_[k] != index) {
                            return false;
                        }
                    }
                    return true;
                });
                if (!whole) {
                    for (const uint32_t pc : w.path) {
                        window_of_[pc] = -1;
                    }
                    continue;
                }
                windows_.push_back(WindowCode{std::move(w), {}, {}, {}, {}, {}, {}});
            }
        }
        if (blind_ && options.blinding_seed != 0) {
            keys_.seed(options.blinding_seed);
        } else if (blind_) {
            std::random_device seed;
            keys_.seed((uint64_t{seed()} << 32) | seed());
        }
    }

    asmjit::Error run() {
        // Labels only where code jumps or calls to (and pc 0): fewer labels, faster compiles.
        labels_.reset(p_.size());
        for (std::size_t pc = 0; pc < p_.size(); ++pc) {
            if (pc == 0 || (facts_.boundary[pc] & Facts::kTarget) != 0) {
                labels_.set(pc, a_.newLabel());
            }
        }
        for (WindowCode& w : windows_) {
            w.checked = a_.newLabel();
            w.end = a_.newLabel();
            // Labels where the path goes on by a jump (in the copy), and where it leaves by
            // falling through (in the program).
            const std::vector<uint32_t>& path = w.window.path;
            unroll(w);
            w.copy.resize(path.size() * w.copies);
            for (std::size_t i = 0; i < path.size(); ++i) {
                if (i == 0 || (facts_.boundary[path[i]] & Facts::kTarget) != 0) {
                    for (unsigned c = 0; c < w.copies; ++c) {
                        w.copy[c * path.size() + i] = a_.newLabel();  // a jump lands there (even a `goto +0`)
                    }
                }
                const std::size_t after = path[i] + p_[path[i]].slots();
                const std::size_t next = i + 1 < path.size() ? path[i + 1] : path[0];
                const Form f = p_[path[i]].info().form;
                if (next != after && f != Form::Jump && f != Form::Jump32 && after < p_.size() &&
                    !labels_[after].isValid()) {
                    labels_.set(after, a_.newLabel());
                }
            }
        }
        epilogue_ = a_.newLabel();
        unwind_ = a_.newLabel();
        check_stub_ = a_.newLabel();
        callback_entry_ = a_.newLabel();
        call_labels_.reset(p_.size());
        for (uint32_t f : p_.functions()) {
            call_labels_.set(f, a_.newLabel());
        }
        // Functions run as callbacks only in programs that call a helper taking a function
        // (vm::may_run_callbacks); the first one then too (a program can make any function's
        // address itself). It also runs as a callee when it is called.
        for (const uint32_t pc : facts_.calls) {  // (helper calls among them)
            if (vm::may_run_callbacks(p_[pc], helpers_)) {
                runs_callbacks_ = true;
                break;
            }
        }
        main_is_called_ = facts_.main_is_called || runs_callbacks_;
        leaf_ = is_leaf();
        if (leaf_) {
            leaf_prologue();
        } else {
            prologue();
        }
        find_candidates();
        find_rotations();
        find_exit_moves();
        next_candidate_ = candidates_.empty() ? SIZE_MAX : candidates_.back();
        next_event_ = std::min(next_candidate_, next_exit_move_);
        // (What does not change from one instruction to the next is held in locals: the calls in
        // between could change members, as far as the compiler knows.)
        const std::size_t n = p_.size();
        const bool listing = listing_;
        const bool checked = checked_;
        const bool windows = !window_of_.empty();
        const std::vector<uint32_t>& entries = p_.functions();
        std::size_t next_function = 1;
        std::size_t next_entry = entries.size() > 1 ? entries[1] : SIZE_MAX;
        for (std::size_t pc = 0; pc < n; ++pc) {
            if (p_.is_tail(pc)) {
                continue;
            }
            if (pc == next_entry) [[unlikely]] {
                // Calls enter here and get a frame; jumps to the function's first instruction
                // (a loop) land after it.
                ++function_;
                a_.bind(call_labels_[pc]);
                enter_frame();
                set_falls_in(true);
                ++next_function;
                next_entry = next_function < entries.size() ? entries[next_function] : SIZE_MAX;
            }
            if (labels_[pc].isValid()) {
                if (is_loop_top(pc) && !is_window_header(pc)) {
                    align_loop(pc);  // (a window's loop starts after its setup, aligned there)
                } else if (!rotated_.empty()) {
                    align_rotated(pc);
                }
                a_.bind(labels_[pc]);
            }
            window_ = windows ? window_of_[pc] : -1;
            if (window_ >= 0 && windows_[static_cast<std::size_t>(window_)].window.header == pc) {
                window_setup(windows_[static_cast<std::size_t>(window_)]);
            }
            const Step& step = steps_[pc];
            if (step.kind == Fused::Covered) {
                continue;  // lowered with an earlier instruction (whose listing names it)
            }
            // One compare for the rare steps (a candidate, an exit move, a jump a step waits for).
            const bool special = pc >= next_event_;
            if (special && defers(pc)) [[unlikely]] {
                next_event_ = std::min({next_candidate_, next_exit_move_, pending_jump_});
                continue;
            }
            if (step.kind == Fused::Select && !special && window_ < 0) [[unlikely]] {
                select_falls_ = true;  // (the step after it is lowered next: see adds_carry)
                if (!blind_ && schedule_from(pc) && schedule_.end <= next_event_) {
                    select_falls_ = false;
                    if (checked && costs_[pc] != 0) {
                        charge(pc);
                    }
                    lower_schedule(schedule_, listing);
                    falls_from_ = schedule_.last;
                    pc = schedule_.end - 1;
                    continue;
                }
            }
            if (listing) {
                list_step(pc);
            }
            if (checked && costs_[pc] != 0) {
                charge(pc);
            }
            if (!special || pc != pending_jump_) [[likely]] {
                if (step.kind == Fused::Alone && p_[pc].imm == 1 && zeroed_for_setcc(pc)) [[unlikely]] {
                    a_.xor_(kRegs[p_[pc].dst].r32(), kRegs[p_[pc].dst].r32());
                } else if (pc == carry_pc_) [[unlikely]] {
                    add_carry(pc);
                } else {
                    lower_step(pc, step);
                }
            } else {
                lower_pending_jump(pc);
            }
            if (special) [[unlikely]] {
                next_event_ = std::min({next_candidate_, next_exit_move_, pending_jump_});
            }
            falls_from_ = pc;  // (falls_in() works it out if a label needs it)
            if (window_ >= 0) {
                // The loop's way back by falling into its header skips the setup there.
                const WindowCode& w = windows_[static_cast<std::size_t>(window_)];
                if (falls_through(pc) && fall_target(pc) == w.window.header) {
                    a_.jmp(w.checked);
                    set_falls_in(false);
                }
            }
        }
        BPFVM_ASSERT(carry_pc_ == SIZE_MAX);  // (each add that takes a carry was lowered)
        window_ = -1;
        for (std::size_t i = 0; i < windows_.size(); ++i) {
            window_copy(i);
        }
        cold_divides();
        taken_stubs();
        if (leaf_) {
            leaf_epilogue();
        } else {
            tails();
            if (runs_callbacks_) {
                callback_entry();
            }
        }
        return kErrorOk;
    }

    // The budget charge at pc (checked mode, costs_[pc] not 0).
    void charge(std::size_t pc) {
        a_.sub(r9, costs_[pc]);
        a_.jb(trap(vm::TrapKind::BudgetExhausted, static_cast<uint32_t>(pc), 0, costs_[pc]));
    }

    // A leaf: one function, verified mode, no calls of any kind and no legacy packet loads. Its
    // code never traps and needs no RunState: it is a plain C function
    // `uint64_t f(r1, r2, r3, r4, r5)` (the register map is SysV's argument order), with its
    // frame on the native stack and only the callee-saved registers it uses pushed.
    bool leaf() const { return leaf_; }

private:
    const vm::Program& p_;
    const vm::HelperTable& helpers_;
    FastAssembler& a_;
    bool listing_;
    bool checked_;
    bool blind_;
    bool intel_;  // code for Intel's cores (JitOptions::tuning)
    // Constant blinding: a fresh key per immediate, from a 64-bit secret seed (splitmix64; made
    // only when blinding: a std::mt19937_64 costs a microsecond to construct on every compile).
    struct KeyStream {
        uint64_t state = 0;
        void seed(uint64_t s) { state = s; }
        uint64_t operator()() {
            uint64_t z = (state += 0x9e3779b97f4a7c15ull);
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
            return z ^ (z >> 31);
        }
    };
    KeyStream keys_;
    std::vector<uint32_t> costs_;
    uint32_t zero_bytes_ = vm::kStackFrameBytes;  // of each frame, zeroed on entry
    // Liveness, boundaries, widths (analysis.hpp), and how each instruction is lowered: kept per
    // thread from one compile to the next, so that their memory is neither allocated nor cold.
    static thread_local Facts thread_facts;
    static thread_local std::vector<Step> thread_steps;
    Facts& facts_ = thread_facts;
    std::vector<Step>& steps_ = thread_steps;
    Label check_stub_;
    bool uses_check_stub_ = false;
    Label probe_stub_;
    // Checked mode's windows (windows.hpp): each loop's setup at its header (labels_[header]),
    // the checked loop after it, the copy without checks, and where the copy's window ends.
    struct WindowCode {
        Window window;
        Label checked;
        // Unrolled (see unroll), the copy is laid out `copies` times: per copy, per instruction
        // of the path.
        unsigned copies = 1;
        std::vector<Label> copy;
        Label end;
        struct Exit {
            Label stub;
            std::size_t target;
            uint32_t refund;  // ... gives back the iterations charged ahead and not run (unrolled)
        };
        std::vector<Exit> exits;  // the copy's jumps out
        // Per instruction of the path, how many copies on an iteration is there from the one it
        // started in (the jumps back before it, modulo copies); and the whole path's.
        std::vector<uint8_t> phase;
        unsigned turn = 0;
        // The iterations an exit from position i of copy c gives back: the first copy's header
        // charged `copies` of them, and the one leaving is number m of those (it started in copy
        // m * turn), so copies - 1 - m were not run.
        uint32_t refund(unsigned c, std::size_t i) const {
            const unsigned start = (c + copies - phase[i]) % copies;
            unsigned m = 0;
            while (m + 1 < copies && (m * turn) % copies != start) {  // (turn is odd: m exists)
                ++m;
            }
            return copies - 1 - m;
        }
    };
    std::vector<WindowCode> windows_;
    std::vector<int32_t> window_of_;    // per pc: the window whose path it is on, or -1
    std::vector<uint32_t> path_index_;  // ... and where on that path
    int32_t window_ = -1;     // the window whose loop is being lowered, or -1
    bool in_copy_ = false;   // ... its copy without checks
    struct ProbeMiss {
        Label label;
        Label hit;
        Label fail;
        const WindowAccess* access;
    };
    std::vector<ProbeMiss> probe_misses_;
    struct SlowAccess {
        Label label;
        Label resume;
        uint64_t info;
        Gp address;  // where the address is (r10, or the base register)
    };
    std::vector<SlowAccess> slow_accesses_;
    static thread_local std::vector<uint32_t> thread_label_ids;
    static thread_local std::vector<uint32_t> thread_call_label_ids;
    LabelTable labels_{thread_label_ids};
    LabelTable call_labels_{thread_call_label_ids};
    std::size_t function_ = 0;  // the function being lowered (an index into functions())
    Label epilogue_;
    Label unwind_;
    bool main_is_called_ = false;  // the first function may run as a callee or a callback
    struct PendingTrap {
        Label label;
        vm::TrapKind kind;
        uint32_t pc;
        uint64_t address;
        uint32_t refund = 0;  // budget traps: the block's cost, given back (it was not spent)
        uint32_t size = 0;    // misaligned atomics: the width (the address is in r10)
    };
    std::vector<PendingTrap> traps_;
    Label packet_fail_;
    bool uses_packet_ = false;
    // Where a helper call goes when its helper set a fault or a tail call (one stub for all:
    // the trap's pc is the call's, from the CallContext); and the helper each call calls, for
    // the trap to name.
    Label helper_stop_;

public:
    std::vector<std::pair<uint32_t, uint32_t>> helper_calls_;  // (pc, helper id), ascending by pc

private:

    bool is_function_entry(std::size_t pc) const { return call_labels_[pc].isValid(); }

    bool leaf_ = false;
    uint16_t used_ = 0;  // registers the program names (bit k = rk)

    // A leaf (a plain function, its frame on the native stack): verified mode, one function, no
    // call of any kind and no packet load (what the analysis's first pass found). Then the
    // registers it names.
    bool is_leaf() {
        if (checked_ || p_.functions().size() != 1 || facts_.calls_or_packet) {
            return false;
        }
        for (std::size_t pc = 0; pc < p_.size(); ++pc) {
            if (!p_.is_tail(pc)) {
                used_ = static_cast<uint16_t>(used_ | (1u << p_[pc].dst) | (1u << p_[pc].src));
            }
        }
        return true;
    }

    RegList leaf_saved() const {
        RegList regs;
        for (unsigned r = 6; r <= 10; ++r) {
            if ((used_ >> r) & 1) {
                regs.push_back(kRegs[r]);
            }
        }
        return regs;
    }

    void leaf_prologue() {
        for (const Gp& g : leaf_saved()) {
            a_.push(g);
        }
        if ((used_ >> 10) & 1) {
            // r10 is 16-byte aligned, as in the other engines: the call left rsp 8 below a
            // multiple of 16, and each push moves it by 8.
            a_.sub(rsp, leaf_frame_bytes());
            a_.lea(rbp, ptr(rsp, static_cast<int32_t>(zero_bytes_)));
            zero_frame();
        }
        // r0 and r6-r9 start at 0 where the program may read them before it writes them (the
        // liveness is a superset: a loop's back edge may count every register live).
        for (unsigned r : {0u, 6u, 7u, 8u, 9u}) {
            if (facts_.live_into(0, r) && (r == 0 || ((used_ >> r) & 1) != 0)) {
                a_.xor_(kRegs[r].r32(), kRegs[r].r32());
            }
        }
    }

    int32_t leaf_frame_bytes() const {
        const bool aligned_after_pushes = leaf_saved().size() % 2 == 1;
        // (the frame is as deep as the program addresses it: a leaf runs verified, without checks)
        return static_cast<int32_t>(zero_bytes_ + (aligned_after_pushes ? 0 : 8));
    }

    void leaf_epilogue() {
        a_.bind(epilogue_);  // (unused: exits return in place)
    }

    void leaf_return() {
        if ((used_ >> 10) & 1) {
            a_.add(rsp, leaf_frame_bytes());
        }
        const RegList saved = leaf_saved();
        for (auto it = saved.rbegin(); it != saved.rend(); ++it) {
            a_.pop(*it);
        }
        a_.ret();
    }

    Label trap(vm::TrapKind kind, uint32_t pc, uint64_t address = 0, uint32_t refund = 0, uint32_t size = 0) {
        traps_.push_back({a_.newLabel(), kind, pc, address, refund, size});
        return traps_.back().label;
    }

    // ---- entry and exits ----------------------------------------------------------------

    // Entry (the program, or a callback): save the callee-saved registers, keep RunState* in r12
    // and the native stack pointer for unwinding, load r1-r5, zero r0 and r6-r9, r10 = stack top.
    // The same for every program of a mode: after its first time on a thread, one copy of the
    // bytes it encoded then (unless a listing is made, which shows the instructions).
    void enter() {
        static thread_local std::array<std::vector<uint8_t>, 2> cached;
        std::vector<uint8_t>& bytes = cached[checked_ ? 1 : 0];
        if (!listing_ && !bytes.empty() && a_.put_bytes(bytes.data(), bytes.size())) {
            return;
        }
        const std::size_t from = a_.offset();
        emit_entry();
        if (!listing_ && bytes.empty()) {
            const std::span<const uint8_t> made = a_.bytes_since(from);
            bytes.assign(made.begin(), made.end());
        }
    }
    void emit_entry() {
        a_.push(rbx);
        a_.push(rbp);
        a_.push(r12);
        a_.push(r13);
        a_.push(r14);
        a_.push(r15);
        a_.sub(rsp, 8);  // 6 pushes + return address: align rsp to 16
        a_.mov(kState, rdi);
        a_.mov(field(offsetof(RunState, saved_rsp)), rsp);
        a_.mov(rdi, field(offsetof(RunState, args)));
        a_.mov(rsi, field(offsetof(RunState, args) + 8));
        a_.mov(rdx, field(offsetof(RunState, args) + 16));
        a_.mov(rcx, field(offsetof(RunState, args) + 24));
        a_.mov(r8, field(offsetof(RunState, args) + 32));
        a_.xor_(eax, eax);
        a_.xor_(ebx, ebx);
        a_.xor_(r13d, r13d);
        a_.xor_(r14d, r14d);
        a_.xor_(r15d, r15d);
        a_.mov(rbp, field(offsetof(RunState, stack_top)));
        if (checked_) {
            a_.mov(r9, field(offsetof(RunState, budget)));
        }
    }

    void prologue() {
        enter();
        zero_frame();
    }

    // Each frame starts zeroed, as in the interpreter, as far down as the program can address it:
    // [rbp - zero_bytes_, rbp) (vm::frame_bytes_used; a multiple of 32).
    void zero_frame() {
        if (zero_bytes_ == 0) {
            return;
        }
        a_.xorps(xmm15, xmm15);
        if (zero_bytes_ <= 128) {
            for (uint32_t at = 16; at <= zero_bytes_; at += 16) {
                a_.movups(ptr(rbp, -static_cast<int32_t>(at)), xmm15);
            }
            return;
        }
        a_.mov(r11, -static_cast<int64_t>(zero_bytes_));
        Label loop = a_.newLabel();
        a_.bind(loop);
        a_.movups(ptr(rbp, r11), xmm15);
        a_.movups(ptr(rbp, r11, 0, 16), xmm15);
        a_.add(r11, 32);
        a_.jnz(loop);
    }

    // A call's frame is made and unmade by the callee, once per function rather than at every
    // call site: one more frame entered (depth, and the stack helpers and checked accesses may
    // use), the caller's r6-r9 that this function writes saved, r10 one frame down.
    void enter_frame() {
        a_.inc(field(offsetof(RunState, depth), 4));
        a_.sub(field(offsetof(RunState, stack_region) + offsetof(vm::Region, begin)), vm::kStackFrameBytes);
        a_.add(field(offsetof(RunState, stack_region) + offsetof(vm::Region, size)), vm::kStackFrameBytes);
        for (const Gp& g : saved_by(function_)) {
            a_.push(g);
        }
        a_.sub(rbp, vm::kStackFrameBytes);
        zero_frame();
    }

    // A called function's return: the frame unmade, the caller's registers back.
    void return_from_call() {
        const RegList saved = saved_by(function_);
        for (auto it = saved.rbegin(); it != saved.rend(); ++it) {
            a_.pop(*it);
        }
        if (saved.empty() || saved.back() != rbp) {
            a_.add(rbp, vm::kStackFrameBytes);
        }
        a_.dec(field(offsetof(RunState, depth), 4));
        a_.add(field(offsetof(RunState, stack_region) + offsetof(vm::Region, begin)), vm::kStackFrameBytes);
        a_.sub(field(offsetof(RunState, stack_region) + offsetof(vm::Region, size)), vm::kStackFrameBytes);
        if (checked_) {
            // The returned frame is no longer the program's: caches that may hold it are dropped.
            a_.mov(field(offsetof(RunState, rd) + offsetof(AccessCache, lo)), -1);
            a_.mov(field(offsetof(RunState, wr) + offsetof(AccessCache, lo)), -1);
        }
        a_.ret();
    }

    // What a called function saves: the r6-r9 it writes, and r10 when that keeps the count odd
    // (the call pushed a return address: function bodies run with rsp 16-byte aligned, so that
    // their C calls are).
    RegList saved_by(std::size_t function) const {
        RegList saved;
        const uint16_t writes = facts_.function_writes[function];
        for (unsigned r = 6; r <= 9; ++r) {
            if (((writes >> r) & 1) != 0) {
                saved.push_back(kRegs[r]);
            }
        }
        if (saved.size() % 2 == 0) {
            saved.push_back(rbp);
        }
        return saved;
    }

public:
    // Callbacks: an entry with the same prologue that calls the function RunState names and
    // returns its r0. The function's call entry counts its frame (depth is then at least 1, so
    // exits of the first function return).
    void callback_entry() {
        a_.bind(callback_entry_);
        enter();
        a_.add(rbp, vm::kStackFrameBytes);  // the call entry takes one frame: [top - 512, top)
        a_.call(field(offsetof(RunState, callback_target)));
        a_.jmp(epilogue_);
    }
    Label callback_entry_;
    bool runs_callbacks_ = false;  // the program has a callback entry (vm::may_run_callbacks)
    const LabelTable& call_labels() const { return call_labels_; }
    bool main_is_called() const { return main_is_called_; }

private:
    // Normal exit of the main function (once: in place of the last one's jump to it, or here).
    bool epilogue_placed_ = false;
    void epilogue() {
        a_.bind(epilogue_);
        epilogue_placed_ = true;
        if (checked_) {
            a_.mov(field(offsetof(RunState, budget)), r9);
        }
        a_.add(rsp, 8);
        a_.pop(r15);
        a_.pop(r14);
        a_.pop(r13);
        a_.pop(r12);
        a_.pop(rbp);
        a_.pop(rbx);
        a_.ret();
    }
    void tails() {
        // A call to the first function (or a callback of it): a frame, then its code (after the
        // prologue).
        function_ = 0;
        if (main_is_called_) {
            a_.bind(call_labels_[0]);
            enter_frame();
            a_.jmp(labels_[0]);
        }
        if (!epilogue_placed_) {
            epilogue();
        }
        // Traps: record what and where, then unwind to the entry's stack.
        for (const PendingTrap& t : traps_) {
            a_.bind(t.label);
            a_.mov(field(offsetof(RunState, trap_kind), 4), trap_code(t.kind));
            a_.mov(field(offsetof(RunState, trap_pc), 4), t.pc);
            if (t.address != 0) {
                a_.mov(r11, t.address);
                a_.mov(field(offsetof(RunState, trap_address)), r11);
            }
            if (t.refund != 0) {
                a_.add(r9, t.refund);
            }
            if (t.kind == vm::TrapKind::Misaligned) {
                a_.mov(field(offsetof(RunState, trap_address)), r10);
                a_.mov(field(offsetof(RunState, trap_size), 4), t.size);
                a_.mov(field(offsetof(RunState, trap_write), 4), 1);
            }
            a_.jmp(unwind_);
        }
        if (helper_stop_.isValid()) {
            helper_stop();
        }
        probe_misses();
        // Checked accesses the caches missed: ask bpfvm_jit_check, then resume or unwind.
        for (const SlowAccess& s : slow_accesses_) {
            a_.bind(s.label);
            if (s.address != r10) {
                a_.mov(r10, s.address);
            }
            a_.mov(r11, s.info);
            a_.call(check_stub_);
            a_.jmp(s.resume);
        }
        if (uses_check_stub_) {
            // r10 = address, r11 = access_info; every eBPF register survives.
            a_.bind(check_stub_);
            const Gp saved[] = {rax, rdi, rsi, rdx, rcx, r8, r9, r10};
            for (const Gp& g : saved) {
                a_.push(g);
            }
            a_.sub(rsp, 8);  // return address + 8 pushes + 8: 16-byte aligned for the C call
            a_.mov(rdi, kState);
            a_.mov(rsi, r10);
            a_.mov(rdx, r11);
            a_.mov(r11, reinterpret_cast<uint64_t>(&bpfvm_jit_check));
            a_.call(r11);
            a_.add(rsp, 8);
            for (auto it = std::rbegin(saved); it != std::rend(saved); ++it) {
                a_.pop(*it);
            }
            a_.cmp(field(offsetof(RunState, trap_kind), 4), 0);
            a_.jne(unwind_);
            a_.ret();
        }
        if (uses_packet_) {
            // LD_ABS / LD_IND out of the packet: the program ends and returns 0.
            a_.bind(packet_fail_);
            a_.xor_(eax, eax);
            a_.jmp(unwind_);
        }
        a_.bind(unwind_);
        a_.mov(rsp, field(offsetof(RunState, saved_rsp)));
        a_.jmp(epilogue_);
    }

    // Where a loop starts. On the machines we measure (AMD Zen 3) a small loop that crosses a
    // 64-byte line ran up to twice as slow as the same code inside one, in both modes, only from
    // where it happened to land: a loop whose code likely fits in a line (estimated from its
    // steps) starts a new line when it would otherwise cross one; other loops start on 16 bytes,
    // as clang aligns them. Padding that the code before runs through (falls_in_) is kept short,
    // and left out inside another loop, where it would run every iteration of that loop.
    // The loops as laid out: top, last backward jump to it, and whether an earlier loop's range
    // holds the top. Ascending by top.
    struct Loop {
        uint32_t top;
        uint32_t end;
        bool enclosed;
        bool rotated = false;  // see find_rotations
    };
    std::vector<Loop> loops_;
    // (Only tops of cycles: a backward jump of the layout alone runs its target once, and gains
    // nothing from alignment, exit moves or rotation.)
    bool is_loop_top(std::size_t pc) const { return (facts_.boundary[pc] & Facts::kCycle) != 0; }
    void align_loop(std::size_t top) {
        const auto it = std::lower_bound(loops_.begin(), loops_.end(), Loop{static_cast<uint32_t>(top), 0, false},
                                         [](const Loop& a, const Loop& b) { return a.top < b.top; });
        BPFVM_ASSERT(it != loops_.end() && it->top == top);
        if (!it->rotated) {
            align_loop_at(top, *it);
        }
    }
    // Whether the innermost loop around the instruction being lowered (pc_) has so many
    // instructions for ports 0 and 6 (shifts, cmovs, setccs, branches) that those ports, not the
    // core's width, bound it: more than a third of its estimated micro-ops. Worked out once a loop.
    std::vector<int8_t> busy_;  // per loop: -1 not known yet, else 0 or 1
    bool shift_ports_busy() {
        // The innermost loop holding pc_: the last one starting at or before it that reaches it.
        std::size_t index = static_cast<std::size_t>(
            std::upper_bound(loops_.begin(), loops_.end(), static_cast<uint32_t>(pc_),
                             [](uint32_t pc, const Loop& l) { return pc < l.top; }) -
            loops_.begin());
        while (index > 0 && loops_[index - 1].end < pc_) {
            --index;
        }
        if (index == 0) {
            return false;
        }
        --index;
        const Loop* const it = &loops_[index];
        busy_.resize(loops_.size(), -1);
        if (busy_[index] < 0) {
            unsigned ports = 0;
            unsigned uops = 0;
            for (std::size_t pc = it->top; pc <= it->end && uops < 512; pc += p_[pc].slots()) {
                const Step& step = steps_[pc];
                const vm::OpInfo& row = p_[pc].info();
                const bool shift = row.sem == Sem::Lsh || row.sem == Sem::Rsh || row.sem == Sem::Arsh;
                const bool branch = row.form == Form::CondImm || row.form == Form::CondReg || row.form == Form::Jump ||
                                    row.form == Form::Jump32;
                if (step.kind == Fused::Select) {
                    ports += 1 + (p_[pc + step.span - 1].info().sem == Sem::Rsh ? 1 : 0);
                    uops += 3;
                } else if (step.kind != Fused::Nothing && step.kind != Fused::Covered) {
                    ports += shift || branch ? 1 : 0;
                    ++uops;
                }
            }
            busy_[index] = static_cast<int8_t>(uops < 512 && ports * 3 > uops ? 1 : 0);
        }
        return busy_[index] == 1;
    }
    // A loop whose back jump goes through a copy of its top block (go_to) runs from where that
    // copy goes back to: aligned there instead. `rotated_`: (that pc, the loop), descending.
    std::vector<std::pair<uint32_t, uint32_t>> rotated_;
    void find_rotations() {
        if (checked_) {
            return;
        }
        for (std::size_t i = 0; i < loops_.size(); ++i) {
            const std::size_t end = loops_[i].end;
            bool go_to = steps_[end].kind == Fused::Alone;  // `goto top`, or a select ending in it
            for (std::size_t s = end; s + 4 > end && s > 0 && steps_[s].kind == Fused::Covered;) {
                --s;
                go_to = steps_[s].kind == Fused::Select && steps_[s].disp == 1 && s + steps_[s].span - 1 == end;
            }
            const Form f = p_[end].info().form;
            const std::size_t j = go_to && (f == Form::Jump || f == Form::Jump32) ? copied_jump(loops_[i].top) : SIZE_MAX;
            if (j != SIZE_MAX) {
                loops_[i].rotated = true;
                rotated_.emplace_back(static_cast<uint32_t>(j + 1), static_cast<uint32_t>(i));
            }
        }
        std::sort(rotated_.begin(), rotated_.end(), std::greater<>());
    }
    // At a label: a rotated loop's way back in.
    void align_rotated(std::size_t pc) {
        while (!rotated_.empty() && rotated_.back().first < pc) {
            rotated_.pop_back();
        }
        if (!rotated_.empty() && rotated_.back().first == pc) {
            align_loop_at(pc, loops_[rotated_.back().second]);
            rotated_.pop_back();
        }
    }
    void align_loop_at(std::size_t top, const Loop& loop) {
        const bool falls_in = this->falls_in();
        if (falls_in && loop.enclosed) {
            return;
        }
        const uint32_t bytes = loop_bytes(top, loop.end);
        const uint64_t in_line = a_.offset() & 63;
        if (bytes <= 64 && in_line + bytes > 64 && (!falls_in || in_line >= 64 - 15)) {
            a_.align(AlignMode::kCode, 64);
        } else {
            a_.align(AlignMode::kCode, 16);
        }
    }
    void find_loops() {
        loops_.reserve(facts_.loop_ends.size());
        for (const auto& [top, end] : facts_.loop_ends) {
            if (is_loop_top(top)) {
                loops_.push_back(Loop{top, end, false});
            }
        }
        std::sort(loops_.begin(), loops_.end(), [](const Loop& a, const Loop& b) { return a.top < b.top; });
        uint32_t reach = 0;  // the furthest end of the loops before
        for (std::size_t i = 0; i < loops_.size(); ++i) {
            loops_[i].enclosed = i > 0 && reach >= loops_[i].top;
            reach = std::max(reach, loops_[i].end);
        }
    }
    // A rough size of the loop's code from its top to its last backward jump: a few bytes per
    // step, more for jumps, and for checked accesses outside a window's copy.
    uint32_t loop_bytes(std::size_t top, std::size_t end) const {
        const uint8_t* const estimate = kLoopBytes[checked_ && !in_copy_ ? 1 : 0].data();
        uint32_t bytes = checked_ ? 10 : 0;  // the budget's charge
        for (std::size_t pc = top; pc <= end && bytes <= 64; pc += p_[pc].slots()) {
            const Step& step = steps_[pc];
            if (step.kind == Fused::Covered || step.kind == Fused::Nothing) {
                continue;
            }
            bytes += estimate[static_cast<std::size_t>(p_[pc + step.span - 1].op)];
        }
        return bytes;
    }
    // The bytes loop_bytes() takes for a step by the opcode of its last instruction, without
    // checks and with them: calls, divisions, atomics and packet loads 40, conditional jumps 8,
    // loads and stores 26 with checks, the rest 4.
    static constexpr std::array<std::array<uint8_t, vm::kOpCount>, 2> kLoopBytes = [] {
        std::array<std::array<uint8_t, vm::kOpCount>, 2> t{};
        for (std::size_t i = 0; i < vm::kOpCount; ++i) {
            const vm::OpInfo& row = vm::kOpTable[i];
            const Form f = row.form;
            const bool memory = f == Form::LoadMem || f == Form::StoreImm || f == Form::StoreReg;
            const bool divide = row.sem == Sem::Div || row.sem == Sem::Mod || row.sem == Sem::Sdiv ||
                                row.sem == Sem::Smod;
            const bool big = divide || f == Form::Call || f == Form::Callx || f == Form::CallLocal ||
                             f == Form::Atomic || f == Form::LoadAbs || f == Form::LoadInd;
            for (const bool checks : {false, true}) {
                t[checks ? 1 : 0][i] = static_cast<uint8_t>(big                                        ? 40
                                                            : f == Form::CondImm || f == Form::CondReg ? 8
                                                            : memory && checks                         ? 26
                                                                                                       : 4);
            }
        }
        return t;
    }();
    // Whether the code emitted last may run into what comes next: falls_through(falls_from_) after
    // a step of the main loop (worked out only where a label needs it), else falls_in_.
    bool falls_in_ = true;
    std::size_t falls_from_ = SIZE_MAX;
    bool falls_in() const { return falls_from_ != SIZE_MAX ? falls_through(falls_from_) : falls_in_; }
    void set_falls_in(bool value) {
        falls_in_ = value;
        falls_from_ = SIZE_MAX;
    }
    struct Address {  // of a load or store: [base + index + disp] (index -1: none)
        uint8_t base;
        int8_t index;
        int32_t disp;
    };
    // A load into a register that only a conditional jump just after reads (in the
    // same block, nothing in between but steps without code or one sunk past the jump) is the
    // jump's compare's memory operand: `cmp reg, [m]` or `cmp [m], imm`, at the load's width
    // where the other operand fits it (zero-extended values: a signed condition is then the
    // unsigned one). Sets loaded_jump_ and loaded_at_.
    static constexpr std::size_t kNoLoad = SIZE_MAX;
    std::size_t loaded_ = kNoLoad;
    std::size_t loaded_jump_ = 0;
    Address loaded_at_{};
    bool loads_into_compare(std::size_t pc) {
        const Step& step = steps_[pc];
        if ((step.kind != Fused::Alone && step.kind != Fused::Address) || charged(pc)) {
            return false;
        }
        const std::size_t at = pc + step.span - 1;
        const vm::Instruction& load = p_[at];
        const vm::OpInfo& lrow = load.info();
        if (lrow.form != Form::LoadMem || lrow.sem == Sem::Ldxs) {
            return false;
        }
        const unsigned x = load.dst;
        std::size_t j = at + 1;
        for (unsigned k = 0;; ++k, j += j < p_.size() ? p_[j].slots() : 1) {
            if (k == 4 || j >= p_.size() || facts_.boundary[j] != 0 || charged(j) ||
                (!window_of_.empty() && window_of_[j] != window_)) {
                return false;  // (checked mode: the access is checked at the jump, with no charge between)
            }
            const Step& s = steps_[j];
            if (s.kind == Fused::Nothing || s.kind == Fused::Covered) {
                continue;
            }
            const vm::Instruction& i = p_[j];
            const Form f = i.info().form;
            if (f == Form::CondImm || f == Form::CondReg) {
                break;
            }
            // One sunk past the jump, not touching the loaded register.
            const std::size_t saved = sunk_jump_;
            const bool sinks = sinks_past_jump(j);
            sunk_jump_ = saved;
            if (!sinks || i.dst == x || (f == Form::AluReg && i.src == x)) {
                return false;
            }
        }
        const Step& js = steps_[j];
        if (js.kind != Fused::Alone && js.kind != Fused::Inverted) {
            return false;
        }
        const vm::Instruction jump = compared(p_[j], js);
        const vm::OpInfo& jrow = jump.info();
        const bool reg = jrow.form == Form::CondReg;
        if (jrow.sem == Sem::Jset || facts_.live(j, x) || (reg && jump.dst == jump.src) ||
            (jump.dst != x && (!reg || jump.src != x))) {
            return false;
        }
        // The compare's width, and whether the other operand fits the load's (zero-extended).
        const unsigned lw = lrow.width;
        const unsigned cw = jrow.width;
        if (lw < cw) {
            const Width fits = lw == 1 ? Width::W8 : lw == 2 ? Width::W16 : Width::W32;
            if (reg) {
                const unsigned y = jump.dst == x ? jump.src : jump.dst;
                if (y == 10 || facts_.width(j, y) > fits) {
                    return false;
                }
            } else {
                if (immediate(jump) >= (uint64_t{1} << (8 * lw))) {
                    return false;
                }
            }
        }
        loaded_ = at;
        loaded_jump_ = j;
        loaded_at_ = step.kind == Fused::Address ? Address{step.base, step.index, step.disp}
                                                 : Address{load.src, -1, load.off};
        return true;
    }
    void compare_memory_and_jump(std::size_t j) {
        const Step& js = steps_[j];
        const vm::Instruction jump = compared(p_[j], js);
        const vm::OpInfo& jrow = jump.info();
        const vm::OpInfo& lrow = p_[loaded_].info();
        const unsigned x = p_[loaded_].dst;
        const unsigned w = std::min<unsigned>(lrow.width, jrow.width);
        const bool narrowed = lrow.width < jrow.width;
        Mem m = access(loaded_at_, lrow.width, false, loaded_);  // (checked as the load would be)
        m.setSize(w);
        Sem sem = jrow.sem;
        if (jrow.form == Form::CondReg) {
            const bool swapped = jump.dst == x;  // compared as `y ? x`: the condition mirrored
            const unsigned y = swapped ? jump.src : jump.dst;
            const Gp& r = kRegs[y];
            a_.cmp(w == 1 ? r.r8() : w == 2 ? r.r16() : w == 4 ? r.r32() : r, m);
            if (swapped) {
                sem = mirrored(sem);
            }
        } else {
            a_.cmp(m, jump.imm);
        }
        if (narrowed) {
            sem = unsigned_of(sem);
        }
        const bool inverted = js.kind == Fused::Inverted;
        const int64_t target = inverted ? vm::branch_target(p_[j + 1], j + 1) : vm::branch_target(p_[j], j);
        branch(condition(inverted ? inverse(sem) : sem), inverted ? jump_to(target) : taken_edge(j));
    }
    // The condition of `b ? a` that `a ? b` has; and the unsigned one of a signed condition.
    static Sem mirrored(Sem sem) {
        constexpr std::pair<Sem, Sem> kPairs[] = {{Sem::Jgt, Sem::Jlt},   {Sem::Jge, Sem::Jle},
                                                  {Sem::Jsgt, Sem::Jslt}, {Sem::Jsge, Sem::Jsle}};
        for (const auto& [a, b] : kPairs) {
            if (sem == a || sem == b) {
                return sem == a ? b : a;
            }
        }
        return sem;  // jeq, jne
    }
    static Sem unsigned_of(Sem sem) {
        constexpr std::pair<Sem, Sem> kPairs[] = {{Sem::Jsgt, Sem::Jgt}, {Sem::Jsge, Sem::Jge},
                                                  {Sem::Jslt, Sem::Jlt}, {Sem::Jsle, Sem::Jle}};
        for (const auto& [s, u] : kPairs) {
            if (sem == s) {
                return u;
            }
        }
        return sem;
    }
    // The steps a conditional jump may take along (sunk past it, or its compare's memory
    // operand): the two steps with code before each jump in a loop, in its block. Descending, so
    // that the lowering takes them from the back; sinks_past_jump and loads_into_compare decide.
    std::vector<uint32_t> candidates_;
    std::vector<std::pair<uint32_t, uint32_t>> loop_ranges_;
    void find_candidates() {
        candidates_.clear();
        if (loops_.empty()) {
            return;  // (what these save is an instruction an iteration: only loops run code twice)
        }
        // The pcs loops cover, as disjoint ranges ascending, walked down with the jumps.
        std::vector<std::pair<uint32_t, uint32_t>>& ranges = loop_ranges_;
        ranges.clear();
        for (const Loop& l : loops_) {  // (ascending by top)
            if (!ranges.empty() && l.top <= ranges.back().second) {
                ranges.back().second = std::max(ranges.back().second, l.end);
            } else {
                ranges.emplace_back(l.top, l.end);
            }
        }
        std::size_t r = ranges.size();
        for (const uint32_t j : facts_.plan_starts) {  // descending
            while (r > 0 && ranges[r - 1].first > j) {
                --r;
            }
            if (r == 0) {
                break;  // below every loop
            }
            if (j > ranges[r - 1].second) {
                continue;  // between loops
            }
            const Step& js = steps_[j];
            const Form f = p_[j].info().form;
            if ((f != Form::CondImm && f != Form::CondReg) || (js.kind != Fused::Alone && js.kind != Fused::Inverted)) {
                continue;
            }
            // Cheap tests first (the two below decide): what the compare reads, and where it goes.
            const vm::Instruction jump = compared(p_[j], js);
            const uint32_t reads = (1u << jump.dst) | (f == Form::CondReg ? 1u << jump.src : 0u);
            const int64_t target = js.kind == Fused::Alone ? vm::branch_target(p_[j], j) : vm::branch_target(p_[j + 1], j + 1);
            if (target < 0 || static_cast<std::size_t>(target) >= p_.size()) {
                continue;
            }
            std::size_t k = j;
            for (unsigned walked = 0; walked < 8 && k > 0 && facts_.boundary[k] == 0; ++walked) {
                --k;
                const Fused kind = steps_[k].kind;
                if (p_.is_tail(k) || kind == Fused::Nothing || kind == Fused::Covered) {
                    continue;
                }
                const vm::Instruction& i = p_[k + (kind == Fused::Address ? steps_[k].span - 1 : 0)];
                const Form g = i.info().form;
                if (kind == Fused::Alone && (g == Form::AluImm || g == Form::AluReg)) {
                    if ((reads >> i.dst) & 1 || facts_.live_into(static_cast<std::size_t>(target), i.dst)) {
                        break;  // stays, and so does what is before it
                    }
                    candidates_.push_back(static_cast<uint32_t>(k));
                    continue;  // (a load before it may still be the compare's operand)
                }
                if (g == Form::LoadMem && ((reads >> i.dst) & 1) != 0 && !facts_.live(j, i.dst)) {
                    candidates_.push_back(static_cast<uint32_t>(k));
                }
                break;
            }
        }
    }
    // Whether the step at pc is lowered with a conditional jump after it (sunk past it, or its
    // compare's memory operand), which is then pending_jump_.
    bool goes_with_jump(std::size_t pc) {
        if (sinks_past_jump(pc)) {
            sunk_ = pc;
            pending_jump_ = sunk_jump_;
            return true;
        }
        if (loads_into_compare(pc)) {
            if (listing_) {
                list_step(pc);
            }
            pending_jump_ = loaded_jump_;
            return true;
        }
        return false;
    }
    // The jump a load or a sunk instruction (or both) went with.
    void lower_pending_jump(std::size_t pc) {
        if (loaded_ != kNoLoad) {
            compare_memory_and_jump(pc);
            loaded_ = kNoLoad;
        } else {
            lower_step(pc, steps_[pc]);
        }
        if (sunk_ != kNoSunk && seam_taken_) {
            seam_sunk_ = sunk_;  // (on the way out only: lowered at the seam's stub)
            sunk_ = kNoSunk;
        }
        if (sunk_ != kNoSunk) {
            if (listing_) {
                list_step(sunk_);
            }
            lower_step(sunk_, steps_[sunk_]);
            sunk_ = kNoSunk;
        }
        pending_jump_ = SIZE_MAX;
    }
    // A constant move that only a loop's exit needs (`r2 = 0` at the top of a loop whose exit
    // reads r2, which the loop itself writes before reading) runs on that exit alone: the next
    // conditional jump in its block, which leaves the innermost loop, goes to a stub that makes
    // the move and goes on to the target. The move's register is dead where the jump falls
    // through, and nothing in between names it. Found once (find_exit_moves).
    struct ExitMove {
        std::size_t move;
        std::size_t jump;
    };
    std::vector<ExitMove> exit_moves_;  // descending by move (taken from the back)
    std::size_t next_exit_move_ = SIZE_MAX;
    std::size_t exit_jump_ = SIZE_MAX;   // the jump whose taken edge goes through a stub
    std::size_t exit_move_ = SIZE_MAX;   // ... and the move it makes
    struct TakenStub {
        Label label;
        std::size_t move;
        Label target;
    };
    std::vector<TakenStub> taken_stubs_;
    void find_exit_moves() {
        exit_moves_.clear();
        for (std::size_t l = 0; l < loops_.size(); ++l) {
            const Loop& loop = loops_[l];
            // Small innermost loops (no loop starts inside), where one instruction an iteration shows.
            if (loop.end - loop.top > 64 || (l + 1 < loops_.size() && loops_[l + 1].top <= loop.end)) {
                continue;
            }
            for (std::size_t pc = loop.top; pc <= loop.end; pc += p_[pc].slots()) {
                const vm::Instruction& i = p_[pc];
                if (steps_[pc].kind != Fused::Alone || i.info().form != Form::AluImm || i.info().sem != Sem::Mov ||
                    charged(pc)) {
                    continue;
                }
                const std::size_t j = exit_jump_for(pc, loop);
                if (j != SIZE_MAX) {
                    exit_moves_.push_back({pc, j});
                }
            }
        }
        std::sort(exit_moves_.begin(), exit_moves_.end(),
                  [](const ExitMove& a, const ExitMove& b) { return a.move > b.move; });
        exit_moves_.erase(std::unique(exit_moves_.begin(), exit_moves_.end(),
                                      [](const ExitMove& a, const ExitMove& b) { return a.move == b.move; }),
                          exit_moves_.end());
        next_exit_move_ = exit_moves_.empty() ? SIZE_MAX : exit_moves_.back().move;
    }
    std::size_t take_exit_move(std::size_t pc) {
        while (!exit_moves_.empty() && exit_moves_.back().move <= pc) {
            // One move a stub: a second one bound for the same jump stays in place.
            if (exit_moves_.back().move == pc && exit_move_ == SIZE_MAX) {
                exit_jump_ = exit_moves_.back().jump;
                exit_move_ = pc;
            }
            exit_moves_.pop_back();
        }
        return exit_moves_.empty() ? SIZE_MAX : exit_moves_.back().move;
    }
    // The jump the move at pc (in `loop`) may go with, or SIZE_MAX.
    std::size_t exit_jump_for(std::size_t pc, const Loop& loop) const {
        const unsigned d = p_[pc].dst;
        for (std::size_t j = pc + 1, k = 0; j < p_.size() && k < 16; j += p_[j].slots(), ++k) {
            if (facts_.boundary[j] != 0 || charged(j)) {
                return SIZE_MAX;
            }
            const vm::Instruction& i = p_[j];
            const Form f = i.info().form;
            const Fused kind = steps_[j].kind;
            if (f == Form::CondImm || f == Form::CondReg) {
                if (kind != Fused::Alone) {
                    return SIZE_MAX;
                }
                const vm::Instruction c = compared(i, steps_[j]);
                const int64_t target = vm::branch_target(i, j);
                const bool leaves = target > static_cast<int64_t>(loop.end) || target < static_cast<int64_t>(loop.top);
                if (c.dst == d || (f == Form::CondReg && c.src == d) || !leaves || j + 1 >= p_.size() ||
                    facts_.live_into(j + 1, d) || !facts_.live_into(static_cast<std::size_t>(target), d)) {
                    return SIZE_MAX;
                }
                return j;
            }
            // Nothing in between names the register, calls, or leaves.
            const bool plain = f == Form::AluImm || f == Form::AluReg || f == Form::AluUnary || f == Form::Endian ||
                               f == Form::LoadMem || f == Form::StoreImm || f == Form::StoreReg;
            if (!plain || i.dst == d || i.src == d || (native_writes(i) & (1u << d)) != 0) {
                return SIZE_MAX;
            }
            if (kind == Fused::AddTo && steps_[j].base == d) {
                return SIZE_MAX;
            }
        }
        return SIZE_MAX;
    }
    // The exit moves of a window's copy (its loop is small: looked for at each constant move).
    bool moves_to_taken_edge_in_copy(std::size_t pc) {
        const vm::OpInfo& row = p_[pc].info();
        if (steps_[pc].kind != Fused::Alone || row.form != Form::AluImm || row.sem != Sem::Mov ||
            exit_move_ != SIZE_MAX) {
            return false;
        }
        for (const Loop& loop : loops_) {
            if (loop.top <= pc && pc <= loop.end) {
                const std::size_t j = exit_jump_for(pc, loop);
                if (j != SIZE_MAX && window_of_[j] == window_) {
                    exit_move_ = pc;
                    exit_jump_ = j;
                    return true;
                }
            }
        }
        return false;
    }
    // The label a conditional jump at pc (lowered by itself) goes to: its target's, or the stub
    // that first makes a move only that target needs.
    Label taken_edge(std::size_t pc) {
        const Label target = jump_to(vm::branch_target(p_[pc], pc));
        if (pc != exit_jump_ || exit_move_ == SIZE_MAX) {
            return target;
        }
        taken_stubs_.push_back({a_.newLabel(), exit_move_, target});
        exit_jump_ = SIZE_MAX;
        exit_move_ = SIZE_MAX;
        return taken_stubs_.back().label;
    }
    void taken_stubs() {
        for (const TakenStub& t : taken_stubs_) {
            a_.bind(t.label);
            if (listing_) {
                list_step(t.move);
            }
            lower_step(t.move, steps_[t.move]);
            a_.jmp(t.target);
        }
    }
    // Whether the budget is charged at pc (checked mode; a window's copy charges at its header).
    bool charged(std::size_t pc) const { return checked_ && !in_copy_ && costs_[pc] != 0; }
    std::size_t next_candidate_ = SIZE_MAX;
    std::size_t next_event_ = SIZE_MAX;  // the least of the three below: where the lowering looks
    // A rare step at pc: whether it goes with a later jump (a candidate, or an exit move).
    bool defers(std::size_t pc) {
        BPFVM_ASSERT(exit_move_ == SIZE_MAX || pc <= exit_jump_);
        bool candidate = false;
        if (pc >= next_candidate_) {
            candidate = pc == next_candidate_;
            next_candidate_ = take_candidate(pc);
        }
        bool exit_move = false;
        if (pc >= next_exit_move_) {
            next_exit_move_ = take_exit_move(pc);
            exit_move = exit_move_ == pc;
        }
        if (candidate && goes_with_jump(pc)) {
            if (exit_move) {  // (not both: one needs the register dead at the target, one live)
                exit_move_ = SIZE_MAX;
                exit_jump_ = SIZE_MAX;
            }
            return true;
        }
        return exit_move;  // (deferred to the stub of its jump)
    }
    std::size_t pending_jump_ = SIZE_MAX;  // the jump a load or a sunk step waits for
    // The first candidate after pc (SIZE_MAX if none), dropping those before.
    std::size_t take_candidate(std::size_t pc) {
        while (!candidates_.empty() && candidates_.back() <= pc) {
            candidates_.pop_back();
        }
        return candidates_.empty() ? SIZE_MAX : candidates_.back();
    }
    // An ALU instruction just before a conditional jump, in the same block, writing a register
    // that the jump does not read and that is dead where the jump goes, is lowered after the
    // jump: on the one path that needs it. (clang leaves such moves before a loop's back edge,
    // for the value the loop's exit reads.) Sets sunk_jump_ to the jump's pc.
    static constexpr std::size_t kNoSunk = SIZE_MAX;
    std::size_t sunk_ = kNoSunk;
    std::size_t sunk_jump_ = 0;
    bool sinks_past_jump(std::size_t pc) {
        const Step& step = steps_[pc];
        const vm::Instruction& insn = p_[pc];
        const vm::OpInfo& row = insn.info();
        if (step.kind != Fused::Alone || (row.form != Form::AluImm && row.form != Form::AluReg) ||
            row.sem == Sem::Div || row.sem == Sem::Mod || row.sem == Sem::Sdiv || row.sem == Sem::Smod ||
            charged(pc)) {
            return false;  // (a budget charge stays where it is)
        }
        // The jump, past steps that have no code (a copy made for its compare, say).
        std::size_t j = pc + 1;
        for (unsigned k = 0;; ++k, ++j) {
            if (k == 4 || j >= p_.size() || facts_.boundary[j] != 0 || charged(j) ||
                (!window_of_.empty() && window_of_[j] != window_)) {
                return false;  // (a window's copy lowers only its path)
            }
            if (steps_[j].kind != Fused::Nothing && steps_[j].kind != Fused::Covered) {
                break;
            }
        }
        const Step& at = steps_[j];
        const vm::OpInfo& jrow = p_[j].info();
        if ((at.kind != Fused::Alone && at.kind != Fused::Inverted) ||
            (jrow.form != Form::CondImm && jrow.form != Form::CondReg)) {
            return false;
        }
        const vm::Instruction jump = compared(p_[j], at);
        const unsigned d = insn.dst;
        if (jump.dst == d || (jrow.form == Form::CondReg && jump.src == d)) {
            return false;
        }
        const int64_t target = at.kind == Fused::Alone ? vm::branch_target(p_[j], j) : vm::branch_target(p_[j + 1], j + 1);
        if (target < 0 || static_cast<std::size_t>(target) >= p_.size() ||
            facts_.live_into(static_cast<std::size_t>(target), d)) {
            return false;
        }
        sunk_jump_ = j;
        return true;
    }
    std::size_t pc_ = 0;    // the instruction lower() is lowering
    bool is_window_header(std::size_t pc) const {
        return !window_of_.empty() && window_of_[pc] >= 0 &&
               windows_[static_cast<std::size_t>(window_of_[pc])].window.header == pc;
    }

    void list_step(std::size_t pc) {
        for (std::size_t k = pc; k < pc + steps_[pc].span; k += p_[k].slots()) {
            const std::string text = "; " + std::to_string(k) + ": " + vm::format_instruction(p_[k], vm::Syntax::Llvm);
            a_.comment(text.c_str());
        }
    }

    // ---- checked mode's windows (windows.hpp) --------------------------------------------

    // Where a jump to `target` goes: inside a window's loop, a jump to its header repeats the
    // loop it is in (the checked one, or the copy); the copy's other jumps leave through a stub
    // that gives the held-back budget back.
    Label jump_to(int64_t target_pc) {
        const auto target = static_cast<std::size_t>(target_pc);
        if (window_ >= 0) {
            WindowCode& w = windows_[static_cast<std::size_t>(window_)];
            if (in_copy_) {
                // Unrolled: a jump back (in the program's order) goes on in the next copy.
                if (window_of_[target] == window_) {
                    const unsigned c = (copy_index_ + (target <= copy_pc_ ? 1 : 0)) % w.copies;
                    const Label& l = w.copy[c * w.window.path.size() + path_index_[target]];
                    BPFVM_ASSERT(l.isValid());
                    return l;
                }
                // Leaving: the iterations charged ahead and not run come back.
                w.exits.push_back({a_.newLabel(), target, w.refund(copy_index_, path_index_[copy_pc_])});
                return w.exits.back().stub;
            }
            if (target == w.window.header) {
                return w.checked;
            }
        }
        return labels_[target];
    }

    // `goto target` from the step at pc. Verified mode, going back to a short block that ends in a
    // conditional jump whose fall-through has a label (a loop entered in its middle, as clang lays
    // out `while` loops): a copy of the block, its jump inverted to go back into the loop, then a
    // jump to where the original goes (none if that is `after`, the next pc lowered). The loop
    // then takes one branch per iteration, not two.
    void go_to(std::size_t pc, int64_t target, std::size_t after) {
        if (const std::size_t j = rotation(pc, target); j != SIZE_MAX) {
            rotate_into(static_cast<std::size_t>(target), j, after);
            return;
        }
        a_.jmp(jump_to(target));
    }
    // The conditional jump ending the block go_to(pc, target) copies, or SIZE_MAX if it copies
    // none.
    std::size_t rotation(std::size_t pc, int64_t target) {
        if (checked_ || window_ >= 0 || target < 0 || static_cast<std::size_t>(target) > pc) {
            return SIZE_MAX;
        }
        return copied_jump(static_cast<std::size_t>(target));
    }
    // rotated_jump(top), unless more than kMaxRotations gotos go back to top: then none of them
    // copies its block. A goto's copy saves one jump an iteration, and a copy into every case of
    // a large switch costs more compile time and code than it saves (LLVM's tail duplication has
    // the same kind of bound on predecessors).
    static constexpr uint8_t kMaxRotations = 16;
    std::size_t copied_jump(std::size_t top) {
        const std::size_t j = rotated_jump(top);
        return j != SIZE_MAX && back_gotos(top) <= kMaxRotations ? j : SIZE_MAX;
    }
    // How many gotos jump back to pc (at most 255), counted for every pc the first time it is
    // asked.
    unsigned back_gotos(std::size_t pc) {
        if (!back_gotos_counted_) {
            back_gotos_counted_ = true;
            back_gotos_.assign(p_.size(), 0);
            for (std::size_t k = 0; k < p_.size(); k += p_[k].slots()) {
                const Form f = p_[k].info().form;
                if (f != Form::Jump && f != Form::Jump32) {
                    continue;
                }
                const int64_t t = vm::branch_target(p_[k], k);
                if (t >= 0 && static_cast<std::size_t>(t) <= k && back_gotos_[static_cast<std::size_t>(t)] < 255) {
                    ++back_gotos_[static_cast<std::size_t>(t)];
                }
            }
        }
        return back_gotos_[pc];
    }
    bool back_gotos_counted_ = false;
    static thread_local std::vector<uint8_t> thread_back_gotos;
    std::vector<uint8_t>& back_gotos_ = thread_back_gotos;
    void rotate_into(std::size_t top, std::size_t j, std::size_t after) {
        const std::size_t next = j + 1;
        for (std::size_t k = top; k < j; k += p_[k].slots()) {
            if (steps_[k].kind == Fused::Covered) {
                continue;
            }
            if (listing_) {
                list_step(k);
            }
            if (k == carry_pc_) [[unlikely]] {
                add_carry(k);
            } else {
                lower_step(k, steps_[k]);
            }
        }
        if (listing_) {
            list_step(j);
        }
        cond_jump(p_[j].info(), compared(p_[j], steps_[j]), labels_[next], true);
        const int64_t exit = vm::branch_target(p_[j], j);
        if (exit != static_cast<int64_t>(after) || is_function_entry(after)) {
            a_.jmp(jump_to(exit));
        }
    }
    // The conditional jump ending the block at `top` that go_to copies (its fall-through has a
    // label), or SIZE_MAX if the block does not qualify.
    std::size_t rotated_jump(std::size_t top) const {
        std::size_t j = top;
        unsigned with_code = 0;
        for (;; j += p_[j].slots()) {
            if (j >= p_.size() || (j != top && facts_.boundary[j] != 0) || with_code > 6) {
                return SIZE_MAX;
            }
            const Step& s = steps_[j];
            const Form f = p_[j].info().form;
            if (s.kind == Fused::Nothing || s.kind == Fused::Covered) {
                continue;
            }
            if (s.kind == Fused::Alone && (f == Form::CondImm || f == Form::CondReg)) {
                break;
            }
            const bool simple = s.kind == Fused::Address || s.kind == Fused::AddMove || s.kind == Fused::ZeroExtend ||
                                s.kind == Fused::AddTo ||
                                (s.kind == Fused::Alone &&
                                 (f == Form::AluImm || f == Form::AluReg || f == Form::AluUnary || f == Form::Endian ||
                                  f == Form::LoadMem || f == Form::StoreImm || f == Form::StoreReg ||
                                  f == Form::LoadImm64));
            if (!simple) {
                return SIZE_MAX;
            }
            ++with_code;
        }
        const std::size_t next = j + 1;
        return next < p_.size() && labels_[next].isValid() && !is_function_entry(next) ? j : SIZE_MAX;
    }

    // Whether the step at pc may go on to the instruction after it, and which that is.
    bool falls_through(std::size_t pc) const {
        const Step& step = steps_[pc];
        const Form f = p_[pc].info().form;
        return !(step.kind == Fused::Alone && (f == Form::Jump || f == Form::Jump32 || f == Form::Exit)) &&
               !(step.kind == Fused::Select && step.disp == 1);
    }
    std::size_t fall_target(std::size_t pc) const {
        const std::size_t last = pc + steps_[pc].span - 1;
        return last + p_[last].slots();
    }

    static Mem cache_lo(const WindowAccess& a) {
        return field((a.write ? offsetof(RunState, wr) : offsetof(RunState, rd)) + offsetof(AccessCache, lo));
    }
    static Mem cache_hi(const WindowAccess& a) {
        const std::size_t width_index = a.width == 1 ? 0 : a.width == 2 ? 1 : a.width == 4 ? 2 : 3;
        return field((a.write ? offsetof(RunState, wr) : offsetof(RunState, rd)) + offsetof(AccessCache, hi) +
                     8 * width_index);
    }
    void sum_to_r10(unsigned terms, const uint8_t (&regs)[2], int32_t disp) {
        if (terms == 1) {
            a_.lea(r10, ptr(kRegs[regs[0]], disp));
        } else {
            a_.lea(r10, ptr(kRegs[regs[0]], kRegs[regs[1]], 0, disp));
        }
    }
    void first_address(const WindowAccess& a) {
        sum_to_r10(a.terms, a.regs, a.disp);
    }
    static uint32_t shift_for(int64_t stride) {
        const auto s = static_cast<uint64_t>(stride < 0 ? -stride : stride);
        return s <= 1 ? 0 : 64 - static_cast<uint32_t>(__builtin_clzll(s - 1));  // ceil(log2 s)
    }
    // r11 = min(r11, (r10 >> shift) + 1): the iterations one bound allows.
    void bound_window(uint32_t shift) {
        if (shift != 0) {
            a_.shr(r10, shift);
        }
        a_.add(r10, 1);
        a_.cmp(r10, r11);
        a_.cmovb(r11, r10);
    }

    // At the loop's header, before its charge: how many iterations stay inside the regions the
    // first one's accesses land in (r11, at most 2^32), and, for that many, the copy without
    // checks with the budget lowered to cover just them; or, with no window, the checked loop.
    void window_setup(WindowCode& w) {
        const Window& win = w.window;
        if (listing_) {
            a_.comment("; window: iterations of the loop that stay in their regions run without checks");
        }
        for (const WindowEntry& e : win.entries) {
            sum_to_r10(e.terms, e.regs, e.disp);
            a_.cmp(r10, kRegs[e.reg]);
            a_.jne(w.checked);
        }
        a_.mov(r11, uint64_t{1} << 32);
        for (const WindowGuard& g : win.guards) {
            a_.mov(r10d, static_cast<uint32_t>(0xffffffffu - g.max_dz));
            a_.sub(r10, kRegs[g.reg]);
            a_.jb(w.checked);  // the 32-bit sum may wrap in the first iteration
            if (g.stride != 0) {
                bound_window(shift_for(g.stride));
            }
        }
        for (const WindowAccess& a : win.accesses) {
            const Label miss = a_.newLabel();
            const Label hit = a_.newLabel();
            first_address(a);
            a_.cmp(r10, cache_lo(a));
            a_.jb(miss);
            a_.cmp(r10, cache_hi(a));
            a_.ja(miss);
            a_.bind(hit);
            probe_misses_.push_back({miss, hit, w.checked, &a});
            if (a.stride > 0) {
                a_.neg(r10);
                a_.add(r10, cache_hi(a));  // hi - first
                bound_window(shift_for(a.stride));
            } else if (a.stride < 0) {
                a_.sub(r10, cache_lo(a));  // first - lo
                bound_window(shift_for(a.stride));
            }
        }
        // The budget for r11 iterations (r11 * cost < 2^63); the rest is held back.
        const Label all = a_.newLabel();
        a_.imul(r11, r11, static_cast<int32_t>(win.cost));
        a_.cmp(r9, r11);
        a_.jbe(all);
        a_.sub(r9, r11);
        a_.mov(field(offsetof(RunState, window_excess)), r9);
        a_.mov(r9, r11);
        a_.jmp(w.copy[0]);
        a_.bind(all);
        a_.mov(field(offsetof(RunState, window_excess)), 0);
        a_.jmp(w.copy[0]);
        set_falls_in(false);
        if (is_loop_top(win.header)) {
            align_loop(win.header);
        }
        a_.bind(w.checked);
    }

    // The loop again without access checks, entered only from its setup. The charge at its header
    // fails once the window's iterations are spent (or the real budget is): the budget held back
    // comes back and the iteration runs in the checked loop, which charges it again.
    // Unrolled (unroll), the loop is laid out 2 or 4 times, the later copies without a charge: the
    // first one's header charges an iteration per copy, and an exit gives back those not run.
    void window_copy(std::size_t index) {
        WindowCode& w = windows_[index];
        const Window& win = w.window;
        window_ = static_cast<int32_t>(index);
        in_copy_ = true;
        if (listing_) {
            const std::string text = "; window copy of the loop at " + std::to_string(win.header) + ", without checks" +
                                     (w.copies == 1 ? "" : ", " + std::to_string(w.copies) + " times");
            a_.comment(text.c_str());
        }
        const uint32_t charge = win.cost * w.copies;
        const std::size_t n = win.path.size();
        // In the program's order (as the checked loop is laid out), entered at the header.
        set_falls_in(false);
        std::vector<uint32_t> order = win.path;
        std::sort(order.begin(), order.end());
        seams_.clear();
        for (copy_index_ = 0; copy_index_ < w.copies; ++copy_index_) {
            const Label* const labels = w.copy.data() + copy_index_ * n;
            // Where a copy's last step goes back to the top, the next copy is next.
            const bool seam_at_end = copy_index_ + 1 < w.copies;
            for (std::size_t k = 0; k < order.size(); ++k) {
                const uint32_t pc = order[k];
                copy_pc_ = pc;
                const Label& here = labels[path_index_[pc]];
                if (is_loop_top(pc) && copy_index_ == 0) {
                    align_loop(pc);
                }
                if (here.isValid()) {
                    a_.bind(here);
                }
                if (pc == win.header && copy_index_ == 0) {
                    a_.sub(r9, charge);
                    a_.jb(w.end);
                }
                if (steps_[pc].kind == Fused::Covered) {
                    continue;
                }
                if (goes_with_jump(pc) || moves_to_taken_edge_in_copy(pc)) {
                    continue;
                }
                if (listing_) {
                    list_step(pc);
                }
                // A copy's last step a jump back to the top: it falls into the next copy; a
                // conditional one is inverted, to a stub with its way out (branch).
                // (Or `if (c) goto out; goto top`, fused: Inverted.)
                const Form form = p_[pc].info().form;
                const Fused kind = steps_[pc].kind;
                const bool inverted_step = kind == Fused::Inverted;
                const bool back_to_top = seam_at_end && k + 1 + (inverted_step ? 1 : 0) == order.size() &&
                                         (kind == Fused::Alone || inverted_step) &&
                                         vm::branch_target(p_[pc + (inverted_step ? 1 : 0)], pc + (inverted_step ? 1 : 0)) == order[0];
                if (back_to_top && kind == Fused::Alone && form == Form::Jump) {
                    set_falls_in(true);
                    continue;
                }
                const bool seam = back_to_top && (form == Form::CondImm || form == Form::CondReg);
                if (seam) {
                    seam_to_ = labels[n + path_index_[order[0]]];
                    seam_stub_ = a_.newLabel();
                    seam_taken_ = false;
                    seam_sunk_ = kNoSunk;
                }
                if (pc != pending_jump_) {
                    lower_step(pc, steps_[pc]);
                } else {
                    lower_pending_jump(pc);
                }
                seam_to_ = Label();
                const bool inverted = seam_taken_;
                seam_taken_ = false;
                if (seam && inverted) {
                    seams_.push_back({seam_stub_, copy_index_, pc, seam_sunk_});
                    seam_sunk_ = kNoSunk;
                    set_falls_in(true);  // (into the next copy)
                    continue;
                }
                // Falling through to anything but the next instruction emitted is a jump.
                std::size_t j = k + 1;
                while (j < order.size() && steps_[order[j]].kind == Fused::Covered) {
                    ++j;
                }
                set_falls_in(falls_through(pc));
                if (falls_in_ && (j == order.size() || fall_target(pc) != order[j])) {
                    a_.jmp(jump_to(static_cast<int64_t>(fall_target(pc))));
                    set_falls_in(false);
                }
            }
        }
        for (const Seam& seam : seams_) {
            // A seam's way out: what the copy's last step does where it falls through.
            a_.bind(seam.stub);
            copy_index_ = seam.copy;
            copy_pc_ = seam.pc;
            if (seam.sunk != kNoSunk) {
                if (listing_) {
                    list_step(seam.sunk);
                }
                lower_step(seam.sunk, steps_[seam.sunk]);
            }
            a_.jmp(jump_to(static_cast<int64_t>(fall_target(seam.pc))));
        }
        copy_index_ = 0;
        const Mem excess = field(offsetof(RunState, window_excess));
        for (const WindowCode::Exit& e : w.exits) {
            a_.bind(e.stub);
            if (e.refund != 0) {
                a_.add(r9, win.cost * e.refund);
            }
            a_.add(r9, excess);
            a_.jmp(labels_[e.target]);
        }
        a_.bind(w.end);
        a_.add(r9, charge);
        a_.add(r9, excess);
        a_.jmp(w.checked);
        in_copy_ = false;
        window_ = -1;
    }
    // How many times a window's copy is laid out (w.copies; a charge and two branches an
    // iteration become a charge every 2 or 4 iterations): small loops whose path goes back in the
    // program's order an odd number of times, so that each iteration ends in the copy after the
    // one it started in, or three on (the path moves on a copy at each jump back), and the
    // iterations go through every copy in turn. Sets w.phase and w.turn.
    static void unroll(WindowCode& w) {
        const std::vector<uint32_t>& path = w.window.path;
        w.copies = 1;
        if (path.size() > 48) {
            return;
        }
        const unsigned copies = path.size() <= 24 ? 4 : 2;
        w.phase.assign(path.size(), 0);
        unsigned flips = 0;
        for (std::size_t i = 0; i < path.size(); ++i) {
            w.phase[i] = static_cast<uint8_t>(flips % copies);
            const uint32_t next = i + 1 < path.size() ? path[i + 1] : path[0];
            flips += next <= path[i] ? 1 : 0;
        }
        if ((flips & 1) != 0) {
            w.copies = copies;
            w.turn = flips % copies;
        }
    }
    unsigned copy_index_ = 0;   // the copy being lowered (an unrolled window: 0 to copies - 1)
    std::size_t copy_pc_ = 0;   // ... and the step in it

    // A setup's first address the caches did not hold: bpfvm_jit_probe finds its region (and
    // caches it) or says there is none; then the test again, and no window if it still misses.
    void probe_misses() {
        if (!probe_misses_.empty()) {
            probe_stub_ = a_.newLabel();
        }
        for (const ProbeMiss& m : probe_misses_) {
            a_.bind(m.label);
            a_.mov(field(offsetof(RunState, window_n)), r11);
            a_.mov(r11, access_info(m.access->pc, m.access->width, m.access->write));
            a_.call(probe_stub_);
            a_.mov(r11, field(offsetof(RunState, window_n)));
            a_.test(r10, r10);
            a_.jz(m.fail);
            first_address(*m.access);
            a_.cmp(r10, cache_lo(*m.access));
            a_.jb(m.fail);
            a_.cmp(r10, cache_hi(*m.access));
            a_.ja(m.fail);
            a_.jmp(m.hit);
        }
        if (!probe_misses_.empty()) {
            // r10 = address, r11 = access_info; every eBPF register survives; r10 = found or 0.
            a_.bind(probe_stub_);
            const Gp saved[] = {rax, rdi, rsi, rdx, rcx, r8, r9, r11};
            for (const Gp& g : saved) {
                a_.push(g);
            }
            a_.sub(rsp, 8);
            a_.mov(rdi, kState);
            a_.mov(rsi, r10);
            a_.mov(rdx, r11);
            a_.mov(r11, reinterpret_cast<uint64_t>(&bpfvm_jit_probe));
            a_.call(r11);
            a_.mov(r10, rax);
            a_.add(rsp, 8);
            for (auto it = std::rbegin(saved); it != std::rend(saved); ++it) {
                a_.pop(*it);
            }
            a_.ret();
        }
    }

    // ---- lowering -----------------------------------------------------------------------

    // (Inlined into its callers, as alu_reg into lower: GCC's own choice moves with unrelated
    // changes, and a call per instruction costs a compile about 2%.)
    [[gnu::always_inline]] void lower_step(std::size_t pc, const Step& step) {
        switch (step.kind) {
            case Fused::Alone:
                if (step.compare != Step::kNoRegister) {
                    cond_jump(p_[pc].info(), compared(p_[pc], step),
                              taken_edge(pc), false);
                    return;
                }
                lower(pc, p_[pc]);
                return;
            case Fused::Covered:
            case Fused::Nothing:
                return;
            case Fused::Address: {
                const std::size_t at = pc + step.span - 1;  // the memory op (traps name its pc)
                memory_op(at, p_[at], Address{step.base, step.index, step.disp});
                return;
            }
            case Fused::AddMove: {
                const bool w64 = p_[pc].info().width == 8;
                const Gp& d = kRegsBy[w64][p_[pc].dst];
                const Gp& b = kRegs[step.base];
                a_.lea(d, step.index < 0 ? ptr(b, step.disp) : ptr(b, kRegs[step.index]));
                return;
            }
            case Fused::ZeroExtend: {
                const Gp d = kRegs[p_[pc].dst].r32();
                const Gp& src = kRegs[step.base];
                if (step.disp == 8) {
                    a_.movzx(d, src.r8());
                } else {
                    a_.movzx(d, src.r16());
                }
                return;
            }
            case Fused::Inverted: {
                const vm::Instruction& jump = p_[pc + 1];
                cond_jump(p_[pc].info(), compared(p_[pc], step),
                          jump_to(vm::branch_target(jump, pc + 1)), true);
                return;
            }
            case Fused::Select:
                select(pc, step);
                return;
            case Fused::AddTo: {
                const bool w64 = p_[pc].info().width == 8;
                a_.add(kRegsBy[w64][step.base], step.disp);
                return;
            }
        }
    }

    // A conditional jump with the register the plan compares in place of dst.
    static vm::Instruction compared(const vm::Instruction& insn, const Step& step) {
        vm::Instruction copy = insn;
        if (step.compare != Step::kNoRegister) {
            copy.dst = step.compare;
        }
        return copy;
    }

    [[gnu::always_inline]] void lower(std::size_t pc, const vm::Instruction& insn) {
        pc_ = pc;
        const vm::OpInfo& row = insn.info();
        // The common forms here, the rest out of line (a smaller frame for the common ones).
        switch (row.form) {
            case Form::AluImm: {
                const bool w64 = row.width == 8;
                alu_imm(row.sem, kRegsBy[w64][insn.dst], insn.imm, w64, insn);
                break;
            }
            case Form::AluReg: {
                const bool w64 = row.width == 8;
                alu_reg(row.sem, kRegsBy[w64][insn.dst], kRegsBy[w64][insn.src], kRegs[insn.dst], kRegs[insn.src],
                        insn, w64);
                break;
            }
            case Form::LoadMem:
            case Form::StoreImm:
            case Form::StoreReg:
                memory_op(pc, insn, Address{row.form == Form::LoadMem ? insn.src : insn.dst, -1, insn.off});
                break;
            case Form::Jump:
            case Form::Jump32:
                go_to(pc, vm::branch_target(insn, pc), pc + 1);
                break;
            case Form::CondImm:
            case Form::CondReg:
                cond_jump(row, insn, taken_edge(pc), false);
                break;
            case Form::AluUnary:
            case Form::Endian:
            case Form::Atomic:
            case Form::LoadImm64:
            case Form::LoadAbs:
            case Form::LoadInd:
            case Form::Call:
            case Form::CallLocal:
            case Form::CallBtf:
            case Form::Callx:
            case Form::Exit:
                lower_rare(pc, insn, row);
                break;
        }
    }
    [[gnu::noinline]] void lower_rare(std::size_t pc, const vm::Instruction& insn, const vm::OpInfo& row) {
        const bool w64 = row.width == 8;
        const Gp& d = kRegs[insn.dst];
        const Gp& dw = kRegsBy[w64][insn.dst];
        switch (row.form) {
            case Form::AluImm:
            case Form::AluReg:
            case Form::LoadMem:
            case Form::StoreImm:
            case Form::StoreReg:
            case Form::Jump:
            case Form::Jump32:
            case Form::CondImm:
            case Form::CondReg:
                BPFVM_ASSERT(false);  // (lower's)
                break;
            case Form::AluUnary:
                a_.neg(dw);
                break;
            case Form::Endian:
                endian(row.sem, d, insn.imm);
                break;
            case Form::Atomic:
                atomic(row, insn, pc);
                break;
            case Form::LoadImm64:
                if (insn.op == vm::Op::LddwCodeAddr) {
                    // A function's address: the same opaque value the interpreter gives.
                    a_.mov(d, vm::function_pointer(static_cast<uint32_t>(static_cast<int64_t>(pc) + 1 + insn.imm)));
                } else if (blind_) {
                    const uint64_t key = keys_();
                    a_.mov(d, insn.imm64() ^ key);
                    a_.mov(r11, key);
                    a_.xor_(d, r11);
                } else {
                    a_.mov(d, insn.imm64());
                }
                break;
            case Form::LoadAbs:
            case Form::LoadInd:
                load_packet(row, insn);
                break;
            case Form::Call:
                call_helper(insn, pc);
                break;
            case Form::CallLocal:
                call_local(insn, pc);
                break;
            case Form::CallBtf:
                a_.jmp(trap(vm::TrapKind::UnsupportedCall, static_cast<uint32_t>(pc), static_cast<uint32_t>(insn.imm)));
                break;
            case Form::Callx:
                callx(insn, pc);
                break;
            case Form::Exit:
                if (leaf_) {
                    leaf_return();  // the epilogue in place: pops and ret
                } else if (pc >= facts_.main_end) {  // a later function's exit: it returns
                    return_from_call();
                } else if (!main_is_called_) {
                    if (pc + 1 == facts_.main_end && !epilogue_placed_ && !in_copy_) {
                        epilogue();  // (the first function's last instruction: no jump to it)
                    } else {
                        a_.jmp(epilogue_);
                    }
                } else {
                    // The first function is also called: depth tells an exit from a return.
                    a_.cmp(field(offsetof(RunState, depth), 4), 0);
                    a_.je(epilogue_);
                    return_from_call();
                }
                break;
        }
    }

    // Constant blinding: the immediate reaches r11 as (imm ^ key) ^ key, sign-extended for 64-bit
    // operations, so the code holds no byte the program chose.
    Gp blinded(int32_t imm, bool w64) {
        const auto key = static_cast<uint32_t>(keys_());
        a_.mov(r11d, static_cast<uint32_t>(imm) ^ key);
        a_.xor_(r11d, key);
        if (w64) {
            a_.movsxd(r11, r11d);
            return r11;
        }
        return r11d;
    }

    void alu_imm(Sem sem, const Gp& d, int32_t imm, bool w64, const vm::Instruction& insn) {
        const bool shift = sem == Sem::Lsh || sem == Sem::Rsh || sem == Sem::Arsh;
        if (blind_ && !shift) {
            // (Shift counts are masked to 0..63: nothing to plant.)
            if (sem == Sem::Mov) {
                const auto key = static_cast<uint32_t>(keys_());
                a_.mov(d.r32(), static_cast<uint32_t>(imm) ^ key);
                a_.xor_(d.r32(), key);
                if (w64) {
                    a_.movsxd(d, d.r32());
                }
                return;
            }
            const Gp b = blinded(imm, w64);
            alu_reg(sem, d, b, Gp(kRegs[insn.dst]), r11, insn, w64);
            return;
        }
        if (sem == Sem::Add) {
            a_.add(d, imm);
            return;
        }
        if (sem == Sem::Sub) {
            a_.sub(d, imm);
            return;
        }
        if (sem == Sem::Mul) {
            a_.imul(d, d, imm);
            return;
        }
        if (sem == Sem::Or) {
            a_.or_(d, imm);
            return;
        }
        if (sem == Sem::And) {
            a_.and_(d, imm);
            return;
        }
        if (sem == Sem::Xor) {
            a_.xor_(d, imm);
            return;
        }
        if (sem == Sem::Mov) {
            if (imm == 0) {
                a_.xor_(d.r32(), d.r32());  // (flags are dead between instructions)
            } else if (w64) {
                a_.mov(d, static_cast<int64_t>(imm));  // sign-extended
            } else {
                a_.mov(d, static_cast<uint32_t>(imm));
            }
            return;
        }
        if (sem == Sem::Lsh) {
            const auto k = static_cast<uint32_t>(imm) & (w64 ? 63 : 31);
            if (k == 1) {
                a_.add(d, d);
                return;
            }
            // Intel's cores run shifts, cmovs, setccs and branches on the same two ports (0 and
            // 6): a shift by 2 or 3 is a lea, and in a loop busy on those ports so is one by up
            // to 6 (two leas).
            if (intel_ && k >= 2 && (k <= 3 || (k <= 6 && shift_ports_busy()))) {
                a_.lea_scaled(d, d.r64(), std::min<uint32_t>(k, 3));
                if (k > 3) {
                    a_.lea_scaled(d, d.r64(), k - 3);
                }
                return;
            }
            a_.shl(d, k);
            return;
        }
        if (sem == Sem::Rsh) {
            a_.shr(d, imm & (w64 ? 63 : 31));
            return;
        }
        if (sem == Sem::Arsh) {
            a_.sar(d, imm & (w64 ? 63 : 31));
            return;
        }
        if (sem == Sem::Div || sem == Sem::Mod || sem == Sem::Sdiv || sem == Sem::Smod) {
            if (w64) {
                a_.mov(r11, static_cast<int64_t>(imm));
            } else {
                a_.mov(r11d, static_cast<uint32_t>(imm));
            }
            divide(sem, d, w64 ? Gp(r11) : Gp(r11d), w64, imm != 0, imm == -1);
            return;
        }
        BPFVM_ASSERT(false);
    }

    [[gnu::always_inline]] void alu_reg(Sem sem, const Gp& d, const Gp& s, const Gp& d64, const Gp& s64, const vm::Instruction& insn,
                 bool w64) {
        if (sem == Sem::Add) {
            a_.add(d, s);
            return;
        }
        if (sem == Sem::Sub) {
            a_.sub(d, s);
            return;
        }
        if (sem == Sem::Mul) {
            a_.imul(d, s);
            return;
        }
        if (sem == Sem::Or) {
            a_.or_(d, s);
            return;
        }
        if (sem == Sem::And) {
            a_.and_(d, s);
            return;
        }
        if (sem == Sem::Xor) {
            a_.xor_(d, s);
            return;
        }
        if (sem == Sem::Mov) {
            a_.mov(d, s);
            return;
        }
        if (sem == Sem::Movsx) {
            if (insn.off == 8) {
                a_.movsx(d, s64.r8());
            } else if (insn.off == 16) {
                a_.movsx(d, s64.r16());
            } else {
                a_.movsxd(d64, s64.r32());
            }
            return;
        }
        if (sem == Sem::Lsh || sem == Sem::Rsh || sem == Sem::Arsh) {
            shift_by_register(sem, d, d64, s64, w64);
            return;
        }
        if (sem == Sem::Div || sem == Sem::Mod || sem == Sem::Sdiv || sem == Sem::Smod) {
            a_.mov(r11, s64);
            divide(sem, d, w64 ? Gp(r11) : Gp(r11d), w64, false);
            return;
        }
        BPFVM_ASSERT(false);
    }

    // x86 shifts by cl (rcx is eBPF r4): borrow rcx, shifting a copy when the destination is rcx.
    void shift_by_register(Sem sem, const Gp& d, const Gp& d64, const Gp& s64, bool w64) {
        auto emit = [&](const Gp& target) {
            if (sem == Sem::Lsh) {
                a_.shl(target, cl);
            } else if (sem == Sem::Rsh) {
                a_.shr(target, cl);
            } else {
                a_.sar(target, cl);
            }
        };
        if (s64 == rcx) {
            emit(d);
            return;
        }
        a_.mov(r11, rcx);
        a_.mov(rcx, s64);
        if (d64 == rcx) {
            emit(w64 ? Gp(r11) : Gp(r11d));
            a_.mov(rcx, r11);
            if (!w64) {
                a_.mov(ecx, ecx);
            }
        } else {
            emit(d);
            a_.mov(rcx, r11);
        }
    }

    // d = d op divisor (divisor in r11/r11d). Division by zero gives 0, modulo by zero keeps the
    // dividend, INT_MIN / -1 = INT_MIN and INT_MIN % -1 = 0 (RFC 9669); no flags saved. Those
    // cases are tested first and done out of line, so the common path runs straight through;
    // rax and rdx (r0, r3) are kept only where they are read afterwards and are not d (rdx in
    // r10, rax on the native stack: leaf programs have no RunState).
    void divide(Sem sem, const Gp& d, const Gp& divisor, bool w64, bool divisor_nonzero, bool maybe_minus_one = true) {
        const bool is_mod = sem == Sem::Mod || sem == Sem::Smod;
        const bool is_signed = sem == Sem::Sdiv || sem == Sem::Smod;
        const Label done = a_.newLabel();
        if (!divisor_nonzero) {
            a_.test(divisor, divisor);
            cold_.push_back({a_.newLabel(), done, d, is_mod ? ColdDivide::kKeep : ColdDivide::kZero});
            a_.jz(cold_.back().label);
        }
        if (is_signed && maybe_minus_one) {
            a_.cmp(divisor, -1);
            cold_.push_back({a_.newLabel(), done, d, is_mod ? ColdDivide::kZero : ColdDivide::kNegate});
            a_.je(cold_.back().label);
        }
        const bool keep_ax = d.id() != rax.id() && facts_.live(pc_, 0);
        const bool keep_dx = d.id() != rdx.id() && facts_.live(pc_, 3);
        if (keep_ax) {
            a_.push(rax);
        }
        if (keep_dx) {
            a_.mov(r10, rdx);
        }
        const Gp ax = w64 ? Gp(rax) : Gp(eax);
        const Gp dx = w64 ? Gp(rdx) : Gp(edx);
        if (d.id() != rax.id()) {
            a_.mov(ax, d);
        }
        if (is_signed) {
            if (w64) {
                a_.cqo();
            } else {
                a_.cdq();
            }
            a_.idiv(divisor);
        } else {
            a_.xor_(edx, edx);
            a_.div(divisor);
        }
        if (d.id() != (is_mod ? rdx.id() : rax.id())) {
            a_.mov(d, is_mod ? dx : ax);
        }
        if (keep_dx) {
            a_.mov(rdx, r10);
        }
        if (keep_ax) {
            a_.pop(rax);
        }
        a_.bind(done);
    }

    // A division's cases that need no divide, out of line: d = 0, d kept (zero-extended when
    // 32-bit), or d = -d; then back.
    struct ColdDivide {
        Label label;
        Label back;
        Gp d;
        enum : uint8_t { kZero, kKeep, kNegate } action;
    };
    std::vector<ColdDivide> cold_;
    void cold_divides() {
        for (const ColdDivide& c : cold_) {
            a_.bind(c.label);
            if (c.action == ColdDivide::kZero) {
                a_.xor_(c.d.r32(), c.d.r32());
            } else if (c.action == ColdDivide::kNegate) {
                a_.neg(c.d);
            } else if (c.d.isGpd()) {
                a_.mov(c.d, c.d);
            }
            a_.jmp(c.back);
        }
    }

    void endian(Sem sem, const Gp& d, int32_t bits) {
        if (sem == Sem::Le) {
            if (bits == 16) {
                a_.movzx(d.r32(), d.r16());
            } else if (bits == 32) {
                a_.mov(d.r32(), d.r32());
            }
            return;
        }
        if (bits == 16) {
            a_.rol(d.r16(), 8);
            a_.movzx(d.r32(), d.r16());
        } else if (bits == 32) {
            a_.bswap(d.r32());
        } else {
            a_.bswap(d);
        }
    }

    // Whether an access of `len` bytes at `at` needs no run-time check: verified mode, a slot of
    // the frame, or a window's copy (its accesses were proved to stay in their regions).
    bool unchecked(const Address& at, uint32_t len) const {
        const bool in_frame = at.base == 10 && at.index < 0 && at.disp >= -static_cast<int32_t>(vm::kStackFrameBytes) &&
                              at.disp <= -static_cast<int32_t>(len);
        return !checked_ || in_frame || in_copy_;
    }

    // An address: base + index + disp (index < 0: none).
    // The operand of a load or store of `len` bytes at `at`. Checked mode: unless it lies in the
    // current frame by construction (r10 plus a constant), the address (the base register itself
    // when that is all it is, else r10; always r10 with `in_r10`) is tested against the cache of
    // the last region used, with bpfvm_jit_check on a miss.
    Mem access(const Address& at, uint32_t len, bool write, std::size_t pc, bool in_r10 = false) {
        const Gp& b = kRegs[at.base];
        const Mem plain = at.index < 0 ? ptr(b, at.disp, len) : ptr(b, kRegs[at.index], 0, at.disp, len);
        if (unchecked(at, len)) {
            return plain;
        }
        const Label slow = a_.newLabel();
        const Label resume = a_.newLabel();
        const std::size_t cache = write ? offsetof(RunState, wr) : offsetof(RunState, rd);
        const std::size_t width_index = len == 1 ? 0 : len == 2 ? 1 : len == 4 ? 2 : 3;
        Gp addr = b;
        if (at.index >= 0 || at.disp != 0 || in_r10) {
            Mem m = plain;
            m.setSize(0);
            a_.lea(r10, m);
            addr = r10;
        }
        a_.cmp(addr, field(cache + offsetof(AccessCache, lo)));
        a_.jb(slow);
        a_.cmp(addr, field(cache + offsetof(AccessCache, hi) + 8 * width_index));
        a_.ja(slow);
        a_.bind(resume);
        slow_accesses_.push_back({slow, resume, access_info(static_cast<uint32_t>(pc), len, write), addr});
        uses_check_stub_ = true;
        return ptr(addr, 0, len);
    }

    // A load or store (`insn` at pc) at `at`, which may have been folded from earlier instructions.
    void memory_op(std::size_t pc, const vm::Instruction& insn, const Address& at) {
        const vm::OpInfo& row = insn.info();
        if (unchecked(at, row.width)) {
            // The address's registers straight to the encoder (the same bytes as below).
            const FastAssembler::Address a{kRegs[at.base].id(),
                                           at.index < 0 ? FastAssembler::kNoIndex : kRegs[at.index].id(), at.disp};
            const bool done = row.form == Form::LoadMem    ? a_.load_at(kRegs[insn.dst], a, row.width, row.sem == Sem::Ldxs)
                              : row.form == Form::StoreImm ? !blind_ && a_.store_imm_at(a, insn.imm, row.width)
                                                           : a_.store_at(a, kRegs[insn.src], row.width);
            if (done) {
                return;
            }
        }
        if (row.form == Form::LoadMem) {
            load(row, kRegs[insn.dst], access(at, row.width, false, pc));
        } else if (row.form == Form::StoreImm) {
            store_imm(row.width, access(at, row.width, true, pc), insn.imm);
        } else {
            BPFVM_ASSERT(row.form == Form::StoreReg);
            store_value(row.width, access(at, row.width, true, pc), kRegs[insn.src]);
        }
    }

    void load(const vm::OpInfo& row, const Gp& d, const Mem& m) {
        if (row.sem == Sem::Ldxs) {
            if (row.width == 4) {
                a_.movsxd(d, m);
            } else {
                a_.movsx(d, m);
            }
            return;
        }
        switch (row.width) {
            case 1:
            case 2:
                a_.movzx(d.r32(), m);
                break;
            case 4:
                a_.mov(d.r32(), m);
                break;
            default:
                a_.mov(d, m);
        }
    }

    void store_imm(unsigned width, const Mem& m, int32_t imm) {
        if (blind_) {
            const Gp v = blinded(imm, width == 8);
            store_value(width, m, v);
            return;
        }
        switch (width) {
            case 1:
                a_.mov(m, imm & 0xff);
                break;
            case 2:
                a_.mov(m, imm & 0xffff);
                break;
            default:
                a_.mov(m, imm);  // a 64-bit store sign-extends the immediate, as eBPF does
        }
    }

    void store_value(unsigned width, const Mem& m, const Gp& s) {
        switch (width) {
            case 1:
                a_.mov(m, s.r8());
                break;
            case 2:
                a_.mov(m, s.r16());
                break;
            case 4:
                a_.mov(m, s.r32());
                break;
            default:
                a_.mov(m, s);
        }
    }

    void atomic(const vm::OpInfo& row, const vm::Instruction& insn, std::size_t pc) {
        const bool w64 = row.width == 8;
        const Gp& sw = kRegsBy[w64][insn.src];
        const Mem m = ptr(r10, 0, row.width);
        if (checked_) {
            (void)access(Address{insn.dst, -1, insn.off}, row.width, true, pc, true);
            if (insn.dst == 10) {
                a_.lea(r10, ptr(rbp, insn.off));  // in the frame: access() left r10 alone
            }
            a_.test(r10b, row.width - 1);
            a_.jnz(trap(vm::TrapKind::Misaligned, static_cast<uint32_t>(pc), 0, 0, row.width));
        } else {
            a_.lea(r10, ptr(kRegs[insn.dst], insn.off));
        }
        if (row.sem == Sem::AtomicAdd) {
            a_.lock_add(m, sw);
            return;
        }
        if (row.sem == Sem::AtomicOr) {
            a_.lock_or(m, sw);
            return;
        }
        if (row.sem == Sem::AtomicAnd) {
            a_.lock_and(m, sw);
            return;
        }
        if (row.sem == Sem::AtomicXor) {
            a_.lock_xor(m, sw);
            return;
        }
        if (row.sem == Sem::AtomicFetchAdd) {
            a_.lock_xadd(m, sw);  // 32-bit: writing s.r32 zero-extends
            return;
        }
        if (row.sem == Sem::AtomicXchg) {
            a_.xchg(m, sw);
            return;
        }
        if (row.sem == Sem::AtomicCmpxchg) {
            a_.lock_cmpxchg(m, sw, w64 ? Gp(rax) : Gp(eax));
            if (!w64) {
                a_.mov(eax, eax);  // r0 is the zero-extended old value
            }
            return;
        }
        if (row.sem == Sem::AtomicFetchOr || row.sem == Sem::AtomicFetchAnd || row.sem == Sem::AtomicFetchXor) {
            // cmpxchg loop; rax is eBPF r0, so it is kept on the native stack meanwhile.
            const Gp ax = w64 ? Gp(rax) : Gp(eax);
            const Gp t = w64 ? Gp(r11) : Gp(r11d);
            const Gp v = w64 ? Gp(r9) : Gp(r9d);
            a_.push(rax);
            a_.push(r9);  // the budget, in checked mode
            a_.mov(v, sw);
            a_.mov(ax, m);
            Label again = a_.newLabel();
            a_.bind(again);
            a_.mov(t, ax);
            if (row.sem == Sem::AtomicFetchOr) {
                a_.or_(t, v);
            } else if (row.sem == Sem::AtomicFetchAnd) {
                a_.and_(t, v);
            } else {
                a_.xor_(t, v);
            }
            a_.lock_cmpxchg(m, t, ax);
            a_.jnz(again);
            a_.mov(t, ax);
            a_.pop(r9);
            a_.pop(rax);
            a_.mov(sw, t);
            return;
        }
        BPFVM_ASSERT(false);
    }

    // The condition that holds exactly when `sem`'s does not (Jset's inverse, "no bit in
    // common", is lowered as jz: kept as Ja here, which no compare uses).
    static Sem inverse(Sem sem) {
        constexpr std::pair<Sem, Sem> kPairs[] = {
            {Sem::Jeq, Sem::Jne},   {Sem::Jgt, Sem::Jle},   {Sem::Jge, Sem::Jlt},
            {Sem::Jsgt, Sem::Jsle}, {Sem::Jsge, Sem::Jslt}, {Sem::Jset, Sem::Ja},
        };
        for (const auto& [a, b] : kPairs) {
            if (sem == a) {
                return b;
            }
            if (sem == b && a != Sem::Jset) {
                return a;
            }
        }
        BPFVM_ASSERT(false);
        return sem;
    }

    // Compare and branch to `target` when the condition holds (or, `inverted`, when it does not).
    void cond_jump(const vm::OpInfo& row, const vm::Instruction& insn, const Label& target, bool inverted) {
        compare(row, insn);
        const Sem sem = inverted ? inverse(row.sem) : row.sem;
        if (at_seam(target)) {
            branch(condition(sem), target);
        } else if (sem == Sem::Jset) {
            a_.jnz(target);  // (named for the test: asmjit would list jne)
        } else if (sem == Sem::Ja) {
            a_.jz(target);
        } else {
            a_.j(condition(sem), target);
        }
    }
    // A conditional jump; at an unrolled window copy's seam (window_copy), a copy's last jump
    // back to the top, which goes on in the next copy, falls into it instead: the condition is
    // inverted, to the seam's stub, where the rest of the step and its way out are laid out.
    bool at_seam(const Label& target) const { return seam_to_.isValid() && target.id() == seam_to_.id(); }
    void branch(CondCode c, const Label& target) {
        if (at_seam(target)) {
            a_.j(asmjit::x86::negateCond(c), seam_stub_);
            seam_taken_ = true;
            return;
        }
        a_.j(c, target);
    }
    Label seam_to_;             // the label a jump at the seam would go to (none elsewhere)
    Label seam_stub_;           // ... where it goes instead, with the condition inverted
    bool seam_taken_ = false;   // the seam's jump was inverted
    std::size_t seam_sunk_ = SIZE_MAX;  // the step sunk past it (kNoSunk: none), lowered at the stub
    struct Seam {
        Label stub;
        unsigned copy;
        std::size_t pc;
        std::size_t sunk;
    };
    std::vector<Seam> seams_;  // a window copy's seams whose jump was inverted

    // The flags a conditional jump tests.
    void compare(const vm::OpInfo& row, const vm::Instruction& insn) {
        const bool w64 = row.width == 8;
        const Gp& d = kRegsBy[w64][insn.dst];
        const bool reg = row.form == Form::CondReg;
        const Gp& s = kRegsBy[w64][insn.src];
        if (!reg && blind_) {
            const Gp b = blinded(insn.imm, w64);
            if (row.sem == Sem::Jset) {
                a_.test(d, b);
            } else {
                a_.cmp(d, b);
            }
        } else if (row.sem == Sem::Jset) {
            if (reg) {
                a_.test(d, s);
            } else {
                a_.test(d, insn.imm);
            }
        } else if (reg) {
            a_.cmp(d, s);
        } else if (insn.imm == 0) {
            a_.test(d, d);  // the same flags for every condition below, and shorter
        } else {
            a_.cmp(d, insn.imm);
        }
    }

    // The compare for a setcc or cmov of `sem` (the jump's condition or its inverse), and the
    // condition to test after it. Intel's cores (Broadwell on) run a setcc or cmov of `a` or `be`,
    // which read both the carry and the zero flag, as two uops on ports 0 and 6, and of any other
    // condition as one; so `x > c` and `x <= c` are compared as `x >= c + 1` and `x < c + 1`, or
    // with a register as `y < x` and `y >= x` (the operands swapped). (A jump of `a` or `be` fuses
    // with its compare into one uop: cond_jump keeps them.)
    CondCode compare_for_flags(const vm::OpInfo& row, const vm::Instruction& insn, Sem sem) {
        if (sem == Sem::Jgt || sem == Sem::Jle) {
            const bool w64 = row.width == 8;
            const Gp& d = kRegsBy[w64][insn.dst];
            const bool above = sem == Sem::Jgt;
            if (row.form == Form::CondReg) {
                a_.cmp(kRegsBy[w64][insn.src], d);  // src < dst (above) or src >= dst
                return above ? CondCode::kB : CondCode::kAE;
            }
            if (insn.imm == 0) {
                compare(row, insn);  // x > 0: x != 0
                return above ? CondCode::kNE : CondCode::kE;
            }
            // c + 1 must be an immediate of the compare: not past the top of c's range (where
            // x > c never holds), and for 64 bits still a sign-extended 32-bit value. (Blinded
            // immediates, which selects do not have, stay as they are.)
            if (!blind_ && insn.imm != -1 && (!w64 || insn.imm != std::numeric_limits<int32_t>::max())) {
                a_.cmp(d, static_cast<int32_t>(static_cast<uint32_t>(insn.imm) + 1));
                return above ? CondCode::kAE : CondCode::kB;
            }
        }
        compare(row, insn);
        return condition(sem);
    }

    // Whether a conditional jump compares rX.
    static bool compares(const vm::Instruction& jump, unsigned x) {
        return jump.dst == x || (jump.info().form == Form::CondReg && jump.src == x);
    }
    static CondCode condition(Sem sem) {
        constexpr std::pair<Sem, CondCode> kConditions[] = {
            {Sem::Jeq, CondCode::kE},   {Sem::Jne, CondCode::kNE},  {Sem::Jgt, CondCode::kA},
            {Sem::Jge, CondCode::kAE},  {Sem::Jlt, CondCode::kB},   {Sem::Jle, CondCode::kBE},
            {Sem::Jsgt, CondCode::kG},  {Sem::Jsge, CondCode::kGE}, {Sem::Jslt, CondCode::kL},
            {Sem::Jsle, CondCode::kLE}, {Sem::Jset, CondCode::kNZ}, {Sem::Ja, CondCode::kZ},  // (Ja: inverted Jset)
        };
        for (const auto& [s, cc] : kConditions) {
            if (s == sem) {
                return cc;
            }
        }
        BPFVM_ASSERT(false);
        return CondCode::kE;
    }
    // ---- selects that share a condition --------------------------------------------------
    //
    // clang writes `r = a < K ? x : y; s = a < K ? u : v` as two selects, each with its own
    // compare of a with K, often far apart (log2 by halving: each step's shift and its bit of the
    // result). Where the steps between allow it (schedule_from), the second is lowered right
    // after the first and tests the flags the first left, with no compare of its own.

    // A select's condition in one form for the comparisons of `rA op K` (CondImm): `rA < K`
    // (unsigned or signed), `rA == K` or `rA & K`, held or not (`positive`); x > K and x <= K are
    // x >= K + 1 and x < K + 1. `kind` 0: no such form.
    struct CondKey {
        uint8_t kind = 0;  // 1: unsigned <, 2: signed <, 3: ==, 4: & (not zero)
        uint8_t reg = 0;
        bool w64 = false;
        bool positive = true;
        uint64_t value = 0;
        [[nodiscard]] bool same(const CondKey& o) const {
            return kind != 0 && kind == o.kind && reg == o.reg && w64 == o.w64 && value == o.value;
        }
    };
    static CondKey cond_key(const vm::Instruction& jump) {
        const vm::OpInfo& row = jump.info();
        CondKey k;
        if (row.form != Form::CondImm) {
            return k;
        }
        k.reg = jump.dst;
        k.w64 = row.width == 8;
        const uint64_t v = immediate(jump);
        const uint64_t top = k.w64 ? ~uint64_t{0} : 0xffffffffu;             // unsigned maximum
        const uint64_t stop = k.w64 ? uint64_t{INT64_MAX} : 0x7fffffffu;     // signed maximum
        const bool next_fits = v != top;
        const bool snext_fits = v != stop;
        auto set = [&](uint8_t kind, uint64_t value, bool positive) {
            k.kind = kind;
            k.value = value & top;
            k.positive = positive;
        };
        constexpr struct {
            Sem sem;
            uint8_t kind;
            bool positive;
            bool plus_one;  // x > K, x <= K: against K + 1
        } kForms[] = {
            {Sem::Jeq, 3, true, false},  {Sem::Jne, 3, false, false},  {Sem::Jset, 4, true, false},
            {Sem::Jlt, 1, true, false},  {Sem::Jge, 1, false, false},  {Sem::Jle, 1, true, true},
            {Sem::Jgt, 1, false, true},  {Sem::Jslt, 2, true, false}, {Sem::Jsge, 2, false, false},
            {Sem::Jsle, 2, true, true},  {Sem::Jsgt, 2, false, true},
        };
        for (const auto& f : kForms) {
            if (f.sem == row.sem && (!f.plus_one || (f.kind == 1 ? next_fits : snext_fits))) {
                set(f.kind, f.plus_one ? v + 1 : v, f.positive);
            }
        }
        return k;
    }

    // The flags the last select left: valid when its last instruction to write them tested its
    // condition, which then holds where `taken_cc_` does.
    bool flags_valid_ = false;
    CondCode taken_cc_ = CondCode::kE;
    // Set by lower_schedule for a select that tests the same condition: its compare is left out
    // (unless it writes the flags itself before the compare; it clears reuse_ then).
    bool reuse_ = false;
    CondCode reuse_taken_ = CondCode::kE;

    // compare_for_flags for a select, or the flags of the select before it.
    CondCode select_flags(const vm::OpInfo& row, const vm::Instruction& jump, Sem sem) {
        CondCode cc;
        if (reuse_) {
            cc = sem == row.sem ? reuse_taken_ : asmjit::x86::negateCond(reuse_taken_);
        } else {
            cc = compare_for_flags(row, jump, sem);
        }
        taken_cc_ = sem == row.sem ? cc : asmjit::x86::negateCond(cc);
        flags_valid_ = true;
        return cc;
    }
    void shift_flags(int shift_flag) {
        taken_cc_ = flag_condition(shift_flag, true);
        flags_valid_ = true;
    }

    // A run of steps lowered in another order: their pcs in schedule_order_ (kept per thread, as
    // the facts are). Bit k of `reuse`: the k-th tests the flags the one before it left, with the
    // condition the same (bit k of `same`) or inverted.
    struct Schedule {
        uint32_t begin = 0;  // the first pc
        uint32_t end = 0;    // past the last pc
        uint32_t last = 0;   // the last step, in program order
        uint64_t reuse = 0;
        uint64_t same = 0;
    };
    static thread_local std::vector<uint32_t> thread_schedule_order;
    Schedule schedule_;  // the last one found
    std::vector<uint32_t>& schedule_order_ = thread_schedule_order;

    // The registers a step the scheduler may move reads and writes (natively: the lowering's own
    // as well as the eBPF's), or false for one it does not move: anything but moves, simple ALU
    // ops (no division, multiplication, or shift by a register) and selects of them.
    bool movable(std::size_t pc, uint16_t& use, uint16_t& def) const {
        const Step& step = steps_[pc];
        const vm::Instruction& i = p_[pc];
        auto simple = [](const vm::Instruction& k, uint16_t& u, uint16_t& d) {
            const vm::OpInfo& row = k.info();
            if (row.form != Form::AluImm && row.form != Form::AluReg) {
                return false;
            }
            const Sem m = row.sem;
            const bool shift = m == Sem::Lsh || m == Sem::Rsh || m == Sem::Arsh;
            if (!(m == Sem::Mov || m == Sem::Add || m == Sem::Sub || m == Sem::And || m == Sem::Or || m == Sem::Xor ||
                  (shift && row.form == Form::AluImm))) {
                return false;  // (a shift by a register uses rcx)
            }
            u = static_cast<uint16_t>(u | (row.sem != Sem::Mov ? 1u << k.dst : 0u) |
                                      (row.form == Form::AluReg ? 1u << k.src : 0u));
            d = static_cast<uint16_t>(d | native_writes(k));
            return true;
        };
        use = 0;
        def = 0;
        switch (step.kind) {
            case Fused::Nothing:
                return true;
            case Fused::Alone:
                return simple(i, use, def);
            case Fused::AddMove:
                use = static_cast<uint16_t>((1u << step.base) | (step.index >= 0 ? 1u << step.index : 0u));
                def = static_cast<uint16_t>(1u << i.dst);
                return true;
            case Fused::ZeroExtend:
                use = static_cast<uint16_t>(1u << step.base);
                def = static_cast<uint16_t>(1u << i.dst);
                return true;
            case Fused::AddTo:
                use = def = static_cast<uint16_t>(1u << step.base);
                return true;
            case Fused::Select: {
                const vm::OpInfo& jrow = i.info();
                use = static_cast<uint16_t>((1u << i.dst) | (jrow.form == Form::CondReg ? 1u << i.src : 0u));
                const std::size_t writes = step.span - 1u - static_cast<unsigned>(step.disp);
                for (std::size_t k = pc + 1; k <= pc + writes; ++k) {
                    if (!simple(p_[k], use, def)) {
                        return false;
                    }
                }
                use = static_cast<uint16_t>(use | def);  // (where c holds, rX keeps its value)
                return true;
            }
            case Fused::Covered:
            case Fused::Address:
            case Fused::Inverted:
                return false;
        }
        return false;
    }
    // Whether the scheduler may put pc (a step start) anywhere in a run: no budget charge, no
    // checked window.
    bool inside_ok(std::size_t pc) const {
        return !(checked_ && costs_[pc] != 0) && (window_of_.empty() || window_of_[pc] < 0);
    }

    // Whether the steps from the select at s on are lowered in another order (schedule_): where a
    // later select tests the condition s tests (the register unchanged), among steps that may
    // move and that control enters only at s, the later one, what it needs of the steps between
    // first, goes right after s (and so on for other pairs in the run).
    bool schedule_from(std::size_t s) {
        if (steps_[s].disp != 0) {
            return false;
        }
        const CondKey key = cond_key(p_[s]);
        if (key.kind == 0 || ((native_writes(p_[s + 1]) >> key.reg) & 1) != 0 ||
            (steps_[s].span == 3 && ((native_writes(p_[s + 2]) >> key.reg) & 1) != 0)) {
            return false;
        }
        // A later select of the same condition close by, past steps of the kinds movable() takes
        // (a first look, without their registers: schedule_run works it out).
        bool found = false;
        const std::size_t n = p_.size();
        for (std::size_t c = s + steps_[s].span, k = 0; c < n && k < 32 && !found; ++k, c += steps_[c].span) {
            const Fused kind = steps_[c].kind;
            const Form f = p_[c].info().form;
            if (kind == Fused::Select) {
                found = cond_key(p_[c]).same(key);
            } else if (!(kind == Fused::Nothing || kind == Fused::AddMove || kind == Fused::ZeroExtend ||
                         kind == Fused::AddTo || (kind == Fused::Alone && (f == Form::AluImm || f == Form::AluReg)))) {
                break;
            }
        }
        return found && schedule_run(s);
    }
    // Orders the run from select s (see schedule_from) into schedule_; false if no pair is found.
    bool schedule_run(std::size_t s) {
        constexpr std::size_t kMax = 64;
        uint16_t u;
        uint16_t d;
        const std::size_t begin = s;
        std::array<uint32_t, kMax> pcs;
        std::array<uint16_t, kMax> uses;
        std::array<uint16_t, kMax> defs;
        std::array<CondKey, kMax> keys;  // of the selects
        std::size_t m = 0;
        for (std::size_t pc = begin; pc < p_.size() && m < kMax;) {
            if (pc != begin && (step_into(pc) != pcs[m - 1] || !inside_ok(pc))) {
                break;
            }
            if (!movable(pc, u, d)) {
                break;
            }
            pcs[m] = static_cast<uint32_t>(pc);
            uses[m] = u;
            defs[m] = d;
            keys[m] = steps_[pc].kind == Fused::Select ? cond_key(p_[pc]) : CondKey{};
            ++m;
            if (steps_[pc].kind == Fused::Select && steps_[pc].disp != 0) {
                break;  // (it ends in a jump)
            }
            pc += steps_[pc].span;
            while (pc < p_.size() && p_.is_tail(pc)) {
                ++pc;
            }
        }
        if (m < 2) {
            return false;
        }
        const std::size_t end = pcs[m - 1] + steps_[pcs[m - 1]].span;
        // ancestors[j]: the steps j depends on, directly or not (a register one writes and the
        // other reads or writes), from the last step to write each register and the steps that
        // read it since (each with its own ancestors).
        std::array<uint64_t, kMax> ancestors{};
        std::array<uint64_t, vm::kNumRegisters + 1> writer{};
        std::array<uint64_t, vm::kNumRegisters + 1> readers{};
        for (std::size_t j = 0; j < m; ++j) {
            uint64_t a = 0;
            for (unsigned both = uses[j] | defs[j]; both != 0; both &= both - 1) {
                a |= writer[static_cast<unsigned>(__builtin_ctz(both))];
            }
            for (unsigned w = defs[j]; w != 0; w &= w - 1) {
                a |= readers[static_cast<unsigned>(__builtin_ctz(w))];
            }
            ancestors[j] = a;
            const uint64_t self = a | (uint64_t{1} << j);
            for (unsigned r = uses[j]; r != 0; r &= r - 1) {
                readers[static_cast<unsigned>(__builtin_ctz(r))] |= self;
            }
            for (unsigned w = defs[j]; w != 0; w &= w - 1) {
                const auto reg = static_cast<unsigned>(__builtin_ctz(w));
                writer[reg] = self;
                readers[reg] = 0;
            }
        }
        schedule_order_.clear();
        Schedule& sch = schedule_;
        sch = Schedule{};
        sch.begin = static_cast<uint32_t>(begin);
        sch.end = static_cast<uint32_t>(end);
        sch.last = pcs[m - 1];
        uint64_t emitted = 0;
        auto emit = [&](uint64_t set) {  // in program order, which is an order of dependence
            set &= ~emitted;
            while (set != 0) {
                const unsigned i = static_cast<unsigned>(__builtin_ctzll(set));
                set &= set - 1;
                schedule_order_.push_back(pcs[i]);
                emitted |= uint64_t{1} << i;
            }
        };
        bool paired = false;
        for (std::size_t i = 0; i < m; ++i) {
            const uint64_t bi = uint64_t{1} << i;
            const std::size_t pc = pcs[i];
            if ((emitted & bi) == 0 && steps_[pc].kind == Fused::Select && steps_[pc].disp == 0) {
                const CondKey& key = keys[i];
                if (key.kind != 0 && ((defs[i] >> key.reg) & 1) == 0) {
                    for (std::size_t j = i + 1; j < m; ++j) {
                        const std::size_t c = pcs[j];
                        if (keys[j].same(key)) {
                            const uint64_t before = (ancestors[j] | ancestors[i]) & ~bi;
                            bool can = (emitted & (uint64_t{1} << j)) == 0;
                            for (uint64_t rest = before; rest != 0 && can; rest &= rest - 1) {
                                can = (ancestors[__builtin_ctzll(rest)] & bi) == 0;  // not after i
                            }
                            if (can) {
                                emit(before);
                                emit(bi);
                                schedule_order_.push_back(static_cast<uint32_t>(c));
                                emitted |= uint64_t{1} << j;
                                const std::size_t at = schedule_order_.size() - 1;
                                sch.reuse |= uint64_t{1} << at;
                                if (keys[j].positive == key.positive) {
                                    sch.same |= uint64_t{1} << at;
                                }
                                paired = true;
                            }
                            break;
                        }
                        if (((defs[j] >> key.reg) & 1) != 0) {
                            break;  // the register changes before the next test
                        }
                    }
                }
            }
            emit(ancestors[i] | bi);
        }
        return paired;
    }
    // Lowers the run that starts at pc in its order; the main loop goes on at its end.
    void lower_schedule(const Schedule& sch, bool listing) {
        flags_valid_ = false;
        // After the last step: the first step of the block a rotating go_to copies, if any.
        const Step& last = steps_[sch.last];
        const bool ends_in_go_to = last.kind == Fused::Select && last.disp == 1;
        std::size_t after = SIZE_MAX;
        if (ends_in_go_to) {
            const int64_t target = vm::branch_target(p_[sch.last], sch.last);
            if (rotation(sch.last, target) != SIZE_MAX) {
                after = static_cast<std::size_t>(target);  // (a loop's top: a step of its own)
            }
        }
        for (std::size_t k = 0; k < schedule_order_.size(); ++k) {
            const std::size_t pc = schedule_order_[k];
            const Step& step = steps_[pc];
            if (pc != sch.begin && labels_[pc].isValid()) {
                a_.bind(labels_[pc]);  // (no jump goes there: the select before it is a cmov)
            }
            if (listing) {
                list_step(pc);
            }
            const bool reuse = ((sch.reuse >> k) & 1) != 0 && flags_valid_;
            const CondCode taken = taken_cc_;
            flags_valid_ = false;
            if (reuse) {
                reuse_ = true;
                reuse_taken_ = ((sch.same >> k) & 1) != 0 ? taken : asmjit::x86::negateCond(taken);
            }
            next_lowered_ = k + 1 < schedule_order_.size() ? schedule_order_[k + 1] : after;
            if (step.kind == Fused::Select) {
                select(pc, step, false);
            } else if (pc == carry_pc_) {
                add_carry(pc);
            } else if (step.kind == Fused::Alone && p_[pc].imm == 1 && zeroed_for_setcc(pc)) {
                a_.xor_(kRegs[p_[pc].dst].r32(), kRegs[p_[pc].dst].r32());
            } else {
                lower_step(pc, step);
            }
            reuse_ = false;
        }
        next_lowered_ = SIZE_MAX;
        flags_valid_ = false;
        if (ends_in_go_to) {
            go_to(sch.last, vm::branch_target(p_[sch.last], sch.last), sch.last + last.span);
        }
        BPFVM_ASSERT(carry_pc_ == SIZE_MAX);  // (the add that takes the carry was lowered)
    }
    // What lower_schedule lowers next (SIZE_MAX: something else, or not known); whether the main
    // loop lowers the step after the select it lowers now next (set for that select only); the
    // add that takes the carry flag in place of a setcc's 0 or 1 (SIZE_MAX: none).
    std::size_t next_lowered_ = SIZE_MAX;
    bool select_falls_ = false;
    std::size_t carry_pc_ = SIZE_MAX;
    bool carry_set_ = false;  // the value is CF (else 1 - CF)
    // Whether a setcc of `cc` into rX, where the step lowered next is `rY += rX` and rX is dead
    // after it, becomes that add's adc 0 (cc = below: rY + CF) or sbb -1 (above or equal:
    // rY + 1 - CF) instead: clang's `y += a < b`, one instruction fewer.
    bool adds_carry(std::size_t pc, bool falls, unsigned x, CondCode cc) {
        std::size_t q = next_lowered_;
        if (falls && steps_[pc].disp == 0) {
            // The main loop's next step, if control reaches it only from here and nothing is
            // lowered in between (no budget charge, window, or deferred step there).
            q = fall_target(pc);
            if (q >= p_.size() || p_.is_tail(q) || step_into(q) != pc || !inside_ok(q) || q >= next_event_) {
                return false;
            }
        }
        if (q == SIZE_MAX || (cc != CondCode::kB && cc != CondCode::kAE) || steps_[q].kind != Fused::Alone) {
            return false;
        }
        const vm::Instruction& add = p_[q];
        const vm::OpInfo& row = add.info();
        if (row.form != Form::AluReg || row.sem != Sem::Add || add.src != x || add.dst == x || facts_.live(q, x)) {
            return false;
        }
        carry_pc_ = q;
        carry_set_ = cc == CondCode::kB;
        return true;
    }
    void add_carry(std::size_t q) {
        const vm::Instruction& add = p_[q];
        const Gp& y = kRegsBy[add.info().width == 8][add.dst];
        if (carry_set_) {
            a_.adc(y, 0);
        } else {
            a_.sbb(y, -1);
        }
        carry_pc_ = SIZE_MAX;
    }

    // Fused::Select: `if (c) goto pc + 1 + k; <k instructions writing rX>` as rX = c ? rX : value,
    // in general with the value worked out in r11 first (before the compare sets the flags).
    // Shorter forms, where what rX holds before is known (known_before; or from the step before,
    // which control reaches the jump only from):
    //  - rX = 1 - v where rX is v (0 or 1): a setcc of rX's low byte;
    //  - rX |= imm where rX has none of imm's bits: a lea into r11;
    //  - rX = op(rY) after `rX = rY`: op on rX in place, and a cmov of rY back when c holds;
    //  - 64-bit rX = rY: a cmov of rY itself;
    //  - a right shift by k of the register compared with 2^k (`if rY < 2^k`, clang's test of
    //    `rY >> k`): the shift's own zero flag is the condition, with no compare.
    void select(std::size_t pc, const Step& step, bool go = true) {
        flags_valid_ = false;
        const bool falls = select_falls_;
        select_falls_ = false;
        const vm::Instruction& jump = p_[pc];
        const vm::OpInfo& jrow = jump.info();
        const vm::Instruction& first = p_[pc + 1];
        const vm::OpInfo& frow = first.info();
        const unsigned x = first.dst;
        const unsigned writes = step.span - 1 - static_cast<unsigned>(step.disp);  // 1 or 2
        const bool copy = frow.form == Form::AluReg;                                // rX = rY, ...
        const vm::Instruction* op = copy ? (writes == 2 ? &p_[pc + 2] : nullptr) : &first;
        BPFVM_ASSERT(op == nullptr || op->info().form == Form::AluImm);
        const vm::Instruction* before = step_before_select(pc);
        const bool w64 = frow.width == 8;
        const Gp& rx = kRegsBy[w64][x];
        // The condition c as the zero flag of `value >> k` (else kNoShiftFlag).
        const int shift_flag = op != nullptr ? shift_condition(jump, *op, copy ? first.src : x) : kNoShiftFlag;
        const bool reads_x = compares(jump, x);
        const Known known = !copy && (frow.sem == Sem::Mov || frow.sem == Sem::Or) ? known_before(x, pc) : Known{};
        if (!copy && frow.sem == Sem::Mov && known.constant && (known.value == 0 || known.value == 1) &&
            static_cast<uint64_t>(first.imm) == 1 - known.value) {
            // rX is 0 or 1 already: only its low byte changes, to c ? v : 1 - v.
            const Sem sem = known.value == 1 ? jrow.sem : inverse(jrow.sem);
            const CondCode cc = select_flags(jrow, jump, sem);
            if (!adds_carry(pc, falls, x, cc)) {
                a_.set(cc, kRegs[x].r8());
            }
        } else if (copy && before != nullptr && before->op == first.op && before->dst == x &&
                   before->src == first.src && !reads_x) {
            // rX = rY already: rX = op(rY) in place, then rY back where c holds.
            const Gp& ry = kRegsBy[w64][first.src];
            if (op != nullptr) {
                CondCode cc;
                reuse_ = false;  // (the shift or the op writes the flags first)
                if (shift_flag != kNoShiftFlag) {
                    a_.shr(rx, op->imm);
                    cc = flag_condition(shift_flag, true);
                    shift_flags(shift_flag);
                } else {
                    alu_imm(op->info().sem, rx, op->imm, w64, *op);
                    cc = select_flags(jrow, jump, jrow.sem);
                }
                a_.cmov(cc, rx, ry);
            }
        } else if (copy && w64 && op == nullptr) {
            // rX = rY unless c: a cmov of rY itself
            a_.cmov(select_flags(jrow, jump, inverse(jrow.sem)), kRegs[x], kRegs[first.src]);
        } else {
            auto op_on_r11 = [&](const vm::Instruction& i) {
                const vm::OpInfo& row = i.info();
                const bool op64 = row.width == 8;
                alu_imm(row.sem, op64 ? Gp(r11) : Gp(r11d), i.imm, op64, i);
            };
            if (copy) {
                if (w64) {
                    a_.mov(r11, kRegs[first.src]);
                } else {
                    a_.mov(r11d, kRegs[first.src].r32());
                }
            } else if (frow.sem == Sem::Or && (known.may & immediate(first)) == 0) {
                // rX | imm = rX + imm when they have no bit in common: one lea.
                a_.lea(w64 ? Gp(r11) : Gp(r11d), ptr(kRegs[x], first.imm));
                op = nullptr;
            } else if (frow.sem != Sem::Mov) {
                a_.mov(r11, kRegs[x]);
            }
            CondCode cc;
            if (shift_flag != kNoShiftFlag) {
                reuse_ = false;
                a_.shr(op->info().width == 8 ? Gp(r11) : Gp(r11d), op->imm);
                cc = flag_condition(shift_flag, false);
                shift_flags(shift_flag);
            } else {
                if (op != nullptr) {
                    reuse_ = false;
                    op_on_r11(*op);
                }
                cc = select_flags(jrow, jump, inverse(jrow.sem));
            }
            a_.cmov(cc, kRegs[x], r11);
        }
        if (step.disp == 1 && go) {
            go_to(pc, vm::branch_target(jump, pc), pc + step.span);
        }
    }
    // Whether `rX = 1` at pc (lowered in place) may leave rX zero instead: the way on from it
    // reaches, without leaving or being entered, a select that lowers to a setcc of rX's low byte
    // (rX = c ? 1 : 0, select's known 0-or-1 form), and nothing on the way reads or writes rX. A
    // setcc needs only the upper bits clear, and `xor rX, rX` is no work for the core (a zero
    // idiom, where a `mov` of 1 takes an ALU slot): clang's `x = c` where it writes `x = 1; if
    // (c) goto +1; x = 0`.
    [[gnu::noinline]] bool zeroed_for_setcc(std::size_t m) const {
        const vm::Instruction& mov = p_[m];
        const vm::OpInfo& mrow = mov.info();
        if (mrow.form != Form::AluImm || mrow.sem != Sem::Mov || blind_ || steps_[m].kind != Fused::Alone) {
            return false;
        }
        const unsigned x = mov.dst;
        const uint16_t bit = static_cast<uint16_t>(1u << x);
        std::size_t prev = m;
        for (std::size_t k = m + 1, steps = 0; k < p_.size() && steps < 8; ++k) {
            if (p_.is_tail(k) || steps_[k].kind == Fused::Covered) {
                continue;
            }
            if (step_into(k) != prev) {
                return false;  // entered another way
            }
            const Step& step = steps_[k];
            const vm::Instruction& jump = p_[k];
            if (step.kind == Fused::Select && p_[k + 1].dst == x) {
                const vm::Instruction& first = p_[k + 1];
                const vm::OpInfo& frow = first.info();
                if (frow.form != Form::AluImm || frow.sem != Sem::Mov || first.imm != 0 || compares(jump, x) ||
                    step.span - 1 - step.disp != 1) {
                    return false;
                }
                // (select() then finds rX known to be 1 from this move, and sets its low byte)
                const Known known = known_before(x, k);
                return known.constant && known.value == 1;
            }
            if (step.kind == Fused::Inverted || (step.kind == Fused::Select && step.disp != 0) ||
                (step.kind == Fused::Alone && step.compare != Step::kNoRegister) ||
                (step.kind == Fused::AddTo && step.base == x)) {
                return false;  // leaves another way (or writes rX)
            }
            for (std::size_t i = k; i < k + step.span; i += p_[i].slots()) {
                const vm::Instruction& insn = p_[i];
                const Form f = insn.info().form;
                // (native_writes counts calls, exits, atomics and packet loads as writing every
                // register; jumps other than a select's own leave)
                const bool jumps = f == Form::CondImm || f == Form::CondReg;
                if (insn.dst == x || insn.src == x || (native_writes(insn) & bit) != 0 ||
                    (jumps && !(step.kind == Fused::Select && i == k)) || f == Form::Jump || f == Form::Jump32) {
                    return false;
                }
            }
            prev = k;
            ++steps;
        }
        return false;
    }
    // What the lowering knows of a register's value (in its native register) before the step at
    // pc, from the steps control must have come through: its block, and on through the target of
    // a select that only that select jumps to (a select falls through either way). The bits that
    // may be one, and its value if that is known.
    struct Known {
        uint64_t may = ~uint64_t{0};
        bool constant = false;
        uint64_t value = 0;
    };
    static uint64_t immediate(const vm::Instruction& i) {
        return i.info().width == 8 ? static_cast<uint64_t>(int64_t{i.imm}) : static_cast<uint32_t>(i.imm);
    }
    // The start of the step control must leave to reach pc (SIZE_MAX if it may come another way).
    std::size_t step_into(std::size_t pc) const {
        if (pc == 0) {
            return SIZE_MAX;
        }
        std::size_t k = pc - 1;
        while (k > 0 && (p_.is_tail(k) || steps_[k].kind == Fused::Covered)) {
            --k;
        }
        const uint8_t b = facts_.boundary[pc];
        if (b == 0 || (b == Facts::kTarget && steps_[k].kind == Fused::Select && steps_[k].disp == 0 &&
                       k + steps_[k].span == pc)) {
            return k;
        }
        return SIZE_MAX;
    }
    // The native registers an instruction lowered by itself may change (more than the eBPF
    // semantics say where the lowering borrows one: a division's rax and rdx, a shift's rcx).
    static uint16_t native_writes(const vm::Instruction& i) {
        const vm::OpInfo& row = i.info();
        switch (row.form) {
            case Form::AluImm:
            case Form::AluReg: {
                const bool divide = row.sem == Sem::Div || row.sem == Sem::Mod || row.sem == Sem::Sdiv ||
                                    row.sem == Sem::Smod;
                const bool shift = row.form == Form::AluReg &&
                                   (row.sem == Sem::Lsh || row.sem == Sem::Rsh || row.sem == Sem::Arsh);
                return static_cast<uint16_t>((1u << i.dst) | (divide ? 0x9u : 0u) | (shift ? 0x10u : 0u));
            }
            case Form::AluUnary:
            case Form::Endian:
            case Form::LoadMem:
            case Form::LoadImm64:
                return static_cast<uint16_t>(1u << i.dst);
            case Form::StoreImm:
            case Form::StoreReg:
            case Form::Jump:
            case Form::Jump32:
            case Form::CondImm:
            case Form::CondReg:
                return 0;
            case Form::Atomic:
            case Form::LoadAbs:
            case Form::LoadInd:
            case Form::Call:
            case Form::Callx:
            case Form::CallLocal:
            case Form::CallBtf:
            case Form::Exit:
                break;
        }
        return 0x7ff;
    }
    // `x op= imm` on what is known of x.
    static Known apply(const Known& k, const vm::Instruction& i) {
        const vm::OpInfo& row = i.info();
        const uint64_t imm = immediate(i);
        const uint64_t width = row.width == 8 ? ~uint64_t{0} : 0xffffffffu;
        const auto shift = static_cast<unsigned>(i.imm) & (row.width == 8 ? 63 : 31);
        Known r;
        if (row.sem == Sem::Mov) {
            return Known{imm, true, imm};
        }
        if (row.sem == Sem::And) {
            r.may = k.may & imm;
            r.value = k.value & imm;
        } else if (row.sem == Sem::Or) {
            r.may = k.may | imm;
            r.value = k.value | imm;
        } else if (row.sem == Sem::Lsh) {
            r.may = k.may << shift;
            r.value = k.value << shift;
        } else if (row.sem == Sem::Rsh) {
            r.may = (k.may & width) >> shift;
            r.value = (k.value & width) >> shift;
        } else {
            return Known{};
        }
        r.constant = k.constant;
        r.may &= width;
        r.value &= width;
        return r;
    }
    Known known_before(unsigned x, std::size_t pc, unsigned depth = 0) const {
        const std::size_t s = depth < 8 ? step_into(pc) : SIZE_MAX;
        if (s == SIZE_MAX) {
            return Known{};
        }
        const Step& step = steps_[s];
        const vm::Instruction& i = p_[s];
        const uint16_t bit = static_cast<uint16_t>(1u << x);
        switch (step.kind) {
            case Fused::Alone:
                if ((native_writes(i) & bit) == 0) {
                    return known_before(x, s, depth + 1);
                }
                return i.info().form == Form::AluImm && i.dst == x && !blind_ ? apply(known_before(x, s, depth + 1), i)
                                                                              : Known{};
            case Fused::Select: {
                const vm::Instruction& first = p_[s + 1];
                if (first.dst != x) {
                    return known_before(x, s, depth + 1);
                }
                if (first.info().form != Form::AluImm || step.span - 1 - step.disp != 1) {
                    return Known{};
                }
                // Either what it was, or that changed by the select's instruction.
                const Known old = known_before(x, s, depth + 1);
                const Known alt = apply(old, first);
                return Known{old.may | alt.may, old.constant && alt.constant && old.value == alt.value, old.value};
            }
            case Fused::Address:
            case Fused::AddMove:
            case Fused::ZeroExtend:
            case Fused::AddTo:
            case Fused::Nothing:
            case Fused::Inverted:
            case Fused::Covered: {
                // Whatever the step's instructions name as written (a step without code leaves the
                // native register as it was, not as the eBPF says: unknown too).
                uint16_t writes = 0;
                for (std::size_t k = s; k < s + step.span; k += p_[k].slots()) {
                    writes = static_cast<uint16_t>(writes | native_writes(p_[k]));
                }
                if (step.kind == Fused::AddTo) {
                    writes = static_cast<uint16_t>(writes | (1u << step.base));
                }
                return (writes & bit) == 0 ? known_before(x, s, depth + 1) : Known{};
            }
        }
        return Known{};
    }
    // The instruction before a select's jump when control reaches the jump only from it and it
    // was lowered by itself (so that what it left in its destination is known), else null.
    const vm::Instruction* step_before_select(std::size_t pc) const {
        if (pc == 0 || facts_.boundary[pc] != 0 || p_.is_tail(pc - 1) || steps_[pc - 1].kind != Fused::Alone) {
            return nullptr;
        }
        return &p_[pc - 1];
    }
    // Whether a select's condition is the zero flag of `shr rY, k` for its `>>= k` (k >= 1, so
    // that the flags are written, at the compare's width): `if rY < 2^k` (or <= 2^k - 1) holds
    // when the shifted value is zero (kZeroWhenTaken), `if rY >= 2^k` (or > 2^k - 1) when it is
    // not (kNonZeroWhenTaken).
    static constexpr int kNoShiftFlag = 0;
    static constexpr int kZeroWhenTaken = 1;
    static constexpr int kNonZeroWhenTaken = 2;
    static int shift_condition(const vm::Instruction& jump, const vm::Instruction& op, unsigned shifted) {
        const vm::OpInfo& jrow = jump.info();
        const vm::OpInfo& orow = op.info();
        if (jrow.form != Form::CondImm || orow.sem != Sem::Rsh || jump.dst != shifted || jrow.width != orow.width) {
            return kNoShiftFlag;
        }
        const unsigned bits = orow.width == 8 ? 64 : 32;
        const auto k = static_cast<unsigned>(op.imm);
        if (op.imm < 1 || k >= bits) {
            return kNoShiftFlag;
        }
        const uint64_t v = immediate(jump);  // the compared value, as the compare sees the immediate
        const uint64_t limit = uint64_t{1} << k;
        if ((jrow.sem == Sem::Jlt && v == limit) || (jrow.sem == Sem::Jle && v == limit - 1)) {
            return kZeroWhenTaken;
        }
        if ((jrow.sem == Sem::Jge && v == limit) || (jrow.sem == Sem::Jgt && v == limit - 1)) {
            return kNonZeroWhenTaken;
        }
        return kNoShiftFlag;
    }
    // The cmov's condition for a shift flag: where the jump is taken, or where it is not.
    static CondCode flag_condition(int shift_flag, bool taken) {
        return (shift_flag == kZeroWhenTaken) == taken ? CondCode::kZ : CondCode::kNZ;
    }
    // r1..r5 keep their values across helper calls, as in the interpreter: those the program may
    // still read are saved (Facts::live_after), and r9 (the budget) in checked mode; rsp stays
    // 16-byte aligned for the C call.
    RegList saved_around(std::size_t pc) const {
        RegList regs;
        for (unsigned r = 1; r <= 5; ++r) {
            if (facts_.live(pc, r)) {
                regs.push_back(kRegs[r]);
            }
        }
        if (checked_) {
            regs.push_back(r9);
        }
        return regs;
    }
    void save_args(const RegList& regs) {
        for (const Gp& g : regs) {
            a_.push(g);
        }
        if (regs.size() % 2 != 0) {
            a_.sub(rsp, 8);
        }
    }
    void restore_args(const RegList& regs) {
        if (regs.size() % 2 != 0) {
            a_.add(rsp, 8);
        }
        for (auto it = regs.rbegin(); it != regs.rend(); ++it) {
            a_.pop(*it);
        }
    }

    // After a helper: a fault or a bpf_tail_call ends this run (the front end follows tail calls).
    // After a helper (or callx): a fault or a tail call, either, goes to helper_stop_.
    void check_after_helper() {
        if (!helper_stop_.isValid()) {
            helper_stop_ = a_.newLabel();
        }
        static_assert(offsetof(vm::CallContext, tail_call) == offsetof(vm::CallContext, fault) + 8);
        a_.mov(r11, field(offsetof(RunState, call_ctx)));
        a_.mov(r10, ptr(r11, offsetof(vm::CallContext, fault), 8));
        a_.or_(r10, ptr(r11, offsetof(vm::CallContext, tail_call), 8));
        a_.jnz(helper_stop_);
    }
    // r11 = the CallContext: a fault traps at the call's pc (trap_of names the helper), a tail
    // call ends this program's run.
    void helper_stop() {
        a_.bind(helper_stop_);
        a_.cmp(ptr(r11, offsetof(vm::CallContext, fault), 8), 0);
        a_.je(unwind_);
        a_.mov(r10d, ptr(r11, offsetof(vm::CallContext, pc), 4));
        a_.mov(field(offsetof(RunState, trap_kind), 4), trap_code(vm::TrapKind::HelperFault));
        a_.mov(field(offsetof(RunState, trap_pc), 4), r10d);
        a_.mov(field(offsetof(RunState, trap_address)), 0);
        a_.jmp(unwind_);
    }

    void call_helper(const vm::Instruction& insn, std::size_t pc) {
        const vm::Helper* h = helpers_.find(static_cast<uint32_t>(insn.imm));
        if (h == nullptr) {
            a_.jmp(trap(vm::TrapKind::UnknownHelper, static_cast<uint32_t>(pc), static_cast<uint32_t>(insn.imm)));
            return;
        }
        const RegList saved = saved_around(pc);
        save_args(saved);
        if (checked_) {
            a_.mov(field(offsetof(RunState, budget)), r9);  // callbacks spend it
        }
        a_.mov(r9, field(offsetof(RunState, call_ctx)));
        a_.mov(ptr(r9, offsetof(vm::CallContext, pc), 4), static_cast<uint32_t>(pc));
        a_.mov(r10d, field(offsetof(RunState, depth), 4));  // (callbacks nest below it)
        a_.mov(ptr(r9, offsetof(vm::CallContext, depth), 4), r10d);
        a_.mov(r10, reinterpret_cast<uint64_t>(h->fn));
        a_.call(r10);
        restore_args(saved);
        if (checked_) {
            a_.mov(r9, field(offsetof(RunState, budget)));
        }
        helper_calls_.emplace_back(static_cast<uint32_t>(pc), h->id);
        check_after_helper();
    }

    void callx(const vm::Instruction& insn, std::size_t pc) {
        // Through the front end, which finds the helper whose id the register holds.
        a_.mov(field(offsetof(RunState, args)), rdi);
        a_.mov(field(offsetof(RunState, args) + 8), rsi);
        a_.mov(field(offsetof(RunState, args) + 16), rdx);
        a_.mov(field(offsetof(RunState, args) + 24), rcx);
        a_.mov(field(offsetof(RunState, args) + 32), r8);
        const RegList saved = saved_around(pc);
        save_args(saved);
        if (checked_) {
            a_.mov(field(offsetof(RunState, budget)), r9);
        }
        a_.mov(rsi, kRegs[insn.dst]);
        a_.mov(rdi, kState);
        a_.mov(edx, static_cast<uint32_t>(pc));
        a_.mov(ecx, static_cast<uint32_t>(insn.dst));
        a_.mov(r10, reinterpret_cast<uint64_t>(&bpfvm_jit_callx));
        a_.call(r10);
        restore_args(saved);
        if (checked_) {
            a_.mov(r9, field(offsetof(RunState, budget)));
        }
        a_.cmp(field(offsetof(RunState, trap_kind), 4), 0);
        a_.jne(unwind_);
        check_after_helper();  // (the helper's id is in spill[1]: trap_of reads it there)
    }

    void call_local(const vm::Instruction& insn, std::size_t pc) {
        a_.cmp(field(offsetof(RunState, depth), 4), vm::kMaxCallFrames - 2);
        a_.ja(trap(vm::TrapKind::CallDepthExceeded, static_cast<uint32_t>(pc)));
        a_.call(call_labels_[static_cast<std::size_t>(vm::branch_target(insn, pc))]);  // see enter_frame
    }

    // LD_ABS / LD_IND, inline: r0 = the packet's bytes at the offset in network order, or the
    // program ends with r0 = 0 when they are not all inside the packet.
    void load_packet(const vm::OpInfo& row, const vm::Instruction& insn) {
        if (!uses_packet_) {
            uses_packet_ = true;
            packet_fail_ = a_.newLabel();
        }
        const auto size = static_cast<int32_t>(row.width);
        const bool indirect = row.form == Form::LoadInd;
        if (!blind_ && (indirect || insn.imm >= 0) &&
            a_.packet_load(indirect, kRegs[insn.src], insn.imm, row.width, eax, kState,
                           offsetof(RunState, packet_size), offsetof(RunState, packet), r10, r11, packet_fail_)) {
            return;  // (the same instructions as below, encoded in one go)
        }
        Mem m = ptr(r11, r10, 0, 0, row.width);
        if (row.form == Form::LoadAbs && blind_ && insn.imm >= 0) {
            // The offset, blinded, in r10 (then as LD_IND's): no chosen constant in the code.
            a_.mov(r10, blinded(insn.imm, true));
            a_.lea(r11, ptr(r10, size));
            a_.cmp(r11, field(offsetof(RunState, packet_size)));
            a_.ja(packet_fail_);
            a_.mov(r11, field(offsetof(RunState, packet)));
        } else if (row.form == Form::LoadAbs) {
            if (insn.imm < 0) {
                a_.jmp(packet_fail_);
                return;
            }
            a_.cmp(field(offsetof(RunState, packet_size)), static_cast<int64_t>(insn.imm) + size);
            a_.jb(packet_fail_);
            a_.mov(r11, field(offsetof(RunState, packet)));
            m = ptr(r11, insn.imm, row.width);
        } else {
            // offset = (int32)(src + imm), zero-extended: a negative one is 2^31 or more, past
            // the end of any packet (packet_size is at most vm::kPacketReach), so one unsigned
            // compare of its end checks both ways out.
            if (insn.imm == 0 || blind_) {
                a_.mov(r10d, kRegs[insn.src].r32());
                if (insn.imm != 0) {
                    a_.add(r10d, blinded(insn.imm, false));
                }
            } else {
                a_.lea(r10d, ptr(kRegs[insn.src], insn.imm));
            }
            a_.lea(r11, ptr(r10, size));
            a_.cmp(r11, field(offsetof(RunState, packet_size)));
            a_.ja(packet_fail_);
            a_.mov(r11, field(offsetof(RunState, packet)));
        }
        if (size == 1) {
            a_.movzx(eax, m);
        } else if (size == 2) {
            a_.movzx(eax, m);
            a_.rol(ax, 8);
        } else {
            a_.mov(eax, m);
            a_.bswap(eax);
        }
    }
};

thread_local Facts Lowering::thread_facts;
thread_local std::vector<Step> Lowering::thread_steps;
thread_local std::vector<uint32_t> Lowering::thread_label_ids;
thread_local std::vector<uint32_t> Lowering::thread_call_label_ids;
thread_local std::vector<uint32_t> Lowering::thread_schedule_order;
thread_local std::vector<uint8_t> Lowering::thread_back_gotos;

}  // namespace

Expected<Compiled> compile_x86_64(const vm::Program& program, const vm::HelperTable& helpers,
                                  const JitOptions& options) {
    // One CodeHolder per thread. Between compiles without a listing its assembler stays attached
    // and is rewound (FastAssembler::rewind): the buffer and the assembler's lists are kept. Else
    // (the first compile on a thread, a listing, or a compile that failed) the CodeHolder is
    // reset softly and a new assembler attached.
    thread_local CodeHolder code;
    thread_local std::optional<FastAssembler> kept;  // attached to `code`, no logger
    std::optional<FastAssembler> listing;            // with the logger, for this compile only
    // Room for the code from the start: else the first instruction goes through asmjit's encoder
    // to grow it, and a large program's code is copied as it grows. About 6 bytes an instruction
    // and a few hundred around them; more is grown as needed.
    const std::size_t room = 512 + 8 * program.size();
    StringLogger logger;
    if (options.keep_listing || !kept || !kept->rewind()) {
        kept.reset();
        code.reset(ResetPolicy::kSoft);
        Environment env(Arch::kX64);
        if (code.init(env) != kErrorOk) {
            return make_error("jit", "asmjit cannot target x86-64");
        }
        if (options.keep_listing) {
            code.setLogger(&logger);
            listing.emplace(&code);
        } else {
            kept.emplace(&code);
        }
    }
    struct Detach {
        CodeHolder& code;
        std::optional<FastAssembler>& listing;
        std::optional<FastAssembler>& kept;
        bool done = false;
        ~Detach() {
            listing.reset();
            code.resetLogger();
            if (!done) {
                kept.reset();  // (a compile that failed leaves no state behind)
            }
        }
    } detach{code, listing, kept};
    FastAssembler& a = listing ? *listing : *kept;
    if (code.reserveBuffer(&code.textSection()->buffer(), room) != kErrorOk) {
        return make_error("jit", "cannot reserve a code buffer");
    }
    BPFVM_ASSERT(a.bufferData() == code.textSection()->data() && a.offset() == 0);
    // Loop tops are aligned with multi-byte NOPs (a few instructions to fall through, not up to
    // 63 single-byte ones).
    a.addEncodingOptions(EncodingOptions::kOptimizedAlign);
    Lowering lowering(program, helpers, a, options);
    if (asmjit::Error e = lowering.run(); e != kErrorOk) {
        return make_error("jit", std::string("code generation failed: ") + DebugUtils::errorAsString(e));
    }
    if (asmjit::Error e = a.resolve_jumps(); e != kErrorOk) {
        return make_error("jit", std::string("jumps: ") + DebugUtils::errorAsString(e));
    }
    if (asmjit::Error e = code.flatten(); e != kErrorOk) {
        return make_error("jit", std::string("flatten: ") + DebugUtils::errorAsString(e));
    }
    if (asmjit::Error e = code.resolveUnresolvedLinks(); e != kErrorOk) {
        return make_error("jit", std::string("links: ") + DebugUtils::errorAsString(e));
    }
    if (asmjit::Error e = code.relocateToBase(0); e != kErrorOk) {
        return make_error("jit", std::string("relocation: ") + DebugUtils::errorAsString(e));
    }
    Compiled out;
    // The code is the text section as it is (the only one: nothing here makes asmjit add its
    // address table); else flattened into a buffer kept per thread.
    const Section* text = code.textSection();
    if (code.sectionCount() == 1 && text->offset() == 0 && text->bufferSize() == code.codeSize()) {
        out.code = std::span<const uint8_t>(text->data(), text->bufferSize());
    } else {
        thread_local std::vector<uint8_t> flat;
        flat.resize(code.codeSize());
        if (asmjit::Error e = code.copyFlattenedData(flat.data(), flat.size()); e != kErrorOk) {
            return make_error("jit", std::string("copy: ") + DebugUtils::errorAsString(e));
        }
        out.code = flat;
    }
    out.entry = 0;
    out.leaf = lowering.leaf();
    out.callback_entry = SIZE_MAX;
    if (!out.leaf) {
        if (lowering.runs_callbacks_) {
            out.callback_entry = static_cast<std::size_t>(a.label_offset(lowering.callback_entry_));
        }
        for (uint32_t f : program.functions()) {
            if (f != 0 || lowering.main_is_called()) {  // (else the first function has no call entry)
                out.functions.emplace_back(f,
                                           static_cast<std::size_t>(a.label_offset(lowering.call_labels()[f])));
            }
        }
    }
    if (options.keep_listing) {
        out.listing = logger.data();
    }
    out.helper_calls = std::move(lowering.helper_calls_);
    std::sort(out.helper_calls.begin(), out.helper_calls.end());  // (a rotated loop lowers a block twice)
    out.helper_calls.erase(std::unique(out.helper_calls.begin(), out.helper_calls.end()), out.helper_calls.end());
    detach.done = true;
    return out;
}

}  // namespace bpfvm::jit
