#include "analysis.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <type_traits>

namespace bpfvm::jit {

namespace {

using vm::Form;
using vm::Op;
using vm::Sem;

constexpr uint16_t bit(unsigned r) {
    return static_cast<uint16_t>((1u << r) & 0x3ff);  // r10 is never tracked
}
constexpr uint16_t kR0 = 1;
constexpr uint16_t kArgs = 0x3e;  // r1..r5
constexpr uint16_t kR0toR9 = 0x3ff;

constexpr unsigned bits_of(uint64_t v) {
    return 64 - static_cast<unsigned>(__builtin_clzll(v | 1)) - (v == 0 ? 1 : 0);
}

constexpr Width width_for_bits(unsigned bits) {
    return static_cast<Width>((bits > 8 ? 1 : 0) + (bits > 16 ? 1 : 0) + (bits > 32 ? 1 : 0));
}

constexpr unsigned bits_for(Width w) {
    return 8u << static_cast<unsigned>(w);
}

// Widths are kept as a thermometer code, 3 bits per register (W8 = 000, W16 = 001, W32 = 011,
// W64 = 111): the narrower of two is their bitwise and, the wider their or, and the join of two
// states is the or of the packed words.
constexpr uint64_t code(Width w) {
    return (uint64_t{1} << static_cast<unsigned>(w)) - 1;
}
constexpr uint64_t kAllWide = (uint64_t{1} << (3 * vm::kNumRegisters)) - 1;  // every register W64
constexpr uint8_t kCode32 = static_cast<uint8_t>(code(Width::W32));

// What an instruction does to the widths: dst = ((dst & keep) | (src & take) | value) & mask &
// (src | src_or). Right shifts by a constant and local calls are the two `special` cases.
struct WidthOp {
    uint8_t dst = 0;
    uint8_t src = 0;
    uint8_t keep = 7;
    uint8_t take = 0;
    uint8_t value = 0;
    uint8_t mask = 7;
    uint8_t src_or = 7;
    uint8_t special = 0;  // kShiftRight (shift count in `value`) or kLocalCall
};
constexpr uint8_t kShiftRight = 1;
constexpr uint8_t kLocalCall = 2;

// Everything the analyses need of an opcode, decided at compile time for each row of the table,
// so that the passes look an instruction up instead of branching on its kind (the branches of a
// switch over a program's instructions are mispredicted most of the time).
struct OpShape {
    // Liveness: fixed registers, plus dst and src as flagged (bpfvm's rules, see analysis.hpp).
    uint16_t use = 0;
    uint16_t def = 0;
    bool use_dst = false;
    bool use_src = false;
    bool def_dst = false;
    bool def_src = false;
    bool exit = false;  // also reads r1-r5 where a caller may read them
    // Flow.
    bool falls = true;    // reaches the next instruction
    bool jumps = false;   // has a jump target (not a call)
    bool call = false;    // a local call (its target is a function)
    bool rel_imm = false;  // the target's offset is in imm (goto32, local calls), else in off
    bool not_leaf = false;  // a call of any kind, or a legacy packet load
    // The plan asks for widths only before these (see plan and CopySearch): kQueryAlways, or
    // kQueryMask for an `and` whose immediate is one of the masks the plan folds. The back end
    // asks before a register compare (kQueryLoaded) whose operand a load a few slots before
    // reads from memory at its width (x86_64's loads_into_compare; kLoadReach).
    enum : uint8_t { kQueryNever, kQueryAlways, kQueryMask, kQueryLoaded } query = kQueryNever;
    bool load = false;  // a load from memory (LDX)
    // Widths: the operation, its register (dst, src or r0) and where an immediate goes.
    WidthOp width;
    enum : uint8_t { kWidthOfDst, kWidthOfSrc, kWidthOfR0 } width_reg = kWidthOfDst;
    enum : uint8_t { kNoImm, kImmValue, kImmMask, kImmShift, kImm64 } imm = kNoImm;
    bool w64 = true;
};

constexpr OpShape shape_of(const vm::OpInfo& row) {
    OpShape s;
    const bool w64 = row.width == 8;
    s.w64 = w64;
    const auto mask = static_cast<uint8_t>(w64 ? 7 : kCode32);
    const auto set = [&s](Width w) {
        s.width.keep = 0;
        s.width.value = static_cast<uint8_t>(code(w));
    };
    const Width wide = w64 ? Width::W64 : Width::W32;
    s.call = row.op == Op::CallLocal;
    s.rel_imm = row.op == Op::Ja32 || row.op == Op::CallLocal;
    s.not_leaf = row.form == Form::Call || row.form == Form::Callx || row.form == Form::CallLocal ||
                 row.form == Form::CallBtf || row.form == Form::LoadAbs || row.form == Form::LoadInd;
    s.query = row.op == Op::And64Imm || row.op == Op::And32Imm               ? OpShape::kQueryMask
              : row.op == Op::Mov32Reg || row.op == Op::Le16 || row.op == Op::Le32 ? OpShape::kQueryAlways
              : row.form == Form::CondReg                                        ? OpShape::kQueryLoaded
                                                                                 : OpShape::kQueryNever;
    s.load = row.form == Form::LoadMem;
    const bool fetch = row.sem == Sem::AtomicFetchAdd || row.sem == Sem::AtomicFetchOr ||
                       row.sem == Sem::AtomicFetchAnd || row.sem == Sem::AtomicFetchXor || row.sem == Sem::AtomicXchg;
    switch (row.form) {
        case Form::AluImm:
            s.use_dst = row.sem != Sem::Mov;
            s.def_dst = true;
            if (row.sem == Sem::Mov) {
                s.width.keep = 0;
                s.imm = OpShape::kImmValue;
            } else if (row.sem == Sem::And) {
                s.width.mask = mask;
                s.imm = OpShape::kImmMask;
            } else if (row.sem == Sem::Or || row.sem == Sem::Xor) {
                s.width.mask = mask;
                s.imm = OpShape::kImmValue;
            } else if (row.sem == Sem::Rsh) {
                s.width.special = kShiftRight;
                s.width.mask = mask;
                s.imm = OpShape::kImmShift;
            } else {
                set(wide);
            }
            break;
        case Form::AluReg:
            s.use_src = true;
            s.use_dst = row.sem != Sem::Mov && row.sem != Sem::Movsx;
            s.def_dst = true;
            if (row.sem == Sem::Mov) {
                s.width.keep = 0;
                s.width.take = 7;
                s.width.mask = mask;
            } else if (row.sem == Sem::And) {
                s.width.mask = mask;
                s.width.src_or = 0;
            } else if (row.sem == Sem::Or || row.sem == Sem::Xor) {
                s.width.take = 7;
                s.width.mask = mask;
            } else {
                set(wide);
            }
            break;
        case Form::AluUnary:
            s.use_dst = s.def_dst = true;
            set(wide);
            break;
        case Form::Endian:
            s.use_dst = s.def_dst = true;
            set(row.width == 2 ? Width::W16 : row.width == 4 ? Width::W32 : Width::W64);
            break;
        case Form::LoadMem:
            s.use_src = s.def_dst = true;
            set(row.sem == Sem::Ldxs ? Width::W64 : width_for_bits(8u * row.width));
            break;
        case Form::StoreImm:
            s.use_dst = true;
            break;
        case Form::StoreReg:
            s.use_dst = s.use_src = true;
            break;
        case Form::Atomic:
            s.use_dst = s.use_src = true;
            if (row.sem == Sem::AtomicCmpxchg) {
                s.use = s.def = kR0;
                s.width_reg = OpShape::kWidthOfR0;
                set(wide);
            } else if (fetch) {
                s.def_src = true;
                s.width_reg = OpShape::kWidthOfSrc;
                set(wide);
            }
            break;
        case Form::LoadImm64:
            s.def_dst = true;
            s.width.keep = 0;
            if (row.op == Op::LddwImm) {
                s.imm = OpShape::kImm64;
            } else {
                s.width.value = 7;
            }
            break;
        case Form::LoadAbs:
        case Form::LoadInd:
            s.use_src = row.form == Form::LoadInd;
            s.def = kR0;
            s.width_reg = OpShape::kWidthOfR0;
            set(width_for_bits(8u * row.width));
            break;
        case Form::Jump:
        case Form::Jump32:
            s.falls = false;
            s.jumps = true;
            break;
        case Form::CondImm:
        case Form::CondReg:
            s.use_dst = true;
            s.use_src = row.form == Form::CondReg;
            s.jumps = true;
            break;
        case Form::Call:
        case Form::Callx:
            s.use = kArgs;  // r1-r5 keep their values
            s.use_dst = row.form == Form::Callx;
            s.def = kR0;
            s.width_reg = OpShape::kWidthOfR0;
            set(Width::W64);
            break;
        case Form::CallLocal:
            s.use = kR0toR9;  // the callee sees r0 and r6-r9 too (as the interpreter runs it)
            s.def = static_cast<uint16_t>(kR0 | kArgs);
            s.width.special = kLocalCall;
            break;
        case Form::CallBtf:
            s.falls = false;  // traps
            break;
        case Form::Exit:
            s.use = kR0;
            s.exit = true;
            s.falls = false;
            break;
    }
    return s;
}

// One row per opcode, and a last one (kTailShape) for the second slot of an lddw: it changes
// nothing and falls through, so that the passes need not branch around it.
constexpr std::size_t kTailShape = vm::kOpCount;
constexpr std::array<OpShape, vm::kOpCount + 1> kShapes = [] {
    std::array<OpShape, vm::kOpCount + 1> t{};
    for (std::size_t i = 0; i < vm::kOpCount; ++i) {
        t[i] = shape_of(vm::kOpTable[i]);
    }
    return t;
}();

// How far before a register compare (in slots) a load whose value it compares may lie, for the
// back end to ask for the other operand's width there: at least x86_64's loads_into_compare
// reach (the load, then at most 3 steps of up to 2 slots). Past the last query the widths are
// left unknown, which is sound: a shorter reach would only lose that fusion.
constexpr std::size_t kLoadReach = 8;

// The row of the slot at pc (the passes hold the program's instructions and tail flags as raw
// pointers, see analyse).
inline std::size_t row_index(const vm::Instruction* insns, const uint8_t* tails, std::size_t pc) {
    // (Without a branch: compilers make `tail ? kTailShape : op` one, mispredicted near lddws.)
    const auto op = static_cast<std::size_t>(insns[pc].op);
    return op ^ ((kTailShape ^ op) & (0 - static_cast<std::size_t>(tails[pc] != 0)));
}

// Per opcode, which patterns the plan tries where it starts a step (decide), kNone for most
// opcodes: nothing to decide and no copy search (CopySearch acts only on conditional jumps and
// register moves, which have a family).
enum class PlanFamily : uint8_t { kNone, kMove, kAdd, kAnd, kSwap, kCond };
constexpr std::array<PlanFamily, vm::kOpCount> kPlanFamily = [] {
    std::array<PlanFamily, vm::kOpCount> t{};
    for (std::size_t i = 0; i < vm::kOpCount; ++i) {
        const vm::OpInfo& row = vm::kOpTable[i];
        t[i] = row.form == Form::CondImm || row.form == Form::CondReg     ? PlanFamily::kCond
               : row.op == Op::Mov64Reg || row.op == Op::Mov32Reg         ? PlanFamily::kMove
               : row.op == Op::Add64Reg || row.op == Op::Add64Imm         ? PlanFamily::kAdd
               : row.op == Op::And64Imm || row.op == Op::And32Imm         ? PlanFamily::kAnd
               : row.op == Op::Le16 || row.op == Op::Le32 || row.op == Op::Le64 ? PlanFamily::kSwap
                                                                           : PlanFamily::kNone;
    }
    return t;
}();

struct UseDef {
    uint16_t use = 0;
    uint16_t def = 0;
};

// The first liveness round's view of an opcode, flattened from its OpShape into masks, so that a
// step is loads, ands and ors: the registers read and written are the fixed ones plus
// bit(dst) & *_dst and bit(src) & *_src.
struct LiveRow {
    uint16_t use;
    uint16_t def;
    uint16_t use_dst;  // 0x3ff or 0 (r10 is never tracked)
    uint16_t use_src;
    uint16_t def_dst;
    uint16_t def_src;
    uint16_t falls;      // 0xffff when control reaches the next instruction, else 0
    uint16_t exit_args;  // kArgs for an exit (a caller may read r1-r5), else 0
    uint32_t flow;       // the flow word's flags: falls (bit 20), exit (bit 21)
    uint32_t jump_mask;  // ~0 with a jump target (not a call), else 0
    uint32_t any_mask;   // ~0 with a jump or call target
    bool rel_imm;
    bool not_leaf;  // a call of any kind, or a legacy packet load (Facts::calls)
    uint8_t query_always;  // 1: the plan asks for widths before it (OpShape::kQueryAlways)
    uint8_t query_mask;    // 1: ... if its immediate is a mask the plan folds (kQueryMask)
    uint8_t query_loaded;  // 1: ... if a load lies at most kLoadReach slots before it (kQueryLoaded)
    uint8_t load;          // 1: a load from memory
    uint8_t plan_start;    // 1: its opcode has a kPlanFamily (not the tail of an lddw)
};

constexpr LiveRow live_row(const OpShape& s) {
    LiveRow r{};
    r.use = s.use;
    r.def = s.def;
    r.use_dst = s.use_dst ? 0x3ff : 0;
    r.use_src = s.use_src ? 0x3ff : 0;
    r.def_dst = s.def_dst ? 0x3ff : 0;
    r.def_src = s.def_src ? 0x3ff : 0;
    r.falls = s.falls ? 0xffff : 0;
    r.exit_args = s.exit ? kArgs : 0;
    r.flow = (uint32_t{s.falls} << 20) | (uint32_t{s.exit} << 21);
    r.jump_mask = s.jumps ? ~0u : 0;
    r.any_mask = s.jumps || s.call ? ~0u : 0;
    r.rel_imm = s.rel_imm;
    r.not_leaf = s.not_leaf;
    r.query_always = s.query == OpShape::kQueryAlways ? 1 : 0;
    r.query_mask = s.query == OpShape::kQueryMask ? 1 : 0;
    r.query_loaded = s.query == OpShape::kQueryLoaded ? 1 : 0;
    r.load = s.load ? 1 : 0;
    return r;
}

constexpr std::array<LiveRow, vm::kOpCount + 1> kLiveRows = [] {
    std::array<LiveRow, vm::kOpCount + 1> t{};
    for (std::size_t i = 0; i < t.size(); ++i) {
        t[i] = live_row(kShapes[i]);
        t[i].plan_start = i < vm::kOpCount && kPlanFamily[i] != PlanFamily::kNone ? 1 : 0;
    }
    return t;
}();

// The registers an instruction reads and writes (bpfvm's rules, see analysis.hpp); an exit also
// reads r1-r5 when `exit_returns_args` (a caller may read them).
inline UseDef use_def(const LiveRow& row, const vm::Instruction& insn, bool exit_returns_args) {
    const uint32_t d = 1u << insn.dst;
    const uint32_t r = 1u << insn.src;
    return {static_cast<uint16_t>(row.use | (d & row.use_dst) | (r & row.use_src) |
                                  (exit_returns_args ? row.exit_args : 0)),
            static_cast<uint16_t>(row.def | (d & row.def_dst) | (r & row.def_src))};
}

// What the widths pass needs of an opcode, flattened from its OpShape so that a step is a few
// loads and bit operations without branches (but for the two `special` cases): which register the
// operation sets (dst, src or r0, as `dst & sel_dst | src & sel_src`), and where the immediate's
// width code goes (the value, the mask, or nowhere).
struct WidthRow {
    uint8_t keep;
    uint8_t take;
    uint8_t value;     // used as is where the immediate gives nothing
    uint8_t mask;
    uint8_t src_or;
    uint8_t imm_value;  // 7: the immediate's code joins the value (kImmValue, kImm64), else 0
    uint8_t imm_mask;   // 0: the immediate's code narrows the mask (kImmMask), else 7
    uint8_t sel_dst;    // 0xf or 0
    uint8_t sel_src;
    uint8_t special;    // kShiftRight or kLocalCall, else 0
    bool imm64;         // the immediate is the lddw's 64 bits
    bool w64;           // a 32-bit immediate is sign-extended to 64 bits (else zero-extended)
    bool falls;         // control reaches the next instruction
    uint8_t unused[3];  // (16 bytes a row: indexed by a shift)
};
static_assert(sizeof(WidthRow) == 16);

// The width code of a value by its number of significant bits (64 - clz(v | 1), 1 to 64).
constexpr std::array<uint8_t, 65> kCodeByBits = [] {
    std::array<uint8_t, 65> t{};
    for (unsigned b = 0; b <= 64; ++b) {
        t[b] = static_cast<uint8_t>(code(width_for_bits(b)));
    }
    return t;
}();

constexpr WidthRow width_row(const OpShape& s) {
    WidthRow r{};
    r.keep = s.width.keep;
    r.take = s.width.take;
    r.mask = s.width.mask;
    r.src_or = s.width.src_or;
    r.special = s.width.special;
    const bool imm_value = s.imm == OpShape::kImmValue || s.imm == OpShape::kImm64;
    r.value = imm_value ? 0 : s.width.value;
    r.imm_value = imm_value ? 7 : 0;
    r.imm_mask = s.imm == OpShape::kImmMask ? 0 : 7;
    r.sel_dst = s.width_reg == OpShape::kWidthOfDst ? 0xf : 0;
    r.sel_src = s.width_reg == OpShape::kWidthOfSrc ? 0xf : 0;
    r.imm64 = s.imm == OpShape::kImm64;
    r.w64 = s.w64;
    r.falls = s.falls;
    return r;
}

constexpr std::array<WidthRow, vm::kOpCount + 1> kWidthRows = [] {
    std::array<WidthRow, vm::kOpCount + 1> t{};
    for (std::size_t i = 0; i < t.size(); ++i) {
        t[i] = width_row(kShapes[i]);
    }
    return t;
}();

// The widths after an instruction, from those before it (w: 3 bits per register, see code()).
inline uint64_t apply_widths(const WidthRow& row, const vm::Instruction& insn, uint64_t w) {
    // The immediate's width code, as a thermometer: W8 000, W16 001, W32 011, W64 111.
    // (Selected by masks and looked up: compilers turn the plain conditions into branches.)
    const uint64_t sext = static_cast<uint64_t>(int64_t{insn.imm}) & (row.w64 ? ~uint64_t{0} : 0xffffffffu);
    const uint64_t lddw = 0 - uint64_t{row.imm64};
    const uint64_t v = (insn.imm64() & lddw) | (sext & ~lddw);
    const uint64_t c = kCodeByBits[64 - static_cast<unsigned>(__builtin_clzll(v | 1))];
    const unsigned reg = (insn.dst & row.sel_dst) | (insn.src & row.sel_src);
    const unsigned at = 3 * reg;
    const uint64_t d = (w >> at) & 7;
    const uint64_t s = (w >> (3 * unsigned{insn.src})) & 7;
    const uint64_t mask = row.mask & (c | row.imm_mask);
    uint64_t r = ((d & row.keep) | (s & row.take) | row.value | (c & row.imm_value)) & mask & (s | row.src_or);
    if (row.special != 0) [[unlikely]] {
        if (row.special == kLocalCall) {
            return w | ((uint64_t{1} << 18) - 1);  // r0-r5
        }
        const auto count = static_cast<unsigned>(insn.imm) & (row.w64 ? 63 : 31);
        const uint64_t m = d & mask;
        const unsigned left = 8u << ((m & 1) + ((m >> 1) & 1) + ((m >> 2) & 1));
        r = code(width_for_bits(left > count ? left - count : 0));
    }
    return (w & ~(uint64_t{7} << at)) | (r << at);
}

}  // namespace

// Widths are one pass in program order, liveness one backwards (and a second when there are
// loops), taking nothing for known where an edge comes from an instruction not visited yet (a
// backward jump): every register is then live, or of any width. That is sound (the true facts
// are at most these), and it costs n steps instead of a fixed point's several passes. The first
// liveness round also decodes what the others need, so the program is read three times at most.
//
// The passes read each instruction's row in kShapes instead of switching on its kind, and an
// instruction without a jump target uses slot n, a dummy, as its target.
namespace {
// The passes' own vectors, kept per thread from one compile to the next (as the back end keeps its
// CodeHolder): a program's worth of memory is then neither allocated nor cold each time.
struct Scratch {
    std::vector<uint32_t> jump;  // the target of a jump at pc (not a call), or n
    // For liveness, per pc: the registers read (bits 0-9) and written (10-19), whether control
    // falls through (bit 20), and whether it is an exit (bit 21: a caller may read r1-r5 too).
    std::vector<uint32_t> flow;
};
thread_local Scratch scratch;
}  // namespace

void analyse(const vm::Program& program, Facts& f) {
    const std::size_t n = program.size();
    const auto none = static_cast<uint32_t>(n);
    constexpr uint16_t kAll = 0x3ff;
    f.main_is_called = program.first_function_is_named();  // a call, or a callback, may start at pc 0
    f.boundary.assign(n + 1, 0);
    f.loop_ends.clear();
    std::vector<uint32_t>& jump = scratch.jump;
    std::vector<uint32_t>& flow = scratch.flow;
    std::vector<uint16_t>& live_in = f.live_in;
    jump.resize(n + 1);  // (each slot below n is written by the first liveness round)
    jump[n] = none;
    flow.resize(n);
    live_in.assign(n + 1, 0);
    const auto& fns = program.functions();
    f.main_end = fns.size() > 1 ? fns[1] : n;
    const std::size_t main_end = f.main_end;
    f.function_writes.assign(fns.size(), 0);
    f.live_after.resize(n);  // (each written by the first liveness round)

    // The passes work on raw pointers held in locals: a store through a byte pointer may alias
    // anything, and would otherwise make the compiler reload every vector's data pointer after it.
    const vm::Instruction* const insns = program.instructions().data();
    const uint8_t* const tails = program.tails().data();
    uint8_t* const boundary = f.boundary.data();
    uint32_t* const jumps = jump.data();
    uint32_t* const flows = flow.data();
    uint16_t* const live_after = f.live_after.data();
    // A function's exit may be read by a caller (r1-r5 too) past the first function, or in it
    // when it is called.
    const std::size_t args_from = f.main_is_called ? 0 : main_end;

    // Liveness, backwards, in up to two rounds. The first takes every register as live into an
    // earlier successor (a loop header); the second, run when there are loops, takes what the
    // first found live there. Both are sound (each round's facts are at least the true ones when
    // its inputs are), and the second sees through loops whose body does not read a register
    // before writing it. The first round also decodes what the other passes need: jump targets,
    // boundaries, loop headers, the per-pc flow word, the registers each function writes.
    {
        uint16_t* const in = live_in.data();
        uint16_t next_in = 0;
        uint16_t writes = 0;                // of the function pc is in
        std::size_t function = fns.size();  // its index + 1
        std::size_t function_start = fns[function - 1];

        f.plan_starts.resize(n + 1);
        uint32_t* const starts = f.plan_starts.data();
        std::size_t plan_starts = 0;
        f.calls.resize(n + 1);
        uint32_t* const calls = f.calls.data();
        std::size_t n_calls = 0;
        std::size_t pc = n;
        while (pc-- > 0) {
            // Branch-free but for rare events (a loop's top, a function's start): the kinds of
            // neighbouring instructions follow no pattern a predictor could learn.
            const vm::Instruction& insn = insns[pc];
            const LiveRow& row = kLiveRows[row_index(insns, tails, pc)];
            const int64_t rel = row.rel_imm ? insn.imm : insn.off;
            const auto target = static_cast<uint32_t>(static_cast<int64_t>(pc) + 1 + rel);
            const uint32_t t = (target & row.any_mask) | (none & ~row.any_mask);
            const uint32_t jt = (target & row.jump_mask) | (none & ~row.jump_mask);
            jumps[pc] = jt;
            const bool back = jt <= pc;
            if (back && (boundary[t] & Facts::kLoop) == 0) [[unlikely]] {
                f.loop_ends.emplace_back(t, static_cast<uint32_t>(pc));  // (pc descends: the last one)
            }
            const uint8_t before = boundary[t];  // (a second jump or call there: kMulti)
            boundary[t] = static_cast<uint8_t>(before | Facts::kTarget | (back ? Facts::kLoop : 0) |
                                               ((before & Facts::kTarget) << 3));
            calls[n_calls] = static_cast<uint32_t>(pc);  // (kept when it is one)
            n_calls += row.not_leaf;
            starts[plan_starts] = static_cast<uint32_t>(pc);  // (kept when it is one)
            plan_starts += row.plan_start;

            const auto [use, def] = use_def(row, insn, false);  // (exits' r1-r5: exit_args below)
            flows[pc] = use | (uint32_t{def} << 10) | row.flow;
            // What the jump brings (slot n: nothing); everything when it goes back.
            const auto jumped = static_cast<uint16_t>(in[jt] | (kAll & (0u - uint32_t{back})));
            const auto out = static_cast<uint16_t>((next_in & row.falls) | jumped);
            const uint16_t exit_args = pc >= args_from ? row.exit_args : 0;
            live_after[pc] = out;
            next_in = static_cast<uint16_t>(use | exit_args | (out & ~def));
            in[pc] = next_in;
            writes = static_cast<uint16_t>(writes | def);
            if (pc == function_start) [[unlikely]] {
                f.function_writes[function - 1] = writes;
                writes = 0;
                --function;
                function_start = function > 0 ? fns[function - 1] : SIZE_MAX;
            }
        }
        f.calls_or_packet = n_calls != 0;
        f.plan_starts.resize(plan_starts);
        f.calls.resize(n_calls);
    }
    for (uint32_t entry : fns) {
        boundary[entry] |= Facts::kEntry;
    }
    boundary[n] = 0;

    // Which loop tops are in a cycle: from the top forwards, the pcs control may reach (up to the
    // furthest one a reached instruction falls or jumps to), until one jumps back (a cycle, or
    // taken as one when it jumps before the top) or the reachable pcs end (no way back: a backward
    // jump of the layout only). The scans take at most about 4n steps in all; loops past that are
    // taken as cycles.
    {
        std::size_t budget = 4 * n + 64;
        for (const auto& [top, end] : f.loop_ends) {
            bool cycle = true;
            std::size_t reach = top;
            for (std::size_t pc = top; budget > 0; ++pc, --budget) {
                if (pc > reach) {
                    cycle = false;
                    break;
                }
                const uint32_t jt = jumps[pc];
                if (jt <= pc) {
                    break;  // back: a cycle (or taken as one)
                }
                const std::size_t falls = pc + ((flows[pc] >> 20) & 1);
                const std::size_t to = jt != none ? jt : falls;
                reach = std::max({reach, falls, to});
            }
            boundary[top] = static_cast<uint8_t>(boundary[top] | (cycle ? Facts::kCycle : 0));
        }
    }

    // Widths, forwards: the state at pc is the join of what its earlier predecessors left. What
    // falls through is carried in `carry`; f.widths collects what jumps bring.
    f.widths.assign(n + 1, 0);
    uint64_t* const widths = f.widths.data();
    for (uint32_t entry : fns) {
        widths[entry] = kAllWide;
    }
    // The plan asks for widths only before the instructions that query them: up to the last one.
    std::size_t widths_end = n;
    while (widths_end > 0) {
        const std::size_t pc = widths_end - 1;
        const LiveRow& row = kLiveRows[row_index(insns, tails, pc)];
        const int32_t imm = insns[pc].imm;
        if ((row.query_always | (row.query_mask & unsigned{imm == 0xff || imm == 0xffff || imm == -1})) != 0) {
            break;
        }
        if (row.query_loaded != 0) [[unlikely]] {
            bool loaded = false;
            for (std::size_t k = pc; k-- > 0 && pc - k <= kLoadReach && !loaded;) {
                loaded = kLiveRows[row_index(insns, tails, k)].load != 0;
            }
            if (loaded) {
                break;
            }
        }
        --widths_end;
    }
    uint64_t carry = 0;
    for (std::size_t pc = 0; pc < widths_end; ++pc) {
        const WidthRow& row = kWidthRows[row_index(insns, tails, pc)];
        const uint64_t loop = (boundary[pc] & Facts::kLoop) != 0 ? kAllWide : 0;
        const uint64_t in = widths[pc] | carry | loop;
        widths[pc] = in;
        const uint64_t out = apply_widths(row, insns[pc], in);
        carry = out & (0 - uint64_t{row.falls});
        const uint32_t t = jumps[pc];
        widths[t > pc ? t : none] |= out;  // forward jumps only
    }
    std::fill(f.widths.begin() + static_cast<std::ptrdiff_t>(widths_end), f.widths.end(),
              kAllWide);  // (not asked for: unknown)
    f.widths.pop_back();

    if (!f.loop_ends.empty()) {  // any backward jump
        // In place, from the last backward jump down (round 1 goes down from the end, so the
        // first loop it recorded ends there): past it nothing depends on a loop's header, and
        // round 1's facts there are final. A jump back reads in[t], not yet rewritten: round 1's.
        const std::size_t start = f.loop_ends.front().second + std::size_t{1};
        uint16_t* const in = live_in.data();
        uint16_t next_in = in[start];
        std::size_t pc = start;
        while (pc-- > 0) {
            const uint32_t fl = flows[pc];
            const uint32_t t = jumps[pc];
            const uint16_t jumped = in[t];  // slot n: nothing
            const auto out = static_cast<uint16_t>((next_in & (0u - ((fl >> 20) & 1))) | jumped);
            const bool exit_args = (fl >> 21) != 0 && pc >= args_from;
            const auto use = static_cast<uint16_t>((fl & 0x3ff) | (exit_args ? kArgs : 0));
            const auto def = static_cast<uint16_t>((fl >> 10) & 0x3ff);
            live_after[pc] = out;
            next_in = static_cast<uint16_t>(use | (out & ~def));
            in[pc] = next_in;
        }
    }
}

namespace {

// Copies made only to be compared or to carry an increment (Step::compare, Fused::AddTo), found
// by walking back at most kWindow steps inside one block (no boundary between the copy and its
// use, the use included). The plan visits each pc (not a tail, not covered) once its own step is
// decided, in program order: a visit reads and changes only the steps before pc and pc's own.
struct CopySearch {
    static constexpr unsigned kWindow = 8;
    const vm::Program& program;
    const Facts& facts;
    std::vector<Step>& steps;

    // The registers the step starting at `at` (all its instructions) reads and writes.
    UseDef step_use_def(std::size_t at) const {
        UseDef all;
        if (steps[at].kind == Fused::Nothing) {
            return all;  // changes nothing
        }
        for (std::size_t k = at; k < at + steps[at].span; k += program[k].slots()) {
            const vm::Instruction& i = program[k];
            const UseDef u = use_def(kLiveRows[static_cast<std::size_t>(i.op)], i, k >= facts.main_end || facts.main_is_called);
            all.use = static_cast<uint16_t>(all.use | u.use);
            all.def = static_cast<uint16_t>(all.def | u.def);
            const Sem sem = i.info().sem;
            if (sem == Sem::Div || sem == Sem::Mod || sem == Sem::Sdiv || sem == Sem::Smod) {
                // x86's div uses r0's and r3's registers, kept only where the program reads
                // them afterwards: a copy this search lets live longer must not cross it.
                all.def = static_cast<uint16_t>(all.def | bit(0) | bit(3));
            }
        }
        return all;
    }

    // The start of the step before the one starting at `at` (SIZE_MAX if none, or if a boundary
    // lies in between: then control may arrive at `at` without passing it).
    std::size_t step_before(std::size_t at) const {
        if (at == 0 || facts.boundary[at] != 0) {
            return SIZE_MAX;
        }
        std::size_t j = at >= 2 && program.is_tail(at - 1) ? at - 2 : at - 1;
        while (steps[j].kind == Fused::Covered) {
            if (facts.boundary[j] != 0 || j == 0) {
                return SIZE_MAX;
            }
            j = j >= 2 && program.is_tail(j - 1) ? j - 2 : j - 1;
        }
        return j;
    }

    void visit(std::size_t pc) {
        const vm::Instruction& insn = program[pc];
        const vm::Form form = insn.info().form;
        Step& step = steps[pc];
        // `if (rX cmp ...)` where rX = rY was made for this compare only: compare rY.
        const bool compare = (form == Form::CondImm || form == Form::CondReg) &&
                             (step.kind == Fused::Alone || step.kind == Fused::Inverted) &&
                             (form == Form::CondImm || insn.src != insn.dst) && !facts.live(pc, insn.dst);
        // `rA = rB` where rB = rA + imm was made for this move only: rA += imm.
        const bool increment = (insn.op == Op::Mov64Reg || insn.op == Op::Mov32Reg) && insn.dst != insn.src &&
                               step.kind == Fused::Alone && !facts.live(pc, insn.src);
        if (!compare && !increment) {
            return;
        }
        const unsigned x = compare ? insn.dst : insn.src;  // the copy
        uint16_t written = 0;                              // by the steps walked past
        uint16_t read = 0;
        std::size_t j = pc;
        for (unsigned k = 0; k < kWindow; ++k) {
            j = step_before(j);
            if (j == SIZE_MAX) {
                break;
            }
            const vm::Instruction& d = program[j];
            if (compare && (d.op == Op::Mov64Reg || d.op == Op::Mov32Reg) && d.dst == x && d.src != x &&
                steps[j].kind == Fused::Alone) {
                const bool same_value =
                    d.op == Op::Mov64Reg || insn.info().width == 4 || facts.width(j, d.src) <= Width::W32;
                if (same_value && (written & bit(d.src)) == 0 && d.src != 10) {
                    steps[j].kind = Fused::Nothing;
                    step.compare = d.src;
                }
                break;
            }
            if (increment && steps[j].kind == Fused::AddMove && steps[j].index < 0 && d.dst == x &&
                steps[j].base == insn.dst && d.op == insn.op) {
                if (((written | read) & bit(x)) == 0 && (written & bit(insn.dst)) == 0) {
                    step.kind = Fused::AddTo;
                    step.base = insn.dst;
                    step.disp = steps[j].disp;
                    steps[j].kind = Fused::Nothing;  // (its second instruction stays Covered)
                }
                break;
            }
            if (kShapes[static_cast<std::size_t>(d.op)].jumps) {
                break;  // a branch in between may leave with the copy live
            }
            const UseDef u = step_use_def(j);
            if (((u.use | u.def) & bit(x)) != 0) {
                break;  // the copy is used or replaced in between
            }
            written = static_cast<uint16_t>(written | u.def);
            read = static_cast<uint16_t>(read | u.use);
        }
    }
};

}  // namespace

void plan(const vm::Program& program, const Facts& facts, const PlanOptions& options, std::vector<Step>& steps) {
    const std::size_t n = program.size();
    // Every step the default: one written, then copied in doubling runs (assign writes a 12-byte
    // Step at a time, about 5 instructions each).
    static_assert(std::is_trivially_copyable_v<Step>);
    steps.resize(n);
    if (n > 0) {
        steps[0] = Step{};
        for (std::size_t done = 1; done < n; done *= 2) {
            std::memcpy(&steps[done], &steps[0], std::min(done, n - done) * sizeof(Step));
        }
    }
    // The instruction after pc when control may only reach it from pc (null otherwise).
    auto follower = [&](std::size_t pc) -> const vm::Instruction* {
        const std::size_t next = pc + program[pc].slots();
        return next < n && facts.boundary[next] == 0 ? &program[next] : nullptr;
    };
    auto is_memory = [](const vm::Instruction& i) {
        const Form f = i.info().form;
        return f == Form::LoadMem || f == Form::StoreImm || f == Form::StoreReg;
    };
    auto base_of = [](const vm::Instruction& i) { return i.info().form == Form::LoadMem ? i.src : i.dst; };
    // The memory op at pc addresses through rX, and rX is not needed afterwards.
    auto consumes = [&](const vm::Instruction& m, std::size_t pc, unsigned x) {
        if (!is_memory(m) || base_of(m) != x) {
            return false;
        }
        if (m.info().form == Form::StoreReg && m.src == x) {
            return false;
        }
        return !facts.live(pc, x) || (m.info().form == Form::LoadMem && m.dst == x);
    };
    auto fits = [](int64_t v) {
        return v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max();
    };
    auto cover = [&](std::size_t pc, Step step) {
        steps[pc] = step;
        for (unsigned k = 1; k < step.span; ++k) {
            steps[pc + k].kind = Fused::Covered;
        }
    };
    // How the step at pc (not a tail, not covered, an opcode with a kPlanFamily) is lowered:
    // each family tries only its own patterns, in the order of precedence below.
    auto decide = [&](std::size_t pc, PlanFamily family) {
        const vm::Instruction& i0 = program[pc];
        const vm::Instruction* i1 = follower(pc);
        switch (family) {
            case PlanFamily::kNone:
                return;
            case PlanFamily::kMove: {
                const bool mov64 = i0.op == Op::Mov64Reg && i0.dst != i0.src;
                const bool mov32 = i0.op == Op::Mov32Reg && i0.dst != i0.src;
                if (i1 == nullptr || i1->dst != i0.dst) {
                    break;  // (every pattern of a move continues in its destination)
                }
                // rX = rY; rX += rZ|imm; memory op on [rX + off]
                const vm::Instruction* i2 = i1->slots() == 1 ? follower(pc + 1) : nullptr;
                if (mov64 && i2 != nullptr &&
                    (i1->op == Op::Add64Reg || (i1->op == Op::Add64Imm && options.fold_immediates)) &&
                    consumes(*i2, pc + 2, i0.dst)) {
                    const bool reg = i1->op == Op::Add64Reg;
                    const int64_t disp = int64_t{i2->off} + (reg ? 0 : int64_t{i1->imm});
                    if (fits(disp)) {
                        const auto index = static_cast<int8_t>(!reg ? -1 : i1->src == i0.dst ? i0.src : i1->src);
                        cover(pc, {Fused::Address, 3, i0.src, index, static_cast<int32_t>(disp)});
                        return;
                    }
                }
                // rX = rY; rX += rZ|imm (or -= imm)
                if (mov64 || mov32) {
                    const Op add_reg = mov64 ? Op::Add64Reg : Op::Add32Reg;
                    const Op add_imm = mov64 ? Op::Add64Imm : Op::Add32Imm;
                    const Op sub_imm = mov64 ? Op::Sub64Imm : Op::Sub32Imm;
                    if (i1->op == add_reg) {
                        cover(pc,
                              {Fused::AddMove, 2, i0.src, static_cast<int8_t>(i1->src == i0.dst ? i0.src : i1->src), 0});
                        return;
                    }
                    if (options.fold_immediates && (i1->op == add_imm || (i1->op == sub_imm && i1->imm != INT32_MIN))) {
                        cover(pc, {Fused::AddMove, 2, i0.src, -1, i1->op == add_imm ? i1->imm : -i1->imm});
                        return;
                    }
                }
                // rX = rY; rX &= 0xff|0xffff, where rY may be wider (else the move alone does it)
                if ((i1->op == Op::And64Imm || i1->op == Op::And32Imm) && (i1->imm == 0xff || i1->imm == 0xffff) &&
                    bits_for(facts.width(pc, i0.src)) > bits_of(static_cast<uint32_t>(i1->imm))) {
                    cover(pc, {Fused::ZeroExtend, 2, i0.src, -1, i1->imm == 0xff ? 8 : 16});
                    return;
                }
                break;
            }
            case PlanFamily::kAdd: {
                // rX += rZ|imm; memory op on [rX + off]
                if (i1 != nullptr && ((i0.op == Op::Add64Reg && i0.src != i0.dst) ||
                                      (i0.op == Op::Add64Imm && options.fold_immediates)) &&
                    consumes(*i1, pc + 1, i0.dst)) {
                    const bool reg = i0.op == Op::Add64Reg;
                    const int64_t disp = int64_t{i1->off} + (reg ? 0 : int64_t{i0.imm});
                    if (fits(disp)) {
                        cover(pc, {Fused::Address, 2, i0.dst, static_cast<int8_t>(reg ? i0.src : -1),
                                   static_cast<int32_t>(disp)});
                    }
                }
                return;
            }
            case PlanFamily::kAnd:
            case PlanFamily::kSwap:
                break;
            case PlanFamily::kCond: {
                // if (c) goto pc + 1 + k; rX = ...  (k = 1 or 2, nothing else landing in between)
                if (options.fold_immediates && i1 != nullptr) {
                    const vm::Instruction* i2 = i1->slots() == 1 ? follower(pc + 1) : nullptr;
                    auto simple = [](const vm::Instruction& i) {
                        const Sem s = i.info().sem;
                        return i.info().form == Form::AluImm &&
                               (s == Sem::Mov || s == Sem::Add || s == Sem::Sub || s == Sem::Or || s == Sem::And ||
                                s == Sem::Xor || s == Sem::Lsh || s == Sem::Rsh || s == Sem::Arsh);
                    };
                    const bool copy = (i1->op == Op::Mov64Reg || i1->op == Op::Mov32Reg) && i1->dst != i1->src;
                    const int64_t target = vm::branch_target(i0, pc);
                    // ... or `if (c) goto T; rX = ...; goto T` (disp = 1: the step ends with that goto)
                    auto to_target = [&](std::size_t at) {
                        const vm::Instruction* g = follower(at - 1);
                        return g != nullptr && (g->info().form == Form::Jump || g->info().form == Form::Jump32) &&
                               vm::branch_target(*g, at) == target;
                    };
                    const bool one = simple(*i1) || copy;
                    const bool two =
                        copy && i2 != nullptr && simple(*i2) && i2->info().sem != Sem::Mov && i2->dst == i1->dst;
                    if (one && target == static_cast<int64_t>(pc + 2)) {
                        cover(pc, {Fused::Select, 2, 0, -1, 0});
                        return;
                    }
                    if (two && target == static_cast<int64_t>(pc + 3)) {
                        cover(pc, {Fused::Select, 3, 0, -1, 0});
                        return;
                    }
                    if (one && !(two && to_target(pc + 3)) && to_target(pc + 2)) {
                        cover(pc, {Fused::Select, 3, 0, -1, 1});
                        return;
                    }
                    if (two && to_target(pc + 3)) {
                        cover(pc, {Fused::Select, 4, 0, -1, 1});
                        return;
                    }
                }
                // if (c) goto pc + 2; goto T
                if (vm::branch_target(i0, pc) == static_cast<int64_t>(pc + 2) && i1 != nullptr &&
                    (i1->info().form == Form::Jump || i1->info().form == Form::Jump32)) {
                    cover(pc, {Fused::Inverted, 2, 0, -1, 0});
                }
                return;
            }
        }
        // An `and` with all the bits the value can have, a 32-bit self-move of a 32-bit value, a
        // no-op byte-order conversion.
        const Width w = facts.width(pc, i0.dst);
        const bool no_op_and =
            (i0.op == Op::And64Imm && (i0.imm == -1 || ((i0.imm == 0xff || i0.imm == 0xffff) &&
                                                        bits_for(w) <= bits_of(static_cast<uint32_t>(i0.imm))))) ||
            (i0.op == Op::And32Imm && bits_for(w) <= bits_of(static_cast<uint32_t>(i0.imm)) &&
             (i0.imm == 0xff || i0.imm == 0xffff || i0.imm == -1));
        const bool no_op_move = i0.op == Op::Mov32Reg && i0.dst == i0.src && w <= Width::W32;
        const bool no_op_swap =
            i0.op == Op::Le64 || (i0.op == Op::Le32 && w <= Width::W32) || (i0.op == Op::Le16 && w <= Width::W16);
        if (no_op_and || no_op_move || no_op_swap) {
            steps[pc].kind = Fused::Nothing;
        }
    };
    CopySearch copies{program, facts, steps};
    const vm::Instruction* const insns = program.instructions().data();
    for (auto it = facts.plan_starts.rbegin(); it != facts.plan_starts.rend(); ++it) {
        const uint32_t pc = *it;  // ascending: the instructions with a family, not lddw tails
        if (steps[pc].kind == Fused::Covered) {
            continue;  // (fused into an earlier step)
        }
        decide(pc, kPlanFamily[static_cast<std::size_t>(insns[pc].op)]);
        copies.visit(pc);
    }
}

}  // namespace bpfvm::jit
