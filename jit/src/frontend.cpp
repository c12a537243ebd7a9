#include "frontend.hpp"

#include <pthread.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

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

// Code is written where no mapping is writable: into a memory file (memfd) with pwrite, which
// the process maps read-execute only. No page is ever writable and executable, there is no
// writable alias to find, and a compile costs one pwrite instead of two mprotects and the TLB
// flushes they bring (most of a small program's compile time); freeing code is bookkeeping.
// Programs share the file's chunks, at 64-byte granularity.
//
// A chunk's pages are shared with every child forked while it exists (MAP_SHARED): from a fork
// on, neither process writes into the chunks that existed before it (they only run and free
// what is there; a chunk goes once its last program is freed), so code a child inherited never
// changes under it. (A fork that skips pthread_atfork, a raw clone, is not covered.)
class CodePool {
public:
    struct Chunk {
        int fd = -1;
        uint8_t* base = nullptr;
        std::size_t size = 0;
        uint64_t generation = 0;  // the forks seen when it was made: older chunks are frozen
        std::size_t live = 0;     // allocations not released
        std::vector<std::pair<std::size_t, std::size_t>> free;  // (offset, length), ascending, coalesced
    };

    static CodePool& instance() {
        static CodePool* pool = [] {
            auto* p = new CodePool;  // (never destroyed: code may run until the process ends)
            pthread_atfork([] { instance().mutex_.lock(); }, &after_fork, &after_fork);
            return p;
        }();
        return *pool;
    }

    // Writes `code` into read-execute memory: its address, with where it lies; null if the pool
    // cannot (no memory files, or their mapping for execution is refused).
    void* place(std::span<const uint8_t> code, Chunk*& chunk, std::size_t& offset, std::size_t& reserved) {
        reserved = (std::max<std::size_t>(code.size(), 1) + kGrain - 1) / kGrain * kGrain;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (unavailable_) {
                return nullptr;
            }
            chunk = nullptr;
            for (const auto& c : chunks_) {
                if (c->generation == generation_ && take(*c, reserved, offset)) {
                    chunk = c.get();
                    break;
                }
            }
            if (chunk == nullptr) {
                chunk = grow(reserved);
                if (chunk == nullptr || !take(*chunk, reserved, offset)) {
                    return nullptr;
                }
            }
            ++chunk->live;
        }
        // Written outside the lock: the range is this compile's alone.
        std::size_t done = 0;
        while (done < code.size()) {
            const ssize_t w = pwrite(chunk->fd, code.data() + done, code.size() - done, static_cast<off_t>(offset + done));
            if (w < 0 && errno == EINTR) {
                continue;
            }
            if (w <= 0) {
                release(chunk, offset, reserved);
                return nullptr;
            }
            done += static_cast<std::size_t>(w);
        }
        uint8_t* at = chunk->base + offset;
#if !defined(__x86_64__) && !defined(__i386__)
        __builtin___clear_cache(reinterpret_cast<char*>(at), reinterpret_cast<char*>(at + code.size()));
#endif
        return at;
    }

    void release(Chunk* chunk, std::size_t offset, std::size_t reserved) {
        std::lock_guard<std::mutex> lock(mutex_);
        --chunk->live;
        const bool frozen = chunk->generation != generation_;
        if (!frozen) {
            give(*chunk, offset, reserved);
        }
        // An empty chunk goes if it is frozen, or if another current chunk remains.
        if (chunk->live == 0 && (frozen || current_chunks() > 1)) {
            munmap(chunk->base, chunk->size);
            close(chunk->fd);
            chunks_.erase(std::find_if(chunks_.begin(), chunks_.end(), [&](const auto& c) { return c.get() == chunk; }));
        }
    }

private:
    static constexpr std::size_t kGrain = 64;                     // code starts on a cache line
    static constexpr std::size_t kChunkBytes = std::size_t{1} << 20;  // address space; pages as written

    static void after_fork() {
        CodePool& pool = instance();
        ++pool.generation_;
        pool.mutex_.unlock();
    }

    // A new chunk for at least `bytes`, or null (then the pool is marked unavailable if it never
    // worked: this kernel or sandbox refuses memory files, or executing them).
    Chunk* grow(std::size_t bytes) {
        const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
        const std::size_t size = std::max(kChunkBytes, (bytes + page - 1) / page * page);
        const int fd = memfd_create("bpfvm-jit", MFD_CLOEXEC);
        void* base = MAP_FAILED;
        if (fd >= 0 && ftruncate(fd, static_cast<off_t>(size)) == 0) {
            base = mmap(near_here(size, page), size, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0);
        }
        if (base == MAP_FAILED) {
            if (fd >= 0) {
                close(fd);
            }
            unavailable_ = unavailable_ || chunks_.empty();
            return nullptr;
        }
        auto c = std::make_unique<Chunk>();
        c->fd = fd;
        c->base = static_cast<uint8_t*>(base);
        c->size = size;
        c->generation = generation_;
        c->free.emplace_back(0, size);
        chunks_.push_back(std::move(c));
        return chunks_.back().get();
    }

    // Where to ask for a chunk (a hint: the kernel maps elsewhere if the place is taken): a random
    // place 256 MiB to 1 GiB below this library's code, so that the program that calls the code,
    // and the helpers the code calls, are within 2 GiB of it. A call to code further away, and its
    // return, cost about 0.9 ns more on the Intel cores we measure than a call to a neighbour
    // (`xor eax, eax; ret` called in a loop: 3.0 ns far away, 2.1 ns 64 MiB away, as a native
    // function). The place is random, as the kernel's would be. Null (anywhere) when the code is
    // too low in memory for such a place.
    void* near_here(std::size_t size, std::size_t page) {
        const auto here = reinterpret_cast<uintptr_t>(&CodePool::instance);
        constexpr uintptr_t kMiB = uintptr_t{1} << 20;
        if (here < 1024 * kMiB + size) {
            return nullptr;
        }
        if (hint_ == 0) {
            uint64_t r = 0;
            if (getrandom(&r, sizeof r, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof r)) {
                r = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(&r)) ^ static_cast<uint64_t>(time(nullptr));
            }
            hint_ = here - 256 * kMiB - static_cast<uintptr_t>(r % (768 * kMiB - size));
        }
        // Chunks one below another, from the first one's place.
        if (hint_ < size + 64 * kMiB) {
            return nullptr;
        }
        hint_ = (hint_ - size) & ~(static_cast<uintptr_t>(page) - 1);
        return reinterpret_cast<void*>(hint_);
    }
    uintptr_t hint_ = 0;

    // First fit.
    static bool take(Chunk& c, std::size_t bytes, std::size_t& offset) {
        for (std::size_t i = 0; i < c.free.size(); ++i) {
            auto& [at, len] = c.free[i];
            if (len >= bytes) {
                offset = at;
                at += bytes;
                len -= bytes;
                if (len == 0) {
                    c.free.erase(c.free.begin() + static_cast<std::ptrdiff_t>(i));
                }
                return true;
            }
        }
        return false;
    }

    // Returns a range, merged with its free neighbours.
    static void give(Chunk& c, std::size_t offset, std::size_t bytes) {
        auto it = std::lower_bound(c.free.begin(), c.free.end(), std::make_pair(offset, std::size_t{0}));
        it = c.free.insert(it, {offset, bytes});
        if (it + 1 != c.free.end() && it->first + it->second == (it + 1)->first) {
            it->second += (it + 1)->second;
            c.free.erase(it + 1);
        }
        if (it != c.free.begin() && (it - 1)->first + (it - 1)->second == it->first) {
            (it - 1)->second += it->second;
            c.free.erase(it);
        }
    }

    std::size_t current_chunks() const {
        return static_cast<std::size_t>(std::count_if(chunks_.begin(), chunks_.end(),
                                                      [&](const auto& c) { return c->generation == generation_; }));
    }

    std::mutex mutex_;
    std::vector<std::unique_ptr<Chunk>> chunks_;
    uint64_t generation_ = 0;  // forks seen (changed only in fork handlers, under the mutex)
    bool unavailable_ = false;
};

// Where memory files cannot be used: an anonymous mapping written while read-write, then
// switched to read-execute (never both). It has an inaccessible page on each side: no
// neighbouring mapping ever has its protection, so the kernel never merges it with one, and
// switching the whole mapping needs no split of a larger area.
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

}  // namespace

Expected<std::unique_ptr<ExecutableMemory>> ExecutableMemory::create(std::span<const uint8_t> code) {
    CodePool::Chunk* chunk = nullptr;
    std::size_t offset = 0;
    std::size_t reserved = 0;
    if (void* at = CodePool::instance().place(code, chunk, offset, reserved); at != nullptr) {
        return std::unique_ptr<ExecutableMemory>(new ExecutableMemory(at, reserved, chunk, offset));
    }
    const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    const std::size_t size = (std::max<std::size_t>(code.size(), 1) + page - 1) / page * page;
    void* base = map_code(size, page);
    if (base == nullptr) {
        return make_error("jit", "cannot map " + std::to_string(size) + " bytes for code");
    }
    std::memcpy(base, code.data(), code.size());
    // Writable, then executable: never both.
    if (mprotect(base, size, PROT_READ | PROT_EXEC) != 0) {
        unmap_code(base, size);
        return make_error("jit", "cannot make the code executable");
    }
    return std::unique_ptr<ExecutableMemory>(new ExecutableMemory(base, size, nullptr, 0));
}

ExecutableMemory::~ExecutableMemory() {
    if (chunk_ != nullptr) {
        CodePool::instance().release(static_cast<CodePool::Chunk*>(chunk_), offset_, size_);
    } else {
        unmap_code(base_, size_);
    }
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
    std::vector<std::pair<uint32_t, uint32_t>> helper_calls;   // (pc, helper id), by pc
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
    // Each lddw (found by its tail slot: a byte scan, not a pass over the instructions).
    const uint8_t* const begin = program.tails().data();
    const uint8_t* const end = begin + program.tails().size();
    for (const uint8_t* t = begin;
         t < end && (t = static_cast<const uint8_t*>(std::memchr(t, 1, static_cast<std::size_t>(end - t)))) != nullptr;
         ++t) {
        const auto pc = static_cast<std::size_t>(t - begin) - 1;
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
        compiled->callback_entry == SIZE_MAX
            ? nullptr
            : reinterpret_cast<EntryFn>(static_cast<uint8_t*>(impl->memory->base()) + compiled->callback_entry);
    impl->functions = std::move(compiled->functions);
    impl->helper_calls = std::move(compiled->helper_calls);
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

vm::Trap trap_of(const RunState& st, vm::CallContext& ctx, const JitProgram::Impl& impl, uint64_t budget) {
    const vm::HelperTable& helpers = impl.helpers;
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
        // The call's helper (a callx's: the one bpfvm_jit_callx found, in spill[1]).
        const auto call = std::lower_bound(impl.helper_calls.begin(), impl.helper_calls.end(),
                                           std::pair<uint32_t, uint32_t>{trap.pc, 0});
        const bool direct = call != impl.helper_calls.end() && call->first == trap.pc;
        const uint64_t id = direct ? call->second : st.spill[1];
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
    if (impl->callback_entry == nullptr) {
        ctx->fault = vm::kNoCallbacks;
        return 0;
    }
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
        ctx->callback_trap = trap_of(st, inner, *impl, budget);
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
    st.packet_size = std::min<uint64_t>(input.packet.size(), vm::kPacketReach);

    vm::RunResult result;
    const uint64_t r0 = call_entry(impl_->entry, &st);
    if (checked) {
        result.instructions = budget_start - st.budget;
    }
    if (st.trap_kind != 0) {
        result.trap = trap_of(st, call_ctx, *impl_, budget);
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
