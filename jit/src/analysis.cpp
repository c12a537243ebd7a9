#include "analysis.hpp"

#include <algorithm>
#include <limits>

#include "bpfvm/vm/flow.hpp"

namespace bpfvm::jit {

namespace {

using vm::Form;
using vm::Op;
using vm::Sem;

constexpr uint16_t bit(unsigned r) {
    return static_cast<uint16_t>(r < 10 ? 1u << r : 0u);
}
constexpr uint16_t kR0 = 1;
constexpr uint16_t kArgs = 0x3e;   // r1..r5
constexpr uint16_t kR1toR9 = 0x3fe;

struct UseDef {
    uint16_t use = 0;
    uint16_t def = 0;
};

// The registers an instruction reads and writes, by bpfvm's rules (see analysis.hpp).
UseDef use_def(const vm::Instruction& insn, bool exit_returns_args) {
    const vm::OpInfo& row = insn.info();
    const uint16_t d = bit(insn.dst);
    const uint16_t s = bit(insn.src);
    switch (row.form) {
        case Form::AluImm:
            return {row.sem == Sem::Mov ? uint16_t{0} : d, d};
        case Form::AluReg:
            return {static_cast<uint16_t>(s | (row.sem == Sem::Mov || row.sem == Sem::Movsx ? 0 : d)), d};
        case Form::AluUnary:
        case Form::Endian:
            return {d, d};
        case Form::LoadMem:
            return {s, d};
        case Form::StoreImm:
            return {d, 0};
        case Form::StoreReg:
            return {static_cast<uint16_t>(d | s), 0};
        case Form::Atomic: {
            const bool fetch = row.sem == Sem::AtomicFetchAdd || row.sem == Sem::AtomicFetchOr ||
                               row.sem == Sem::AtomicFetchAnd || row.sem == Sem::AtomicFetchXor ||
                               row.sem == Sem::AtomicXchg;
            if (row.sem == Sem::AtomicCmpxchg) {
                return {static_cast<uint16_t>(d | s | kR0), kR0};
            }
            return {static_cast<uint16_t>(d | s), fetch ? s : uint16_t{0}};
        }
        case Form::LoadImm64:
            return {0, d};
        case Form::LoadAbs:
            return {0, kR0};
        case Form::LoadInd:
            return {s, kR0};
        case Form::Jump:
        case Form::Jump32:
        case Form::CallBtf:
            return {};
        case Form::CondImm:
            return {d, 0};
        case Form::CondReg:
            return {static_cast<uint16_t>(d | s), 0};
        case Form::Call:
            return {kArgs, kR0};  // r1-r5 keep their values
        case Form::Callx:
            return {static_cast<uint16_t>(kArgs | d), kR0};
        case Form::CallLocal:
            return {kR1toR9, static_cast<uint16_t>(kR0 | kArgs)};  // the callee sees r6-r9 too
        case Form::Exit:
            return {exit_returns_args ? static_cast<uint16_t>(kR0 | kArgs) : kR0, 0};
    }
    return {kR1toR9 | kR0, 0};
}

unsigned bits_of(uint64_t v) {
    return v == 0 ? 0 : 64 - static_cast<unsigned>(__builtin_clzll(v));
}

Width width_for_bits(unsigned bits) {
    return bits <= 8 ? Width::W8 : bits <= 16 ? Width::W16 : bits <= 32 ? Width::W32 : Width::W64;
}

unsigned bits_for(Width w) {
    return 8u << static_cast<unsigned>(w);
}

Width narrower(Width a, Width b) {
    return std::min(a, b);
}
Width wider(Width a, Width b) {
    return std::max(a, b);
}

class Widths {
public:
    explicit Widths(uint32_t packed) : packed_(packed) {}
    [[nodiscard]] Width get(unsigned r) const { return static_cast<Width>((packed_ >> (2 * r)) & 3); }
    void set(unsigned r, Width w) {
        packed_ = (packed_ & ~(3u << (2 * r))) | (static_cast<uint32_t>(w) << (2 * r));
    }
    [[nodiscard]] uint32_t packed() const { return packed_; }

private:
    uint32_t packed_;
};

constexpr uint32_t kAllWide = (1u << 22) - 1;  // every register W64

// The widths after `insn`, given those before.
uint32_t transfer(const vm::Instruction& insn, uint32_t before) {
    const vm::OpInfo& row = insn.info();
    Widths w(before);
    const bool w64 = row.width == 8;
    const unsigned d = insn.dst;
    const Width dw = w.get(d);
    auto clamp32 = [&](Width x) { return w64 ? x : narrower(x, Width::W32); };
    auto imm_width = [&](int32_t imm) {
        return w64 ? width_for_bits(bits_of(static_cast<uint64_t>(static_cast<int64_t>(imm))))
                   : width_for_bits(bits_of(static_cast<uint32_t>(imm)));
    };
    switch (row.form) {
        case Form::AluImm:
            if (row.sem == Sem::Mov) {
                w.set(d, imm_width(insn.imm));
            } else if (row.sem == Sem::And) {
                w.set(d, clamp32(narrower(dw, imm_width(insn.imm))));
            } else if (row.sem == Sem::Or || row.sem == Sem::Xor) {
                w.set(d, clamp32(wider(dw, imm_width(insn.imm))));
            } else if (row.sem == Sem::Rsh) {
                const unsigned k = static_cast<unsigned>(insn.imm) & (w64 ? 63 : 31);
                const unsigned left = bits_for(clamp32(dw));
                w.set(d, width_for_bits(left > k ? left - k : 0));
            } else {
                w.set(d, w64 ? Width::W64 : Width::W32);
            }
            break;
        case Form::AluReg: {
            const Width sw = w.get(insn.src);
            if (row.sem == Sem::Mov) {
                w.set(d, clamp32(sw));
            } else if (row.sem == Sem::And) {
                w.set(d, clamp32(narrower(dw, sw)));
            } else if (row.sem == Sem::Or || row.sem == Sem::Xor) {
                w.set(d, clamp32(wider(dw, sw)));
            } else {
                w.set(d, w64 ? Width::W64 : Width::W32);
            }
            break;
        }
        case Form::AluUnary:
            w.set(d, w64 ? Width::W64 : Width::W32);
            break;
        case Form::Endian:
            w.set(d, insn.imm == 16 ? Width::W16 : insn.imm == 32 ? Width::W32 : Width::W64);
            break;
        case Form::LoadMem:
            w.set(d, row.sem == Sem::Ldxs ? Width::W64 : width_for_bits(8 * row.width));
            break;
        case Form::LoadImm64:
            w.set(d, insn.op == Op::LddwImm ? width_for_bits(bits_of(insn.imm64)) : Width::W64);
            break;
        case Form::LoadAbs:
        case Form::LoadInd:
            w.set(0, width_for_bits(8 * row.width));
            break;
        case Form::Atomic:
            if (row.sem == Sem::AtomicCmpxchg) {
                w.set(0, w64 ? Width::W64 : Width::W32);
            } else if (row.sem == Sem::AtomicFetchAdd || row.sem == Sem::AtomicFetchOr ||
                       row.sem == Sem::AtomicFetchAnd || row.sem == Sem::AtomicFetchXor ||
                       row.sem == Sem::AtomicXchg) {
                w.set(insn.src, w64 ? Width::W64 : Width::W32);
            }
            break;
        case Form::Call:
        case Form::Callx:
            w.set(0, Width::W64);
            break;
        case Form::CallLocal:
            for (unsigned r = 0; r <= 5; ++r) {
                w.set(r, Width::W64);
            }
            break;
        case Form::StoreImm:
        case Form::StoreReg:
        case Form::Jump:
        case Form::Jump32:
        case Form::CondImm:
        case Form::CondReg:
        case Form::CallBtf:
        case Form::Exit:
            break;
    }
    return w.packed();
}

// The join of two width states: the wider of each register's.
uint32_t join(uint32_t a, uint32_t b) {
    Widths out(a);
    const Widths other(b);
    for (unsigned r = 0; r < vm::kNumRegisters; ++r) {
        out.set(r, wider(out.get(r), other.get(r)));
    }
    return out.packed();
}

}  // namespace

Facts analyse(const vm::Program& program) {
    const std::size_t n = program.size();
    Facts f;
    f.boundary.assign(n + 1, 0);
    const auto& fns = program.functions();
    for (uint32_t entry : fns) {
        f.boundary[entry] = 1;
    }
    for (std::size_t pc = 0; pc < n; pc += program[pc].slots()) {
        const vm::Instruction& insn = program[pc];
        if (vm::has_target(insn.info().form)) {
            const int64_t t = vm::branch_target(insn, pc);
            f.boundary[static_cast<std::size_t>(t)] = 1;
            if (t == 0 && insn.op == Op::CallLocal) {
                f.main_is_called = true;
            }
        }
        if (insn.op == Op::LddwCodeAddr && static_cast<int64_t>(pc) + 1 + insn.imm == 0) {
            f.main_is_called = true;  // a callback may start at pc 0
        }
    }

    // Liveness, backwards to a fixed point.
    std::vector<UseDef> ud(n);
    std::vector<vm::Successors> succ(n);
    const uint32_t main_end = fns.size() > 1 ? fns[1] : static_cast<uint32_t>(n);
    for (std::size_t pc = 0; pc < n; pc += program[pc].slots()) {
        const bool in_main = pc < main_end;
        ud[pc] = use_def(program[pc], !in_main || f.main_is_called);
        succ[pc] = vm::successors(program, pc);
    }
    std::vector<uint16_t> live_in(n + 1, 0);
    f.live_after.assign(n, 0);
    for (bool changed = true; changed;) {
        changed = false;
        for (std::size_t i = n; i-- > 0;) {
            if (program.is_tail(i)) {
                continue;
            }
            uint16_t out = 0;
            for (int64_t s : {succ[i].next, succ[i].target}) {
                if (s >= 0) {
                    out = static_cast<uint16_t>(out | live_in[static_cast<std::size_t>(s)]);
                }
            }
            const auto in = static_cast<uint16_t>(ud[i].use | (out & ~ud[i].def));
            if (out != f.live_after[i] || in != live_in[i]) {
                f.live_after[i] = out;
                live_in[i] = in;
                changed = true;
            }
        }
    }

    // Widths, forwards to a fixed point from "nothing known to be reached" (every register W8);
    // function entries know nothing.
    f.widths.assign(n, 0);
    for (uint32_t entry : fns) {
        f.widths[entry] = kAllWide;
    }
    for (bool changed = true; changed;) {
        changed = false;
        for (std::size_t pc = 0; pc < n; pc += program[pc].slots()) {
            const uint32_t out = transfer(program[pc], f.widths[pc]);
            for (int64_t s : {succ[pc].next, succ[pc].target}) {
                if (s < 0) {
                    continue;
                }
                uint32_t& in = f.widths[static_cast<std::size_t>(s)];
                const uint32_t joined = join(in, out);
                if (joined != in) {
                    in = joined;
                    changed = true;
                }
            }
        }
    }
    return f;
}

std::vector<Step> plan(const vm::Program& program, const Facts& facts, const PlanOptions& options) {
    const std::size_t n = program.size();
    std::vector<Step> steps(n);
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
    for (std::size_t pc = 0; pc < n; pc += program[pc].slots()) {
        if (steps[pc].kind == Fused::Covered) {
            continue;
        }
        const vm::Instruction& i0 = program[pc];
        const vm::Instruction* i1 = follower(pc);
        const vm::Instruction* i2 = i1 != nullptr && i1->slots() == 1 ? follower(pc + 1) : nullptr;
        const bool mov64 = i0.op == Op::Mov64Reg && i0.dst != i0.src;
        const bool mov32 = i0.op == Op::Mov32Reg && i0.dst != i0.src;
        // rX = rY; rX += rZ|imm; memory op on [rX + off]
        if (mov64 && i1 != nullptr && i2 != nullptr && i1->dst == i0.dst &&
            (i1->op == Op::Add64Reg || (i1->op == Op::Add64Imm && options.fold_immediates)) &&
            consumes(*i2, pc + 2, i0.dst)) {
            const bool reg = i1->op == Op::Add64Reg;
            const int64_t disp = int64_t{i2->off} + (reg ? 0 : int64_t{i1->imm});
            if (fits(disp)) {
                const auto index = static_cast<int8_t>(!reg ? -1 : i1->src == i0.dst ? i0.src : i1->src);
                cover(pc, {Fused::Address, 3, i0.src, index, static_cast<int32_t>(disp)});
                continue;
            }
        }
        // rX += rZ|imm; memory op on [rX + off]
        if (i1 != nullptr && ((i0.op == Op::Add64Reg && i0.src != i0.dst) ||
                              (i0.op == Op::Add64Imm && options.fold_immediates)) &&
            consumes(*i1, pc + 1, i0.dst)) {
            const bool reg = i0.op == Op::Add64Reg;
            const int64_t disp = int64_t{i1->off} + (reg ? 0 : int64_t{i0.imm});
            if (fits(disp)) {
                cover(pc, {Fused::Address, 2, i0.dst, static_cast<int8_t>(reg ? i0.src : -1),
                           static_cast<int32_t>(disp)});
                continue;
            }
        }
        // rX = rY; rX += rZ|imm (or -= imm)
        if ((mov64 || mov32) && i1 != nullptr && i1->dst == i0.dst) {
            const Op add_reg = mov64 ? Op::Add64Reg : Op::Add32Reg;
            const Op add_imm = mov64 ? Op::Add64Imm : Op::Add32Imm;
            const Op sub_imm = mov64 ? Op::Sub64Imm : Op::Sub32Imm;
            if (i1->op == add_reg) {
                cover(pc, {Fused::AddMove, 2, i0.src, static_cast<int8_t>(i1->src == i0.dst ? i0.src : i1->src), 0});
                continue;
            }
            if (options.fold_immediates && (i1->op == add_imm || (i1->op == sub_imm && i1->imm != INT32_MIN))) {
                cover(pc, {Fused::AddMove, 2, i0.src, -1, i1->op == add_imm ? i1->imm : -i1->imm});
                continue;
            }
        }
        // rX = rY; rX &= 0xff|0xffff, where rY may be wider (else the move alone does it)
        if ((i0.op == Op::Mov64Reg || i0.op == Op::Mov32Reg) && i1 != nullptr && i1->dst == i0.dst &&
            (i1->op == Op::And64Imm || i1->op == Op::And32Imm) && (i1->imm == 0xff || i1->imm == 0xffff) &&
            bits_for(facts.width(pc, i0.src)) > bits_of(static_cast<uint32_t>(i1->imm))) {
            cover(pc, {Fused::ZeroExtend, 2, i0.src, -1, i1->imm == 0xff ? 8 : 16});
            continue;
        }
        // An `and` with all the bits the value can have, a 32-bit self-move of a 32-bit value, a
        // no-op byte-order conversion.
        const Width w = facts.width(pc, i0.dst);
        const bool no_op_and = (i0.op == Op::And64Imm && (i0.imm == -1 || ((i0.imm == 0xff || i0.imm == 0xffff) &&
                                                                          bits_for(w) <= bits_of(static_cast<uint32_t>(i0.imm))))) ||
                               (i0.op == Op::And32Imm && bits_for(w) <= bits_of(static_cast<uint32_t>(i0.imm)) &&
                                (i0.imm == 0xff || i0.imm == 0xffff || i0.imm == -1));
        const bool no_op_move = i0.op == Op::Mov32Reg && i0.dst == i0.src && w <= Width::W32;
        const bool no_op_swap = i0.op == Op::Le64 || (i0.op == Op::Le32 && w <= Width::W32) ||
                                (i0.op == Op::Le16 && w <= Width::W16);
        if (no_op_and || no_op_move || no_op_swap) {
            steps[pc].kind = Fused::Nothing;
            continue;
        }
        // if (c) goto pc + 2; goto T
        const vm::Form form = i0.info().form;
        if ((form == Form::CondImm || form == Form::CondReg) && vm::branch_target(i0, pc) == static_cast<int64_t>(pc + 2) &&
            i1 != nullptr && (i1->info().form == Form::Jump || i1->info().form == Form::Jump32)) {
            cover(pc, {Fused::Inverted, 2, 0, -1, 0});
            continue;
        }
    }
    return steps;
}

}  // namespace bpfvm::jit
