#include "bpfvm/vm/interpreter.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>

#include "bpfvm/vm/flow.hpp"
#include "bpfvm/vm/semantics.hpp"
#include "bpfvm/vm/stack.hpp"
#include "strings.hpp"

namespace bpfvm::vm {

namespace {

using Slot = Interpreter::Slot;

constexpr std::size_t kChargeHandler = kOpCount;  // index of the charge point's handler

struct Frame {
    const Slot* ret;
    uint64_t saved[5];  // r6..r10
};

template <typename T>
inline T load(uintptr_t addr) {
    T v;
    std::memcpy(&v, reinterpret_cast<const void*>(addr), sizeof v);
    return v;
}

template <typename T>
inline void store(uintptr_t addr, T v) {
    std::memcpy(reinterpret_cast<void*>(addr), &v, sizeof v);
}

// Where a checked access lands; null region = no region holds it.
inline const Region* find_region(const Region& stack, std::span<const Region> regions, uintptr_t addr,
                                 std::size_t len) {
    if (stack.contains(addr, len)) {
        return &stack;
    }
    for (const Region& r : regions) {
        if (r.contains(addr, len)) {
            return &r;
        }
    }
    return nullptr;
}

bool packet_read(std::span<const uint8_t> packet, int64_t offset, unsigned size, uint64_t& out) {
    if (offset < 0 || static_cast<uint64_t>(offset) + size > std::min<uint64_t>(packet.size(), kPacketReach)) {
        return false;
    }
    const uint8_t* p = packet.data() + offset;
    uint64_t v = 0;
    for (unsigned i = 0; i < size; ++i) {
        v = (v << 8) | p[i];  // network byte order
    }
    out = v;
    return true;
}

// The run loop. Called with base == nullptr, it only reports its handler offsets (the distance
// of each Op's label from `trapped`), which create() stores in the slots: direct threading.
template <bool kChecked>
RunResult execute(const Slot* const base, std::span<const Helper> bound, const HelperTable& helpers,
                  const RunInput& input, uint64_t budget, const uint32_t* charges, uint32_t zero_bytes,
                  uint32_t tail_calls,
                  const void* engine, decltype(CallContext::invoke) invoke,
                  const int32_t** handler_offsets = nullptr) {
    // One handler per Op, then the charge point's (kChargeHandler).
    static const int32_t kOffsets[] = {
#define X(NAME, OPCODE, MATCH, MVAL, MNEMONIC, FORM, SEM, WIDTH, GROUP, ISA) \
    static_cast<int32_t>(static_cast<const char*>(&&L_##NAME) - static_cast<const char*>(&&trapped)),
#include "bpfvm/vm/opcodes.def"
#undef X
        static_cast<int32_t>(static_cast<const char*>(&&L_Charge) - static_cast<const char*>(&&trapped)),
    };
    static_assert(std::size(kOffsets) == kChargeHandler + 1);
    if (handler_offsets != nullptr) {
        *handler_offsets = kOffsets;
        return {};
    }
    const char* const anchor = static_cast<const char*>(&&trapped);

    StackLease lease;
    // The stack a program may touch is the frames it has entered in this run: [r10 - 512, top)
    // of the innermost frame, so it never reads what an earlier run left below them.
    const uintptr_t stack_top = lease.top();
    Region stack_region{stack_top - kStackFrameBytes, kStackFrameBytes, true, "stack"};
    CallContext call_ctx;
    call_ctx.user = input.user;
    call_ctx.runtime = input.runtime;
    call_ctx.program_type = input.program_type;
    call_ctx.tail_calls = tail_calls;
    call_ctx.engine = engine;
    call_ctx.invoke = invoke;
    call_ctx.regions = input.regions;
    call_ctx.stack = std::span<const Region>(&stack_region, 1);
    call_ctx.checked = kChecked;

    uint64_t R[kNumRegisters] = {};
    R[1] = input.r1;
    R[2] = input.r2;
    R[3] = input.r3;
    R[4] = input.r4;
    R[5] = input.r5;
    // Frames grow down from the top of the stack block: frame k has r10 = end - k * 512.
    R[10] = stack_top;
    // (only the part of the frame the program can address: see frame_bytes_used)
    std::memset(reinterpret_cast<void*>(R[10] - zero_bytes), 0, zero_bytes);

    Frame frames[kMaxCallFrames];
    unsigned depth = 0;
    const unsigned outer = input.frames_above;  // a callback's: frames of the runs outside it
    const uint64_t budget_start = budget == 0 ? ~uint64_t{0} : budget;
    uint64_t remaining = budget_start;
    RunResult result;
    Trap trap;
    if constexpr (kChecked) {
        call_ctx.budget_left = &remaining;
    }
    const Slot* s = base + input.start_pc;

// The run loop is macros and labels; its layout is kept by hand.
// clang-format off
#define PC() static_cast<uint32_t>(s - base)
#define DISPATCH()                \
    do {                          \
        goto* (anchor + s->handler); \
    } while (0)
#define NEXT()   \
    do {         \
        ++s;     \
        DISPATCH(); \
    } while (0)
// Taken and not-taken paths dispatch separately: two indirect jumps give the branch predictor
// more context than one.
#define JUMP_IF(cond)                             \
    do {                                          \
        if (cond) {                               \
            s = base + s->off;                    \
            DISPATCH();                           \
        }                                         \
        ++s;                                      \
        DISPATCH();                               \
    } while (0)
// Checked access: `addr` must lie in a region, writable for stores.
#define ACCESS(addr, len, is_write)                                                        \
    do {                                                                                   \
        if constexpr (kChecked) {                                                          \
            const Region* region_ = find_region(stack_region, input.regions, addr, len);  \
            if (region_ == nullptr || ((is_write) && !region_->writable)) {                \
                trap.kind = region_ == nullptr ? TrapKind::OutOfBounds : TrapKind::ReadOnly; \
                trap.address = addr;                                                       \
                trap.size = len;                                                           \
                trap.write = is_write;                                                     \
                trap.detail = region_ == nullptr ? "" : region_->name;                     \
                goto trapped;                                                              \
            }                                                                              \
        }                                                                                  \
    } while (0)

#define ALU(NAME, EXPR64, EXPR32)                                       \
    L_##NAME##64Imm : {                                                 \
        const uint64_t a = R[s->dst];                                   \
        const uint64_t b = static_cast<uint64_t>(s->imm);               \
        R[s->dst] = (EXPR64);                                           \
        NEXT();                                                         \
    }                                                                   \
    L_##NAME##64Reg : {                                                 \
        const uint64_t a = R[s->dst];                                   \
        const uint64_t b = R[s->src];                                   \
        R[s->dst] = (EXPR64);                                           \
        NEXT();                                                         \
    }                                                                   \
    L_##NAME##32Imm : {                                                 \
        const uint32_t a = static_cast<uint32_t>(R[s->dst]);            \
        const uint32_t b = static_cast<uint32_t>(s->imm);               \
        R[s->dst] = static_cast<uint32_t>(EXPR32);                      \
        NEXT();                                                         \
    }                                                                   \
    L_##NAME##32Reg : {                                                 \
        const uint32_t a = static_cast<uint32_t>(R[s->dst]);            \
        const uint32_t b = static_cast<uint32_t>(R[s->src]);            \
        R[s->dst] = static_cast<uint32_t>(EXPR32);                      \
        NEXT();                                                         \
    }

#define COND(NAME, EXPR64, EXPR32)                                       \
    L_##NAME##Imm : {                                                    \
        const uint64_t a = R[s->dst];                                    \
        const uint64_t b = static_cast<uint64_t>(s->imm);                \
        JUMP_IF(EXPR64);                                                 \
    }                                                                    \
    L_##NAME##Reg : {                                                    \
        const uint64_t a = R[s->dst];                                    \
        const uint64_t b = R[s->src];                                    \
        JUMP_IF(EXPR64);                                                 \
    }                                                                    \
    L_##NAME##32Imm : {                                                  \
        const uint32_t a = static_cast<uint32_t>(R[s->dst]);             \
        const uint32_t b = static_cast<uint32_t>(s->imm);                \
        JUMP_IF(EXPR32);                                                 \
    }                                                                    \
    L_##NAME##32Reg : {                                                  \
        const uint32_t a = static_cast<uint32_t>(R[s->dst]);             \
        const uint32_t b = static_cast<uint32_t>(R[s->src]);             \
        JUMP_IF(EXPR32);                                                 \
    }

#define LDX(NAME, T, EXT)                                      \
    L_##NAME : {                                               \
        const uintptr_t addr = R[s->src] + s->off;             \
        ACCESS(addr, sizeof(T), false);                        \
        R[s->dst] = EXT(load<T>(addr));                        \
        NEXT();                                                \
    }
#define ST(NAME, T)                                            \
    L_##NAME : {                                               \
        const uintptr_t addr = R[s->dst] + s->off;             \
        ACCESS(addr, sizeof(T), true);                         \
        store<T>(addr, static_cast<T>(s->imm));                \
        NEXT();                                                \
    }
#define STX(NAME, T)                                           \
    L_##NAME : {                                               \
        const uintptr_t addr = R[s->dst] + s->off;             \
        ACCESS(addr, sizeof(T), true);                         \
        store<T>(addr, static_cast<T>(R[s->src]));             \
        NEXT();                                                \
    }
#define ATOMIC_ADDR(T)                                         \
    const uintptr_t addr = R[s->dst] + s->off;                 \
    ACCESS(addr, sizeof(T), true);                             \
    if constexpr (kChecked) {                                  \
        if (addr % sizeof(T) != 0) {                           \
            trap.kind = TrapKind::Misaligned;                  \
            trap.address = addr;                               \
            trap.size = sizeof(T);                             \
            trap.write = true;                                 \
            goto trapped;                                      \
        }                                                      \
    }                                                          \
    T* const p = reinterpret_cast<T*>(addr)
#define ATOMIC(NAME, T, BUILTIN, FETCH)                                            \
    L_##NAME : {                                                                   \
        ATOMIC_ADDR(T);                                                            \
        const T old = BUILTIN(p, static_cast<T>(R[s->src]), __ATOMIC_SEQ_CST);     \
        if (FETCH) {                                                               \
            R[s->src] = old;                                                       \
        }                                                                          \
        NEXT();                                                                    \
    }
#define ATOMIC_FAMILY(W, T)                                                        \
    ATOMIC(AtomicAdd##W, T, __atomic_fetch_add, false)                             \
    ATOMIC(AtomicFetchAdd##W, T, __atomic_fetch_add, true)                         \
    ATOMIC(AtomicOr##W, T, __atomic_fetch_or, false)                               \
    ATOMIC(AtomicFetchOr##W, T, __atomic_fetch_or, true)                           \
    ATOMIC(AtomicAnd##W, T, __atomic_fetch_and, false)                             \
    ATOMIC(AtomicFetchAnd##W, T, __atomic_fetch_and, true)                         \
    ATOMIC(AtomicXor##W, T, __atomic_fetch_xor, false)                             \
    ATOMIC(AtomicFetchXor##W, T, __atomic_fetch_xor, true)                         \
    ATOMIC(AtomicXchg##W, T, __atomic_exchange_n, true)                            \
    L_AtomicCmpxchg##W : {                                                         \
        ATOMIC_ADDR(T);                                                            \
        T expected = static_cast<T>(R[0]);                                         \
        __atomic_compare_exchange_n(p, &expected, static_cast<T>(R[s->src]), false, \
                                    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);           \
        R[0] = expected;                                                           \
        NEXT();                                                                    \
    }
#define LD_PACKET(NAME, SIZE, OFFSET)                                              \
    L_##NAME : {                                                                   \
        uint64_t v;                                                                \
        if (!packet_read(input.packet, (OFFSET), SIZE, v)) {                       \
            /* Out of the packet: the program ends and returns 0, as in the kernel. */ \
            result.r0 = 0;                                                         \
            goto done;                                                             \
        }                                                                          \
        R[0] = v;                                                                  \
        NEXT();                                                                    \
    }

#define NO_EXT(v) (v)
#define SEXT(v) static_cast<uint64_t>(static_cast<int64_t>(v))

    DISPATCH();

    // A charge point (checked mode; see budget_charges): pay for the instructions up to the next
    // one, then run the instruction here.
L_Charge: {
    if constexpr (kChecked) {
        const uint32_t cost = charges[PC()];
        if (remaining < cost) {
            goto budget_exhausted;
        }
        remaining -= cost;
    }
    goto* (anchor + kOffsets[s->op]);
}

    ALU(Add, a + b, a + b)
    ALU(Sub, a - b, a - b)
    ALU(Mul, a * b, a * b)
    ALU(Div, sem::udiv(a, b), sem::udiv(a, b))
    ALU(Sdiv, sem::sdiv(a, b), sem::sdiv(a, b))
    ALU(Or, a | b, a | b)
    ALU(And, a & b, a & b)
    ALU(Lsh, sem::lsh(a, b), sem::lsh(a, b))
    ALU(Rsh, sem::rsh(a, b), sem::rsh(a, b))
    ALU(Mod, sem::umod(a, b), sem::umod(a, b))
    ALU(Smod, sem::smod(a, b), sem::smod(a, b))
    ALU(Xor, a ^ b, a ^ b)
    ALU(Mov, (static_cast<void>(a), b), (static_cast<void>(a), b))
    ALU(Arsh, sem::arsh(a, b), sem::arsh(a, b))

L_Neg32:
    R[s->dst] = static_cast<uint32_t>(0u - static_cast<uint32_t>(R[s->dst]));
    NEXT();
L_Neg64:
    R[s->dst] = 0 - R[s->dst];
    NEXT();
L_Movsx8To32:
L_Movsx16To32:
    R[s->dst] = static_cast<uint32_t>(sem::sext(R[s->src], s->width));
    NEXT();
L_Movsx8To64:
L_Movsx16To64:
L_Movsx32To64:
    R[s->dst] = sem::sext(R[s->src], s->width);
    NEXT();
L_Le16:
L_Le32:
L_Le64:
    R[s->dst] = sem::truncate(R[s->dst], s->width);
    NEXT();
L_Be16:
L_Be32:
L_Be64:
L_Bswap16:
L_Bswap32:
L_Bswap64:
    R[s->dst] = sem::bswap(R[s->dst], s->width);
    NEXT();

    COND(Jeq, a == b, a == b)
    COND(Jgt, a > b, a > b)
    COND(Jge, a >= b, a >= b)
    COND(Jset, (a & b) != 0, (a & b) != 0)
    COND(Jne, a != b, a != b)
    COND(Jsgt, int64_t(a) > int64_t(b), int32_t(a) > int32_t(b))
    COND(Jsge, int64_t(a) >= int64_t(b), int32_t(a) >= int32_t(b))
    COND(Jlt, a < b, a < b)
    COND(Jle, a <= b, a <= b)
    COND(Jslt, int64_t(a) < int64_t(b), int32_t(a) < int32_t(b))
    COND(Jsle, int64_t(a) <= int64_t(b), int32_t(a) <= int32_t(b))

L_Ja:
L_Ja32:
    s = base + s->off;
    DISPATCH();

L_LddwImm:
L_LddwMapFd:
L_LddwMapValueFd:
L_LddwVarAddr:
L_LddwCodeAddr:
L_LddwMapIdx:
L_LddwMapValueIdx:
    // The tail slot holds the upper half of the immediate.
    R[s->dst] = uint64_t{static_cast<uint32_t>(s->imm)} | uint64_t{static_cast<uint32_t>(s[1].imm)} << 32;
    s += 2;
    DISPATCH();

    LD_PACKET(LdAbsW, 4, s->imm)
    LD_PACKET(LdAbsH, 2, s->imm)
    LD_PACKET(LdAbsB, 1, s->imm)
    LD_PACKET(LdIndW, 4, int32_t(uint32_t(s->imm) + uint32_t(R[s->src])))
    LD_PACKET(LdIndH, 2, int32_t(uint32_t(s->imm) + uint32_t(R[s->src])))
    LD_PACKET(LdIndB, 1, int32_t(uint32_t(s->imm) + uint32_t(R[s->src])))

    LDX(LdxB, uint8_t, NO_EXT)
    LDX(LdxH, uint16_t, NO_EXT)
    LDX(LdxW, uint32_t, NO_EXT)
    LDX(LdxDW, uint64_t, NO_EXT)
    LDX(LdxsB, int8_t, SEXT)
    LDX(LdxsH, int16_t, SEXT)
    LDX(LdxsW, int32_t, SEXT)
    ST(StB, uint8_t)
    ST(StH, uint16_t)
    ST(StW, uint32_t)
    ST(StDW, uint64_t)
    STX(StxB, uint8_t)
    STX(StxH, uint16_t)
    STX(StxW, uint32_t)
    STX(StxDW, uint64_t)
    ATOMIC_FAMILY(32, uint32_t)
    ATOMIC_FAMILY(64, uint64_t)

L_CallHelper: {
    if (s->imm < 0) {
        trap.kind = TrapKind::UnknownHelper;
        trap.address = static_cast<uint32_t>(s->off);  // the id, kept in off by create()
        goto trapped;
    }
    const Helper& h = bound[static_cast<std::size_t>(s->imm)];
    call_ctx.pc = PC();
    call_ctx.depth = outer + depth;
    R[0] = h.fn(R[1], R[2], R[3], R[4], R[5], &call_ctx);
    if (call_ctx.fault != nullptr) {
        if (call_ctx.callback_trap) {
            trap = std::move(*call_ctx.callback_trap);  // the callback's own trap, pc and all
            result.r0 = 0;
            result.trap = std::move(trap);
            goto done;
        }
        trap.kind = TrapKind::HelperFault;
        trap.address = h.id;
        trap.detail = h.name + ": " + call_ctx.fault;
        goto trapped;
    }
    if (call_ctx.tail_call != nullptr) {
        goto tail_call;  // the program does not come back from a taken tail call
    }
    NEXT();
}
L_Callx: {
    const uint64_t id = R[s->dst];
    const Helper* h = id <= UINT32_MAX ? helpers.find(static_cast<uint32_t>(id)) : nullptr;
    if (h == nullptr) {
        trap.kind = TrapKind::BadCallxTarget;
        trap.address = id;
        trap.detail = "r" + std::to_string(s->dst);
        goto trapped;
    }
    call_ctx.pc = PC();
    call_ctx.depth = outer + depth;
    R[0] = h->fn(R[1], R[2], R[3], R[4], R[5], &call_ctx);
    if (call_ctx.fault != nullptr) {
        trap.kind = TrapKind::HelperFault;
        trap.address = h->id;
        trap.detail = h->name + ": " + call_ctx.fault;
        goto trapped;
    }
    NEXT();
}
L_CallBtf:
    trap.kind = TrapKind::UnsupportedCall;
    trap.address = static_cast<uint32_t>(s->imm);
    goto trapped;
L_CallLocal: {
    if (outer + depth + 1 >= kMaxCallFrames) {
        trap.kind = TrapKind::CallDepthExceeded;
        goto trapped;
    }
    Frame& f = frames[depth++];
    f.ret = s + 1;
    std::memcpy(f.saved, &R[6], sizeof f.saved);
    R[10] -= kStackFrameBytes;
    std::memset(reinterpret_cast<void*>(R[10] - zero_bytes), 0, zero_bytes);
    stack_region.begin -= kStackFrameBytes;
    stack_region.size += kStackFrameBytes;
    s = base + s->off;
    DISPATCH();
}
L_Exit:
    if (depth == 0) {
        result.r0 = R[0];
        goto done;
    } else {
        const Frame& f = frames[--depth];
        std::memcpy(&R[6], f.saved, sizeof f.saved);
        stack_region.begin += kStackFrameBytes;
        stack_region.size -= kStackFrameBytes;
        s = f.ret;
        DISPATCH();
    }

tail_call:
    result.tail_call = call_ctx.tail_call;
    result.tail_call_ctx = call_ctx.tail_call_ctx;
    goto done;
budget_exhausted:
    __attribute__((unused));
    trap.kind = TrapKind::BudgetExhausted;
    trap.address = budget;
    goto trapped;
trapped:
    trap.pc = PC();
    result.r0 = 0;
    result.trap = std::move(trap);
done:
    if constexpr (kChecked) {
        result.instructions = budget_start - remaining;
    }
    return result;

#undef PC
#undef DISPATCH
#undef NEXT
#undef JUMP_IF
#undef ACCESS
#undef ALU
#undef COND
#undef LDX
#undef ST
#undef STX
#undef ATOMIC_ADDR
#undef ATOMIC
#undef ATOMIC_FAMILY
#undef LD_PACKET
#undef NO_EXT
#undef SEXT
    // clang-format on
}

}  // namespace

Expected<Interpreter> Interpreter::create(const Program& program, const HelperTable& helpers) {
    Interpreter interp;
    interp.helpers_ = helpers;
    std::vector<Slot> slots(program.size());
    for (std::size_t pc = 0; pc < program.size(); ++pc) {
        const Instruction& insn = program[pc];
        Slot& slot = slots[pc];
        slot.op = static_cast<uint8_t>(insn.op);
        slot.dst = insn.dst;
        slot.src = insn.src;
        slot.width = 0;
        slot.off = insn.off;
        slot.imm = insn.imm;
        if (program.is_tail(pc)) {
            // The upper half of the lddw's value: its immediate, or the function pointer's tag.
            const uint64_t value = insn.op == Op::LddwCodeAddr
                                       ? function_pointer(static_cast<uint32_t>(static_cast<int64_t>(pc) + insn.imm))
                                       : insn.imm64();
            slot.imm = static_cast<int32_t>(value >> 32);
            continue;
        }
        const OpInfo& row = insn.info();
        if (has_target(row.form)) {
            slot.off = static_cast<int32_t>(branch_target(insn, pc));
        }
        switch (row.form) {
            case Form::Endian:
                slot.width = static_cast<uint8_t>(insn.imm);
                break;
            case Form::AluReg:
                if (row.sem == Sem::Movsx) {
                    slot.width = static_cast<uint8_t>(insn.off);
                    slot.off = 0;
                }
                break;
            case Form::LoadImm64:
                if (insn.op == Op::LddwCodeAddr) {
                    // A function's address: an opaque value only callbacks (invoke) understand.
                    const uint64_t fp =
                        function_pointer(static_cast<uint32_t>(static_cast<int64_t>(pc) + 1 + insn.imm));
                    slot.imm = static_cast<int32_t>(static_cast<uint32_t>(fp));
                    break;
                }
                if (insn.op != Op::LddwImm) {
                    return make_error("pc " + std::to_string(pc),
                                      "lddw with src " + std::to_string(insn.src) +
                                          " refers to a map or variable that no loader resolved");
                }
                break;
            case Form::Call: {
                const Helper* h = helpers.find(static_cast<uint32_t>(insn.imm));
                if (h == nullptr) {
                    slot.imm = -1;  // traps when executed
                    slot.off = insn.imm;
                } else {
                    slot.imm = static_cast<int32_t>(interp.bound_.size());
                    interp.bound_.push_back(*h);
                }
                break;
            }
            case Form::AluImm:
            case Form::AluUnary:
            case Form::LoadMem:
            case Form::StoreImm:
            case Form::StoreReg:
            case Form::Atomic:
            case Form::LoadAbs:
            case Form::LoadInd:
            case Form::Jump:
            case Form::Jump32:
            case Form::CondImm:
            case Form::CondReg:
            case Form::CallLocal:
            case Form::CallBtf:
            case Form::Callx:
            case Form::Exit:
                break;
        }
    }
    // One copy of the slots per mode, each pointing at that mode's handlers.
    const int32_t* checked = nullptr;
    const int32_t* fast = nullptr;
    (void)execute<true>(nullptr, {}, helpers, RunInput{}, 0, nullptr, 0, 0, nullptr, nullptr, &checked);
    (void)execute<false>(nullptr, {}, helpers, RunInput{}, 0, nullptr, 0, 0, nullptr, nullptr, &fast);
    interp.is_function_.assign(program.size(), 0);
    for (uint32_t f : program.functions()) {
        interp.is_function_[f] = 1;
    }
    interp.checked_ = slots;
    interp.fast_ = std::move(slots);
    for (std::size_t pc = 0; pc < program.size(); ++pc) {
        interp.checked_[pc].handler = checked[interp.checked_[pc].op];
        interp.fast_[pc].handler = fast[interp.fast_[pc].op];
    }
    interp.callbacks_ = may_run_callbacks(program, helpers);
    interp.charges_ = budget_charges(program);
    interp.zero_bytes_ = frame_bytes_used(program);
    for (std::size_t pc = 0; pc < program.size(); ++pc) {
        if (interp.charges_[pc] != 0) {
            interp.checked_[pc].handler = checked[kChargeHandler];
        }
    }
    return interp;
}

RunResult Interpreter::run_from(const RunInput& input, Mode mode, uint64_t budget, uint32_t tail_calls) const {
    return mode == Mode::Checked
               ? execute<true>(checked_.data(), bound_, helpers_, input, budget, charges_.data(), zero_bytes_,
                               tail_calls, this, &invoke_callback)
               : execute<false>(fast_.data(), bound_, helpers_, input, 0, nullptr, zero_bytes_, tail_calls, this,
                                &invoke_callback);
}

RunResult Interpreter::run(const RunInput& input, const RunOptions& options) const {
    // A taken tail call ends this program's run; the loop continues in the target with the
    // same input but r1 = the context the program passed, sharing the budget.
    RunInput in = input;
    in.start_pc = 0;
    const Interpreter* current = this;
    uint64_t executed = 0;
    for (uint32_t tail_calls = options.tail_calls;; ++tail_calls) {
        const uint64_t budget = options.budget == 0 ? 0 : options.budget - std::min(options.budget - 1, executed);
        RunResult r = current->run_from(in, options.mode, budget, tail_calls);
        executed += r.instructions;
        if (r.tail_call == nullptr) {
            r.instructions = executed;
            r.tail_calls = tail_calls;
            return r;
        }
        current = static_cast<const Interpreter*>(r.tail_call);
        in.r1 = r.tail_call_ctx;
    }
}

uint64_t Interpreter::invoke_callback(CallContext* ctx, uint64_t fn, uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4,
                                      uint64_t r5) {
    const auto* self = static_cast<const Interpreter*>(ctx->engine);
    const auto pc = static_cast<uint32_t>(fn);
    if (!self->callbacks_) {
        ctx->fault = kNoCallbacks;
        return 0;
    }
    if ((fn >> 32) != kFunctionPointerTag || pc >= self->is_function_.size() || self->is_function_[pc] == 0) {
        ctx->fault = "the callback argument is not one of the program's functions";
        return 0;
    }
    if (ctx->callback_too_deep()) {
        return 0;
    }
    // The callback may use memory the caller may, its stack included (a callback context there).
    std::vector<Region> regions(ctx->regions.begin(), ctx->regions.end());
    regions.insert(regions.end(), ctx->stack.begin(), ctx->stack.end());
    if (ctx->callback_region != nullptr) {
        regions.push_back(*ctx->callback_region);
    }
    RunInput in;
    in.r1 = r1;
    in.r2 = r2;
    in.r3 = r3;
    in.r4 = r4;
    in.r5 = r5;
    in.user = ctx->user;
    in.runtime = ctx->runtime;
    in.program_type = ctx->program_type;
    in.regions = regions;
    in.start_pc = pc;
    in.frames_above = ctx->depth + 1;
    const bool checked = ctx->checked;
    uint64_t budget = 0;
    if (checked && ctx->budget_left != nullptr && *ctx->budget_left != ~uint64_t{0}) {
        if (*ctx->budget_left == 0) {
            // Nothing left (the caller's last charge spent it): the callback stops at its entry,
            // whose charge it cannot pay. (A run's budget of 0 would mean none at all.)
            Trap trap;
            trap.kind = TrapKind::BudgetExhausted;
            trap.pc = static_cast<uint32_t>(pc);
            trap.address = 0;
            ctx->callback_trap = std::move(trap);
            ctx->fault = "the callback trapped";
            return 0;
        }
        budget = *ctx->budget_left;
    }
    RunResult r = self->run_from(in, checked ? Mode::Checked : Mode::Fast, budget, ctx->tail_calls);
    if (checked && ctx->budget_left != nullptr && *ctx->budget_left != ~uint64_t{0}) {
        *ctx->budget_left -= std::min(*ctx->budget_left, r.instructions);
    }
    if (!r.ok()) {
        ctx->callback_trap = std::move(r.trap);
        ctx->fault = "the callback trapped";
        return 0;
    }
    if (r.tail_call != nullptr) {
        ctx->fault = "a callback may not tail-call";
        return 0;
    }
    return r.r0;
}

RunResult Interpreter::run_buffer(std::span<uint8_t> buffer, const RunOptions& options) const {
    const Region region = Region::of(buffer, "input");
    RunInput input;
    input.r1 = buffer.empty() ? 0 : reinterpret_cast<uintptr_t>(buffer.data());
    input.r2 = buffer.size();
    input.regions = std::span<const Region>(&region, buffer.empty() ? 0 : 1);
    input.packet = buffer;
    return run(input, options);
}

// ---- helpers.hpp -----------------------------------------------------------------------------

bool CallContext::callback_too_deep() {
    static_assert(kMaxCallFrames == 8, "the message names the limit");
    if (depth + 1 < kMaxCallFrames) {
        return false;
    }
    fault = "the callback would nest deeper than 8 call frames";
    return true;
}

bool CallContext::allowed(uint64_t addr, uint64_t len, bool write) const {
    for (std::span<const Region> set : {stack, regions}) {
        for (const Region& r : set) {
            if (r.contains(static_cast<uintptr_t>(addr), static_cast<std::size_t>(len))) {
                return !write || r.writable;
            }
        }
    }
    return false;
}

Expected<Unit> HelperTable::add(uint32_t id, std::string name, HelperFn fn, HelperPrototype prototype) {
    if (fn == nullptr) {
        return make_error("helper " + std::to_string(id), "no function given for '" + name + "'");
    }
    const std::vector<Helper>& now = all();
    auto it = std::lower_bound(now.begin(), now.end(), id, [](const Helper& h, uint32_t key) { return h.id < key; });
    if (it != now.end() && it->id == id) {
        return make_error("helper " + std::to_string(id),
                          "id already registered as '" + it->name + "', cannot add '" + name + "'");
    }
    const auto at = it - now.begin();
    if (!helpers_ || helpers_.use_count() > 1) {
        helpers_ = std::make_shared<std::vector<Helper>>(now);  // (copies sharing the old one keep it)
    }
    helpers_->insert(helpers_->begin() + at, Helper{id, std::move(name), fn, prototype});
    return Unit{};
}

const std::vector<Helper>& HelperTable::all() const {
    static const std::vector<Helper> kNone;
    return helpers_ ? *helpers_ : kNone;
}

const Helper* HelperTable::find(uint32_t id) const {
    const std::vector<Helper>& h = all();
    auto it = std::lower_bound(h.begin(), h.end(), id, [](const Helper& x, uint32_t key) { return x.id < key; });
    return it != h.end() && it->id == id ? &*it : nullptr;
}

// ---- memory.hpp ------------------------------------------------------------------------------

std::string_view to_string(TrapKind kind) {
    switch (kind) {
        case TrapKind::OutOfBounds:
            return "out-of-bounds";
        case TrapKind::ReadOnly:
            return "read-only";
        case TrapKind::Misaligned:
            return "misaligned";
        case TrapKind::UnknownHelper:
            return "unknown-helper";
        case TrapKind::BadCallxTarget:
            return "bad-callx-target";
        case TrapKind::UnsupportedCall:
            return "unsupported-call";
        case TrapKind::CallDepthExceeded:
            return "call-depth";
        case TrapKind::BudgetExhausted:
            return "budget";
        case TrapKind::HelperFault:
            return "helper-fault";
    }
    return "?";
}

std::string Trap::message() const {
    const std::string at = "pc " + std::to_string(pc) + ": ";
    const std::string access = std::to_string(size) + "-byte " + (write ? "store to " : "load from ") + hex(address);
    switch (kind) {
        case TrapKind::OutOfBounds:
            return at + "out-of-bounds " + access + " (outside the stack and every region)";
        case TrapKind::ReadOnly:
            return at + access + " is in read-only region '" + detail + "'";
        case TrapKind::Misaligned:
            return at + "misaligned atomic " + access;
        case TrapKind::UnknownHelper:
            if (address == static_cast<uint64_t>(kCorePoisonHelper)) {
                return at + "reached a field or type access whose CO-RE relocation found no match in the target BTF";
            }
            return at + "call to unknown helper " + std::to_string(address);
        case TrapKind::BadCallxTarget:
            return at + "callx target " + detail + " = " + std::to_string(address) + " is not a registered helper";
        case TrapKind::UnsupportedCall:
            return at + "call to kernel function with BTF id " + std::to_string(address) + " is not supported";
        case TrapKind::CallDepthExceeded:
            return at + "bpf-to-bpf call depth exceeds " + std::to_string(kMaxCallFrames) + " frames";
        case TrapKind::BudgetExhausted:
            return at + "instruction budget of " + std::to_string(address) + " exhausted";
        case TrapKind::HelperFault:
            return at + "helper " + detail;
    }
    return at + "trap";
}

}  // namespace bpfvm::vm
