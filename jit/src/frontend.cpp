#include "frontend.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <mutex>

#include "bpfvm/vm/stack.hpp"

namespace bpfvm::jit {

// ---- hooks generated code calls ----------------------------------------------------------------

extern "C" uint64_t bpfvm_jit_callx(RunState* st, uint64_t id, uint32_t pc, uint32_t reg) {
    const vm::Helper* h = id <= UINT32_MAX ? st->helpers->find(static_cast<uint32_t>(id)) : nullptr;
    if (h == nullptr) {
        st->trap_kind = static_cast<uint32_t>(vm::TrapKind::BadCallxTarget) + 1;
        st->trap_pc = pc;
        st->trap_address = id;
        st->spill[0] = reg;  // names the register in the trap
        return 0;
    }
    st->call_ctx->pc = pc;
    st->call_ctx->depth = st->depth;
    st->spill[1] = h->id;
    return h->fn(st->args[0], st->args[1], st->args[2], st->args[3], st->args[4], st->call_ctx);
}

namespace {

// The region an access of `info` at addr lies in: the frames entered, or one of the run's.
const vm::Region* region_of(const RunState* st, uint64_t addr, std::size_t len) {
    if (st->stack_region.contains(addr, len)) {
        return &st->stack_region;
    }
    for (const vm::Region& r : st->call_ctx->regions) {
        if (r.contains(addr, len)) {
            return &r;
        }
    }
    return nullptr;
}

// Fills the caches with a region; false for one that is not cached: a region at address 0, for
// which no hi[] could refuse a width it cannot hold.
bool cache(RunState* st, const vm::Region& hit) {
    if (hit.begin == 0) {
        return false;
    }
    AccessCache c;
    c.lo = hit.begin;
    for (unsigned i = 0; i < 4; ++i) {
        const uint64_t width = uint64_t{1} << i;
        c.hi[i] = hit.size >= width ? hit.begin + hit.size - width : hit.begin - 1;  // none fits
    }
    st->rd = c;
    if (hit.writable) {
        st->wr = c;
    }
    return true;
}

}  // namespace

extern "C" void bpfvm_jit_check(RunState* st, uint64_t addr, uint64_t info) {
    const auto len = static_cast<std::size_t>(info & 0xff);
    const bool write = ((info >> 8) & 1) != 0;
    const vm::Region* hit = region_of(st, addr, len);
    if (hit == nullptr || (write && !hit->writable)) {
        st->trap_kind = static_cast<uint32_t>(hit == nullptr ? vm::TrapKind::OutOfBounds : vm::TrapKind::ReadOnly) + 1;
        st->trap_pc = static_cast<uint32_t>(info >> 32);
        st->trap_address = addr;
        st->trap_size = static_cast<uint32_t>(len);
        st->trap_write = write ? 1 : 0;
        st->trap_detail = hit == nullptr ? "" : hit->name;
        return;
    }
    // (The stack's entry is dropped when a frame returns.)
    cache(st, *hit);
}

extern "C" uint64_t bpfvm_jit_probe(RunState* st, uint64_t addr, uint64_t info) {
    const auto len = static_cast<std::size_t>(info & 0xff);
    const bool write = ((info >> 8) & 1) != 0;
    const vm::Region* hit = region_of(st, addr, len);
    if (hit == nullptr || (write && !hit->writable)) {
        return 0;
    }
    return cache(st, *hit) ? 1 : 0;
}

// ---- executable memory ---------------------------------------------------------------------------

namespace {

// A read-write mapping for code with an inaccessible page on each side: no neighbouring mapping
// ever has its protection, so the kernel never merges it with one, and switching the whole
// mapping between read-write and read-execute needs no split of a larger area (a split and a
// merge were most of a small program's compile time).
void* map_code(std::size_t size, std::size_t page) {
    void* area = mmap(nullptr, size + 2 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (area == MAP_FAILED) {
        return nullptr;
    }
    void* base = static_cast<uint8_t*>(area) + page;
    if (mprotect(base, size, PROT_READ | PROT_WRITE) != 0) {
        munmap(area, size + 2 * page);
        return nullptr;
    }
    return base;
}

void unmap_code(void* base, std::size_t size) {
    const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    munmap(static_cast<uint8_t*>(base) - page, size + 2 * page);
}

// Mappings of programs that were destroyed, already switched back to read-write, kept for the next
// compiles: a compile then costs one mprotect (and a destroy one), not mmap + page faults +
// mprotect + munmap. Bounded; what does not fit is unmapped.
class MappingCache {
public:
    static MappingCache& instance() {
        static MappingCache cache;
        return cache;
    }

    // A read-write mapping of at least `size` bytes (its real size in `size`), or null.
    void* take(std::size_t& size) {
        std::lock_guard<std::mutex> lock(mutex_);
        for (std::size_t i = 0; i < free_.size(); ++i) {
            if (free_[i].second >= size && free_[i].second <= size * 4) {
                void* base = free_[i].first;
                size = free_[i].second;
                free_[i] = free_.back();
                free_.pop_back();
                return base;
            }
        }
        return nullptr;
    }

    void give(void* base, std::size_t size) {
        if (size <= kMaxCachedBytes / 8 && mprotect(base, size, PROT_READ | PROT_WRITE) == 0) {
            std::lock_guard<std::mutex> lock(mutex_);
            if (cached_bytes() + size <= kMaxCachedBytes) {
                free_.emplace_back(base, size);
                return;
            }
        }
        unmap_code(base, size);
    }

private:
    static constexpr std::size_t kMaxCachedBytes = std::size_t{4} << 20;
    std::size_t cached_bytes() const {
        std::size_t total = 0;
        for (const auto& f : free_) {
            total += f.second;
        }
        return total;
    }
    std::mutex mutex_;
    std::vector<std::pair<void*, std::size_t>> free_;
};

}  // namespace

Expected<std::unique_ptr<ExecutableMemory>> ExecutableMemory::create(const std::vector<uint8_t>& code) {
    const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    std::size_t size = (std::max<std::size_t>(code.size(), 1) + page - 1) / page * page;
    void* base = MappingCache::instance().take(size);
    if (base == nullptr) {
        base = map_code(size, page);
        if (base == nullptr) {
            return make_error("jit", "cannot map " + std::to_string(size) + " bytes for code");
        }
    }
    std::memcpy(base, code.data(), code.size());
    // Writable, then executable: never both.
    if (mprotect(base, size, PROT_READ | PROT_EXEC) != 0) {
        unmap_code(base, size);
        return make_error("jit", "cannot make the code executable");
    }
    return std::unique_ptr<ExecutableMemory>(new ExecutableMemory(base, size));
}

ExecutableMemory::~ExecutableMemory() {
    MappingCache::instance().give(base_, size_);
}

// ---- JitProgram ------------------------------------------------------------------------------------

namespace {

// Generated code has no type signature in front of it for UBSan's function check to read.
#if defined(__clang__)
__attribute__((no_sanitize("function")))
#endif
uint64_t
call_entry(EntryFn entry, RunState* st) {
    return entry(st);
}

}  // namespace

struct JitProgram::Impl {
    std::unique_ptr<ExecutableMemory> memory;
    EntryFn entry = nullptr;
    EntryFn callback_entry = nullptr;
    std::vector<std::pair<uint32_t, std::size_t>> functions;  // (pc, call entry offset)
    vm::HelperTable helpers;
    std::string listing;
    bool checked = false;
    std::size_t code_bytes = 0;
    LeafFn leaf = nullptr;  // set for leaf programs (see Compiled::leaf)
};

JitProgram::JitProgram(std::unique_ptr<Impl> impl) : impl_(std::move(impl)), leaf_(impl_->leaf) {}
JitProgram::~JitProgram() = default;

Expected<std::unique_ptr<JitProgram>> JitProgram::compile(const vm::Program& program, const vm::HelperTable& helpers,
                                                          const JitOptions& options) {
    for (std::size_t pc = 0; pc < program.size(); ++pc) {
        if (program.is_tail(pc)) {
            continue;
        }
        const vm::Op op = program[pc].op;
        if (program[pc].info().form == vm::Form::LoadImm64 && op != vm::Op::LddwImm && op != vm::Op::LddwCodeAddr) {
            return make_error("pc " + std::to_string(pc), "lddw with src " + std::to_string(program[pc].src) +
                                                              " refers to a map or variable that no loader resolved");
        }
    }
#if defined(BPFVM_JIT_X86_64)
    Expected<Compiled> compiled = compile_x86_64(program, helpers, options);
#else
    (void)helpers;
    (void)options;
    Expected<Compiled> compiled = make_error("jit", "no JIT back end for this machine's architecture");
#endif
    if (!compiled) {
        return compiled.error();
    }
    auto impl = std::make_unique<Impl>();
    Expected<std::unique_ptr<ExecutableMemory>> mem = ExecutableMemory::create(compiled->code);
    if (!mem) {
        return mem.error();
    }
    impl->memory = std::move(*mem);
    impl->entry = reinterpret_cast<EntryFn>(static_cast<uint8_t*>(impl->memory->base()) + compiled->entry);
    impl->helpers = helpers;
    impl->callback_entry =
        reinterpret_cast<EntryFn>(static_cast<uint8_t*>(impl->memory->base()) + compiled->callback_entry);
    impl->functions = std::move(compiled->functions);
    impl->checked = options.checked;
    if (compiled->leaf) {
        impl->leaf = reinterpret_cast<LeafFn>(static_cast<uint8_t*>(impl->memory->base()) + compiled->entry);
    }
    impl->code_bytes = compiled->code.size();
    impl->listing = std::move(compiled->listing);
    return std::unique_ptr<JitProgram>(new JitProgram(std::move(impl)));
}

// What a run whose code recorded a trap reports: a callback's own trap as it was, else the trap
// the code recorded, naming the register of a bad callx and the helper and fault of a helper fault.
uint64_t jit_invoke(vm::CallContext* ctx, uint64_t fn, uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4, uint64_t r5);

vm::Trap trap_of(const RunState& st, vm::CallContext& ctx, const vm::HelperTable& helpers, uint64_t budget) {
    if (ctx.callback_trap) {
        return std::move(*ctx.callback_trap);
    }
    vm::Trap trap;
    trap.kind = static_cast<vm::TrapKind>(st.trap_kind - 1);
    trap.pc = st.trap_pc;
    trap.address = st.trap_address;
    if (trap.kind == vm::TrapKind::OutOfBounds || trap.kind == vm::TrapKind::ReadOnly ||
        trap.kind == vm::TrapKind::Misaligned) {
        trap.size = st.trap_size;
        trap.write = st.trap_write != 0;
        trap.detail = st.trap_detail != nullptr ? st.trap_detail : "";
    } else if (trap.kind == vm::TrapKind::BudgetExhausted) {
        trap.address = budget;
    } else if (trap.kind == vm::TrapKind::BadCallxTarget) {
        trap.detail = "r" + std::to_string(st.spill[0]);
    } else if (trap.kind == vm::TrapKind::HelperFault) {
        const uint64_t id = trap.address != 0 ? trap.address : st.spill[1];
        const vm::Helper* h = helpers.find(static_cast<uint32_t>(id));
        trap.address = id;
        trap.detail = (h != nullptr ? h->name : std::string("?")) + ": " + (ctx.fault != nullptr ? ctx.fault : "fault");
    }
    return trap;
}

// The state a run or a callback starts with: frames below `top`, the first one entered.
void start_state(RunState& st, vm::CallContext& ctx, const JitProgram::Impl& impl, uintptr_t top, uint64_t budget) {
    st.stack_top = top;
    st.stack_region = vm::Region{top - vm::kStackFrameBytes, vm::kStackFrameBytes, true, "stack"};
    st.call_ctx = &ctx;
    st.helpers = &impl.helpers;
    st.budget = budget;
    ctx.stack = std::span<const vm::Region>(&st.stack_region, 1);
    ctx.checked = impl.checked;
    ctx.engine = &impl;
    ctx.invoke = &jit_invoke;
    if (impl.checked) {
        ctx.budget_left = &st.budget;
    }
}

// CallContext::invoke for JIT code: runs a function of the program on a fresh stack block, with
// the caller's memory (its stack included) readable, and reports a trap inside as the caller's.
// A checked callback spends the caller's budget.
uint64_t jit_invoke(vm::CallContext* ctx, uint64_t fn, uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4,
                    uint64_t r5) {
    const auto* impl = static_cast<const JitProgram::Impl*>(ctx->engine);
    const auto pc = static_cast<uint32_t>(fn);
    std::size_t offset = SIZE_MAX;
    for (const auto& [f, off] : impl->functions) {
        if (f == pc) {
            offset = off;
        }
    }
    if ((fn >> 32) != vm::kFunctionPointerTag || offset == SIZE_MAX) {
        ctx->fault = "the callback argument is not one of the program's functions";
        return 0;
    }
    if (ctx->callback_too_deep()) {
        return 0;
    }
    vm::StackLease lease;
    std::vector<vm::Region> regions(ctx->regions.begin(), ctx->regions.end());
    regions.insert(regions.end(), ctx->stack.begin(), ctx->stack.end());
    if (ctx->callback_region != nullptr) {
        regions.push_back(*ctx->callback_region);
    }
    vm::CallContext inner;
    inner.user = ctx->user;
    inner.runtime = ctx->runtime;
    inner.program_type = ctx->program_type;
    inner.regions = regions;
    const uint64_t budget = ctx->budget_left != nullptr ? *ctx->budget_left : ~uint64_t{0};
    RunState st;
    start_state(st, inner, *impl, lease.top(), budget);
    st.args[0] = r1;
    st.args[1] = r2;
    st.args[2] = r3;
    st.args[3] = r4;
    st.args[4] = r5;
    // The function's call entry enters the callback's frame, one deeper than its caller's
    // ([top - 512, top) of a fresh stack block).
    st.depth = ctx->depth;
    st.stack_region = vm::Region{lease.top(), 0, true, "stack"};
    st.callback_target = reinterpret_cast<uintptr_t>(static_cast<uint8_t*>(impl->memory->base()) + offset);
    const uint64_t r0 = call_entry(impl->callback_entry, &st);
    if (ctx->budget_left != nullptr) {
        *ctx->budget_left = st.budget;
    }
    if (inner.tail_call != nullptr) {
        ctx->fault = "a callback may not tail-call";
        return 0;
    }
    if (st.trap_kind != 0) {
        ctx->callback_trap = trap_of(st, inner, impl->helpers, budget);
        ctx->fault = "the callback trapped";
        return 0;
    }
    return r0;
}

vm::RunResult JitProgram::run_general(const vm::RunInput& input, uint64_t budget) const {
    vm::StackLease lease;
    vm::CallContext call_ctx;
    call_ctx.user = input.user;
    call_ctx.runtime = input.runtime;
    call_ctx.program_type = input.program_type;
    call_ctx.regions = input.regions;
    const bool checked = impl_->checked;
    const uint64_t budget_start = checked && budget != 0 ? budget : ~uint64_t{0};
    RunState st;
    start_state(st, call_ctx, *impl_, lease.top(), budget_start);
    st.args[0] = input.r1;
    st.args[1] = input.r2;
    st.args[2] = input.r3;
    st.args[3] = input.r4;
    st.args[4] = input.r5;
    st.packet = input.packet.data();
    st.packet_size = input.packet.size();

    vm::RunResult result;
    const uint64_t r0 = call_entry(impl_->entry, &st);
    if (checked) {
        result.instructions = budget_start - st.budget;
    }
    if (st.trap_kind != 0) {
        result.trap = trap_of(st, call_ctx, impl_->helpers, budget);
        return result;
    }
    if (call_ctx.tail_call != nullptr) {
        // The prog_array holds interpreter programs today: the chain continues there, in the
        // same mode and with what is left of the budget.
        vm::RunInput next = input;
        next.r1 = call_ctx.tail_call_ctx;
        const vm::RunOptions options{checked ? vm::Mode::Checked : vm::Mode::Fast,
                                     checked && budget != 0 ? std::max<uint64_t>(st.budget, 1) : 0, 1};
        vm::RunResult r = static_cast<const vm::Interpreter*>(call_ctx.tail_call)->run(next, options);
        r.instructions += result.instructions;
        return r;
    }
    result.r0 = r0;
    return result;
}

vm::RunResult JitProgram::run_buffer_general(std::span<uint8_t> buffer, uint64_t budget) const {
    const vm::Region region = vm::Region::of(buffer, "input");
    vm::RunInput input;
    input.r1 = buffer.empty() ? 0 : reinterpret_cast<uintptr_t>(buffer.data());
    input.r2 = buffer.size();
    input.regions = std::span<const vm::Region>(&region, buffer.empty() ? 0 : 1);
    input.packet = buffer;
    return run_general(input, budget);
}

bool JitProgram::checked() const {
    return impl_->checked;
}

std::size_t JitProgram::code_size() const {
    return impl_->memory->size();
}
std::size_t JitProgram::code_bytes() const {
    return impl_->code_bytes;
}
const std::string& JitProgram::listing() const {
    return impl_->listing;
}

}  // namespace bpfvm::jit
namespace bpfvm::jit {
const void* JitProgram::code() const {
    return impl_->memory->base();
}
}  // namespace bpfvm::jit
