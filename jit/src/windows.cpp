#include "windows.hpp"

#include <algorithm>

#include "analysis.hpp"

namespace bpfvm::jit {

namespace {

using vm::Form;
using vm::Sem;

// Constants are kept small, so that every sum of them (an address's displacement, a 32-bit
// term's offset plus a stride) stays far inside int32_t.
constexpr int64_t kMaxConstant = int64_t{1} << 28;

// A register's value in terms of the values at the start of the iteration (R[reg]): the sum of
// up to two terms and a constant, where a term is R[reg] or zext32(R[reg] + dz) (z set, dz >= 0).
struct Term {
    uint8_t reg = 0;
    bool z = false;
    int32_t dz = 0;
};
struct Value {
    bool known = false;
    uint8_t terms = 0;
    Term t[2];
    int64_t d = 0;
};

Value unknown() {
    return Value{};
}

Value constant(int64_t c) {
    Value v;
    if (c >= -kMaxConstant && c <= kMaxConstant) {
        v.known = true;
        v.d = c;
    }
    return v;
}

Value plus(Value v, int64_t c) {
    if (!v.known || c < -kMaxConstant || c > kMaxConstant) {
        return unknown();
    }
    v.d += c;
    return v.d >= -kMaxConstant && v.d <= kMaxConstant ? v : unknown();
}

Value sum(const Value& a, const Value& b) {
    if (!a.known || !b.known || a.terms + b.terms > 2) {
        return unknown();
    }
    Value v = plus(a, b.d);
    for (unsigned i = 0; i < b.terms && v.known; ++i) {
        v.t[v.terms++] = b.t[i];
    }
    return v;
}

// zext32(v + c): a constant, or one term whose 32-bit sum stays a zero-extended R[reg] + dz.
Value zext32_plus(const Value& v, int64_t c) {
    if (!v.known) {
        return unknown();
    }
    if (v.terms == 0) {
        return constant(static_cast<uint32_t>(static_cast<uint64_t>(v.d + c)));
    }
    if (v.terms != 1) {
        return unknown();
    }
    const int64_t dz = v.t[0].dz + v.d + c;  // (a term without z has dz = 0)
    if (dz < 0 || dz > kMaxConstant) {
        return unknown();
    }
    Value r;
    r.known = true;
    r.terms = 1;
    r.t[0] = Term{v.t[0].reg, true, static_cast<int32_t>(dz)};
    return r;
}

// What one instruction of the body does to the symbolic registers (its accesses are read by the
// caller first). False: the loop cannot be a window.
bool step(const vm::Instruction& insn, Value (&regs)[vm::kNumRegisters]) {
    const vm::OpInfo& row = insn.info();
    const bool w64 = row.width == 8;
    Value& d = regs[insn.dst];
    switch (row.form) {
        case Form::AluImm:
            if (row.sem == Sem::Mov) {
                d = w64 ? constant(insn.imm) : constant(static_cast<uint32_t>(insn.imm));
            } else if (row.sem == Sem::Add || row.sem == Sem::Sub) {
                const int64_t c = row.sem == Sem::Add ? int64_t{insn.imm} : -int64_t{insn.imm};
                d = w64 ? plus(d, c) : zext32_plus(d, c);
            } else {
                d = unknown();
            }
            return true;
        case Form::AluReg:
            if (row.sem == Sem::Mov) {
                d = w64 ? regs[insn.src] : zext32_plus(regs[insn.src], 0);
            } else if (row.sem == Sem::Add && w64) {
                d = sum(d, regs[insn.src]);
            } else {
                d = unknown();
            }
            return true;
        case Form::AluUnary:
        case Form::Endian:
        case Form::LoadMem:
            d = unknown();
            return true;
        case Form::LoadImm64:
            d = insn.op == vm::Op::LddwImm ? constant(static_cast<int64_t>(insn.imm64())) : unknown();
            return true;
        case Form::StoreImm:
        case Form::StoreReg:
        case Form::CondImm:
        case Form::CondReg:
            return true;
        case Form::Atomic:
        case Form::LoadAbs:
        case Form::LoadInd:
        case Form::Jump:
        case Form::Jump32:
        case Form::Call:
        case Form::CallLocal:
        case Form::CallBtf:
        case Form::Callx:
        case Form::Exit:
            return false;  // atomics, packet loads, calls, exits, and gotos before the back edge
    }
    return false;
}

// A register's value at the back edge says how it moves per iteration.
struct Motion {
    bool regular = false;  // R[reg] in iteration k is R[reg] at entry + k * stride
    bool z = false;        // ... only while the 32-bit sum does not wrap (a guard)
    int64_t stride = 0;
};

Motion motion(unsigned reg, const Value& v) {
    Motion m;
    if (!v.known || v.terms != 1 || v.t[0].reg != reg) {
        return m;
    }
    if (!v.t[0].z) {
        m.regular = true;
        m.stride = v.d;
    } else if (v.d == 0) {
        m.regular = true;
        m.z = true;
        m.stride = v.t[0].dz;
    }
    return m;
}

// An access found in the body: its pc and kind, and its address's value.
struct Found {
    uint32_t pc;
    uint8_t width;
    bool write;
    Value at;
};

bool in_frame(const Value& at, unsigned width) {
    return at.terms == 1 && at.t[0].reg == 10 && !at.t[0].z && at.d >= -static_cast<int64_t>(vm::kStackFrameBytes) &&
           at.d <= -static_cast<int64_t>(width);
}

// The longest path a window follows: longer loops gain little from it.
constexpr std::size_t kMaxPath = 128;

bool is_jump(Form f) {
    return f == Form::CondImm || f == Form::CondReg || f == Form::Jump || f == Form::Jump32;
}

// The path from `header` back to it, in `path` (and whether each goes on by a jump in `by_jump`),
// if there is one that nothing else enters.
bool walk(const vm::Program& program, const std::vector<uint32_t>& costs, const std::vector<uint8_t>& boundary,
          const std::vector<uint8_t>& jumps_in, std::vector<uint32_t>& mark, uint32_t header,
          std::vector<uint32_t>& path, std::vector<uint8_t>& by_jump) {
    path.clear();
    by_jump.clear();
    const std::size_t n = program.size();
    std::size_t pc = header;
    while (true) {
        if (path.size() == kMaxPath || mark[pc] == header + 1) {
            return false;
        }
        if (pc != header && ((boundary[pc] & Facts::kEntry) != 0 || costs[pc] != 0)) {
            return false;  // a function's entry, or a second charge point (an inner loop)
        }
        mark[pc] = header + 1;
        path.push_back(static_cast<uint32_t>(pc));
        const vm::Instruction& insn = program[pc];
        const Form form = insn.info().form;
        std::size_t next = pc + insn.slots();
        bool jump = false;
        if (form == Form::Jump || form == Form::Jump32) {
            next = static_cast<std::size_t>(vm::branch_target(insn, pc));
            jump = true;
        } else if (form == Form::CondImm || form == Form::CondReg) {
            const auto target = static_cast<std::size_t>(vm::branch_target(insn, pc));
            // The way that stays: the header, else a backward jump, else falling through.
            if (target == header || (next != header && target <= pc)) {
                next = target;
                jump = true;
            }
        }
        by_jump.push_back(jump ? 1 : 0);
        if (next == header) {
            break;
        }
        if (next >= n) {
            return false;
        }
        pc = next;
    }
    // Nothing enters the path but the path itself (the header excepted): each instruction on it
    // is jumped to only as often as the path jumps there, and what falls into it is on the path
    // and goes on that way.
    for (std::size_t i = 1; i < path.size(); ++i) {
        const uint32_t p = path[i];
        const unsigned expected = by_jump[i - 1];
        if (jumps_in[p] != expected) {
            return false;
        }
        if (p == 0) {
            continue;
        }
        const std::size_t before = p >= 2 && program.is_tail(p - 1) ? p - 2 : p - 1;
        const Form f = program[before].info().form;
        const bool falls = f != Form::Jump && f != Form::Jump32 && f != Form::Exit;
        if (falls && !(path[i - 1] == before && by_jump[i - 1] == 0)) {
            return false;
        }
    }
    return true;
}

// The loop along `path` as a window, if its accesses move regularly.
bool build(const vm::Program& program, uint32_t header, uint32_t cost, const std::vector<uint32_t>& path,
           Window& out, std::vector<Found>& found) {
    Value regs[vm::kNumRegisters];
    for (unsigned r = 0; r < vm::kNumRegisters; ++r) {
        regs[r].known = true;
        regs[r].terms = 1;
        regs[r].t[0].reg = static_cast<uint8_t>(r);
    }
    found.clear();
    for (const uint32_t pc : path) {
        const vm::Instruction& insn = program[pc];
        const Form form = insn.info().form;
        if (is_jump(form)) {
            continue;  // (changes no register)
        }
        if (form == Form::LoadMem || form == Form::StoreImm || form == Form::StoreReg) {
            const bool write = form != Form::LoadMem;
            const Value at = plus(regs[write ? insn.dst : insn.src], insn.off);
            const auto width = static_cast<uint8_t>(insn.info().width);
            if (!at.known || at.terms == 0) {
                return false;
            }
            if (!in_frame(at, width)) {
                found.push_back(Found{pc, width, write, at});
            }
        }
        if (!step(insn, regs)) {
            return false;
        }
    }
    if (found.empty()) {
        return false;  // nothing to hoist
    }
    Motion moves[vm::kNumRegisters];
    for (unsigned r = 0; r < vm::kNumRegisters; ++r) {
        moves[r] = motion(r, regs[r]);
    }
    // Registers that reach an address through a 32-bit operation, and how far above their value.
    int64_t max_dz[vm::kNumRegisters];
    std::fill(std::begin(max_dz), std::end(max_dz), -1);
    bool used[vm::kNumRegisters] = {};
    out = Window{};
    out.header = header;
    out.path = path;
    out.cost = cost;
    // A term of an address (or of a derived register's value): its register must move regularly.
    auto use_term = [&](const Term& t) {
        const Motion& m = moves[t.reg];
        if (!m.regular || (t.z && m.stride < 0)) {
            return false;
        }
        if (t.z) {
            max_dz[t.reg] = std::max<int64_t>(max_dz[t.reg], t.dz);
        }
        used[t.reg] = true;
        return true;
    };
    // A register whose value at the back edge is a sum of registers that move regularly moves
    // regularly from the second iteration on; from the first too when, at entry, it already holds
    // that sum less one step (checked at run time: WindowEntry). Clang's rotated loops keep the
    // index so: `i` is set from the counter before the counter is incremented.
    uint8_t derived[vm::kNumRegisters] = {};  // 1: derived, 2: cannot be
    auto use_register = [&](unsigned r) {
        if (moves[r].regular) {
            return true;
        }
        if (derived[r] == 0) {
            derived[r] = 2;
            const Value& v = regs[r];
            bool ok = v.known && v.terms > 0;
            int64_t stride = 0;
            int64_t disp = v.d;
            for (unsigned i = 0; ok && i < v.terms; ++i) {
                ok = moves[v.t[i].reg].regular && use_term(v.t[i]);
                stride += moves[v.t[i].reg].stride;
                disp += v.t[i].dz;
            }
            if (ok) {
                WindowEntry e;
                e.reg = static_cast<uint8_t>(r);
                e.terms = v.terms;
                for (unsigned i = 0; i < v.terms; ++i) {
                    e.regs[i] = v.t[i].reg;
                }
                e.disp = static_cast<int32_t>(disp - stride);
                out.entries.push_back(e);
                derived[r] = 1;
                moves[r].regular = true;
                moves[r].stride = stride;
            }
        }
        return derived[r] == 1;
    };
    for (const Found& f : found) {
        WindowAccess a;
        a.pc = f.pc;
        a.width = f.width;
        a.write = f.write;
        a.terms = f.at.terms;
        int64_t disp = f.at.d;
        for (unsigned i = 0; i < f.at.terms; ++i) {
            const Term& t = f.at.t[i];
            if (!use_register(t.reg) || !use_term(t)) {
                return false;  // the address depends on a value that does not move regularly
            }
            a.regs[i] = t.reg;
            disp += t.dz;
            a.stride += moves[t.reg].stride;
        }
        a.disp = static_cast<int32_t>(disp);
        out.accesses.push_back(a);
    }
    // A register that moves by a 32-bit add wraps at 2^32, and a 32-bit operation on one is its
    // value only below 2^32: guarded where an address or a derived value uses it so.
    for (unsigned r = 0; r < vm::kNumRegisters; ++r) {
        if (!used[r] || (max_dz[r] < 0 && !moves[r].z)) {
            continue;
        }
        if (moves[r].stride < 0) {
            return false;
        }
        WindowGuard g;
        g.reg = static_cast<uint8_t>(r);
        g.max_dz = static_cast<uint32_t>(std::max<int64_t>({max_dz[r], moves[r].z ? moves[r].stride : 0, 0}));
        g.stride = moves[r].stride;
        out.guards.push_back(g);
    }
    return true;
}

}  // namespace

std::vector<Window> find_windows(const vm::Program& program, const std::vector<uint32_t>& costs,
                                 const std::vector<uint8_t>& boundary) {
    std::vector<Window> windows;
    const std::size_t n = program.size();
    std::vector<uint8_t> jumps_in(n, 0);  // jumps landing on each pc (saturating at 255)
    bool any_back = false;
    for (std::size_t pc = 0; pc < n; ++pc) {
        if (program.is_tail(pc) || !is_jump(program[pc].info().form)) {
            continue;
        }
        const auto target = static_cast<std::size_t>(vm::branch_target(program[pc], pc));
        jumps_in[target] = static_cast<uint8_t>(jumps_in[target] + (jumps_in[target] != 255 ? 1 : 0));
        any_back = any_back || target <= pc;
    }
    if (!any_back) {
        return windows;  // no loops
    }
    std::vector<uint32_t> mark(n, 0);  // header + 1 of the walk that last reached each pc
    std::vector<uint32_t> path;
    std::vector<uint8_t> by_jump;
    std::vector<Found> found;
    std::vector<uint8_t> taken(n, 0);  // on an accepted window's path
    for (std::size_t h = 0; h < n; ++h) {
        if (costs[h] == 0 || costs[h] >= (uint32_t{1} << 31) || taken[h] != 0) {
            continue;
        }
        const auto header = static_cast<uint32_t>(h);
        Window w;
        if (!walk(program, costs, boundary, jumps_in, mark, header, path, by_jump) ||
            !build(program, header, costs[h], path, w, found)) {
            continue;
        }
        if (std::any_of(path.begin(), path.end(), [&](uint32_t p) { return taken[p] != 0; })) {
            continue;
        }
        for (const uint32_t p : path) {
            taken[p] = 1;
        }
        windows.push_back(std::move(w));
    }
    return windows;
}

}  // namespace bpfvm::jit
