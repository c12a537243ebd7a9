#include "bpfvm/vm/flow.hpp"

#include <algorithm>
#include <array>
#include <utility>

namespace bpfvm::vm {

Successors successors(const Program& program, std::size_t pc) {
    const Instruction& insn = program[pc];
    const OpInfo& row = insn.info();
    const auto next = static_cast<int64_t>(pc + (row.form == Form::LoadImm64 ? 2 : 1));
    switch (row.form) {
        case Form::Jump:
        case Form::Jump32:
            return {-1, branch_target(insn, pc)};
        case Form::CondImm:
        case Form::CondReg:
            return {next, branch_target(insn, pc)};
        case Form::Exit:
        case Form::CallBtf:
            return {};
        case Form::AluImm:
        case Form::AluReg:
        case Form::AluUnary:
        case Form::Endian:
        case Form::LoadMem:
        case Form::StoreImm:
        case Form::StoreReg:
        case Form::Atomic:
        case Form::LoadImm64:
        case Form::LoadAbs:
        case Form::LoadInd:
        case Form::Call:
        case Form::CallLocal:
        case Form::Callx:
            return {next, -1};
    }
    return {};
}

ControlFlow::ControlFlow(const Program& program) : next_(program.size(), -1), target_(program.size(), -1) {
    for (std::size_t pc = 0; pc < program.size(); ++pc) {
        if (program.is_tail(pc)) {
            continue;
        }
        const Successors s = successors(program, pc);
        next_[pc] = static_cast<int32_t>(s.next);
        target_[pc] = static_cast<int32_t>(s.target);
    }
}

std::vector<uint32_t> budget_charges(const Program& program) {
    return budget_charges(program, ControlFlow(program));
}

std::vector<uint32_t> budget_charges(const Program& program, const ControlFlow& flow) {
    const std::size_t n = program.size();
    enum : uint8_t { kUnseen, kOnStack, kDone };
    std::vector<uint8_t> state(n, kUnseen);
    std::vector<uint8_t> charge_point(n, 0);
    std::vector<uint32_t> order;  // depth-first post-order
    order.reserve(n);
    // An explicit stack of (pc, successors still to visit: 2 = both, 1 = target, 0 = none).
    std::vector<std::pair<uint32_t, uint8_t>> stack;
    for (uint32_t entry : program.functions()) {
        charge_point[entry] = 1;
        if (state[entry] != kUnseen) {
            continue;
        }
        state[entry] = kOnStack;
        stack.emplace_back(entry, 2);
        while (!stack.empty()) {
            auto& [pc, left] = stack.back();
            if (left == 0) {
                state[pc] = kDone;
                order.push_back(pc);
                stack.pop_back();
                continue;
            }
            const int32_t v = left == 2 ? flow.next(pc) : flow.target(pc);
            --left;
            if (v < 0) {
                continue;
            }
            const auto u = static_cast<std::size_t>(v);
            if (state[u] == kOnStack) {
                charge_point[u] = 1;  // a back edge: u heads a loop
            } else if (state[u] == kUnseen) {
                state[u] = kOnStack;
                stack.emplace_back(static_cast<uint32_t>(u), 2);
            }
        }
    }
    // Longest paths, successors first: every edge that is not a back edge goes to an instruction
    // finished earlier, and back edges end at charge points, which end a path.
    std::vector<uint32_t> longest(n, 0);
    for (uint32_t pc : order) {
        uint32_t best = 0;
        for (int32_t v : {flow.next(pc), flow.target(pc)}) {
            if (v >= 0 && charge_point[static_cast<std::size_t>(v)] == 0) {
                best = std::max(best, longest[static_cast<std::size_t>(v)]);
            }
        }
        longest[pc] = best + 1;
    }
    std::vector<uint32_t> cost(n, 0);
    for (std::size_t pc = 0; pc < n; ++pc) {
        if (charge_point[pc] != 0 && state[pc] == kDone) {
            cost[pc] = longest[pc];
        }
    }
    return cost;
}

namespace {

// What frame_bytes_used needs of an opcode, in one byte: which of dst and src is the base of a
// memory access at `off` (bits 0 and 1), which is used as a value (bits 2 and 3: any use of r10
// as a value makes the whole frame addressable), and the access's width (bits 4-7). A step is
// then a few loads and bit operations.
constexpr uint8_t kBaseDst = 1, kBaseSrc = 2, kValueDst = 4, kValueSrc = 8;

constexpr uint8_t frame_row(const OpInfo& row) {
    uint8_t f = 0;
    switch (row.form) {
        case Form::LoadMem:  // dst = *(src + off)
            f = kBaseSrc | kValueDst;
            break;
        case Form::StoreImm:  // *(dst + off) = imm
            f = kBaseDst;
            break;
        case Form::StoreReg:  // *(dst + off) = src, and atomics alike
        case Form::Atomic:
            f = kBaseDst | kValueSrc;
            break;
        case Form::LoadImm64:  // (src is the kind of immediate; a tail repeats its lddw)
            f = kValueDst;
            break;
        case Form::LoadAbs:
        case Form::Jump:
        case Form::Jump32:
        case Form::Call:
        case Form::CallLocal:
        case Form::CallBtf:
        case Form::Exit:
            break;
        case Form::AluImm:  // ALU, compares, LD_IND, callx: any use of r10 is of its value
        case Form::AluReg:
        case Form::AluUnary:
        case Form::Endian:
        case Form::LoadInd:
        case Form::CondImm:
        case Form::CondReg:
        case Form::Callx:
            f = kValueDst | kValueSrc;
            break;
    }
    return static_cast<uint8_t>(f | (row.width << 4));
}

constexpr std::array<uint8_t, kOpCount> kFrameRows = [] {
    std::array<uint8_t, kOpCount> t{};
    for (std::size_t i = 0; i < kOpCount; ++i) {
        t[i] = frame_row(kOpTable[i]);
    }
    return t;
}();

}  // namespace

uint32_t frame_bytes_used(const Program& program) {
    // An access r10 + off: below r10 it reaches `off` deep; one reaching r10 or above may be in
    // a caller's frame (checked runs allow the frames entered), so every frame is in play.
    int32_t deepest = 0;
    uint32_t whole = 0;  // nonzero once the whole frame is in play
    for (const Instruction& insn : program.instructions()) {
        const uint32_t row = kFrameRows[static_cast<std::size_t>(insn.op)];
        const uint32_t fp = (insn.dst == kFramePointer ? kBaseDst | kValueDst : 0u) |
                            (insn.src == kFramePointer ? kBaseSrc | kValueSrc : 0u);
        const uint32_t hit = row & fp;
        const uint32_t base = (hit & (kBaseDst | kBaseSrc)) != 0 ? 1 : 0;
        const int32_t off = base != 0 ? insn.off : 0;
        deepest = off < deepest ? off : deepest;
        whole |= (hit & (kValueDst | kValueSrc)) | (base & (off + static_cast<int32_t>(row >> 4) > 0 ? 1u : 0u));
        if (whole != 0) {
            break;  // (programs that pass r10 on do so early: a map key's address, say)
        }
    }
    if (whole != 0) {
        return kStackFrameBytes;
    }
    const auto bytes = static_cast<uint32_t>(std::min<int32_t>(-deepest, static_cast<int32_t>(kStackFrameBytes)));
    return std::min<uint32_t>((bytes + 31) & ~uint32_t{31}, kStackFrameBytes);
}

bool may_run_callbacks(const Instruction& call, const HelperTable& helpers) {
    if (call.info().form == Form::Callx) {
        return true;  // (any helper)
    }
    const Helper* h = helpers.find(static_cast<uint32_t>(call.imm));
    return call.info().form == Form::Call && h != nullptr && h->takes_function();
}

bool may_run_callbacks(const Program& program, const HelperTable& helpers) {
    for (std::size_t pc = 0; pc < program.size(); ++pc) {
        const Form form = program[pc].info().form;
        if (!program.is_tail(pc) && (form == Form::Call || form == Form::Callx) &&
            may_run_callbacks(program[pc], helpers)) {
            return true;
        }
    }
    return false;
}

}  // namespace bpfvm::vm
