// The kernel helpers bpfvm provides, by their uapi ids. Each checks the pointers it is given
// against the regions the program may touch when the run is checked (an unverified program); in
// a verified run the verifier has proved them.
#include <sys/syscall.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <random>
#include <span>
#include <string_view>
#include <vector>

#include "bpfvm/helpers/context.hpp"
#include "bpfvm/helpers/runtime.hpp"

namespace bpfvm::helpers {

namespace {

using vm::ArgKind;
using vm::CallContext;
using vm::HelperPrototype;
using vm::RetKind;

Runtime* runtime_of(CallContext* ctx) {
    if (ctx->runtime == nullptr) {
        ctx->fault = "the program was not linked against a runtime";
    }
    return static_cast<Runtime*>(ctx->runtime);
}

// The map a program passes in r1, or null with a fault set.
Map* map_arg(CallContext* ctx, uint64_t handle) {
    Runtime* rt = runtime_of(ctx);
    if (rt == nullptr) {
        return nullptr;
    }
    Map* m = rt->map_from_handle(handle);
    if (m == nullptr) {
        ctx->fault = "argument 1 is not a map";
    }
    return m;
}

// In a checked run: is [ptr, ptr + len) memory the program may read (or write)?
bool mem_ok(CallContext* ctx, uint64_t ptr, uint64_t len, bool write, const char* fault) {
    if (!ctx->checked || len == 0 || ctx->allowed(ptr, len, write)) {
        return true;
    }
    ctx->fault = fault;
    return false;
}

const void* ptr(uint64_t v) {
    return reinterpret_cast<const void*>(static_cast<uintptr_t>(v));
}
void* wptr(uint64_t v) {
    return reinterpret_cast<void*>(static_cast<uintptr_t>(v));
}
uint64_t neg(int errno_value) {
    return static_cast<uint64_t>(static_cast<int64_t>(-errno_value));
}

uint64_t map_lookup_elem(uint64_t map, uint64_t key, uint64_t, uint64_t, uint64_t, CallContext* ctx) {
    Map* m = map_arg(ctx, map);
    if (m == nullptr || !mem_ok(ctx, key, m->spec().key_size, false, "map_lookup_elem: key is not readable memory")) {
        return 0;
    }
    return reinterpret_cast<uintptr_t>(m->lookup(ptr(key)));
}

uint64_t map_update_elem(uint64_t map, uint64_t key, uint64_t value, uint64_t flags, uint64_t, CallContext* ctx) {
    Map* m = map_arg(ctx, map);
    if (m == nullptr || !mem_ok(ctx, key, m->spec().key_size, false, "map_update_elem: key is not readable memory") ||
        !mem_ok(ctx, value, m->spec().value_size, false, "map_update_elem: value is not readable memory")) {
        return 0;
    }
    return static_cast<uint64_t>(static_cast<int64_t>(m->update(ptr(key), ptr(value), flags)));
}

uint64_t map_delete_elem(uint64_t map, uint64_t key, uint64_t, uint64_t, uint64_t, CallContext* ctx) {
    Map* m = map_arg(ctx, map);
    if (m == nullptr || !mem_ok(ctx, key, m->spec().key_size, false, "map_delete_elem: key is not readable memory")) {
        return 0;
    }
    return static_cast<uint64_t>(static_cast<int64_t>(m->erase(ptr(key))));
}

uint64_t clock_ns(clockid_t clock) {
    timespec ts{};
    clock_gettime(clock, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

uint64_t ktime_get_ns(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, CallContext*) {
    return clock_ns(CLOCK_MONOTONIC);
}

uint64_t ktime_get_boot_ns(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, CallContext*) {
    return clock_ns(CLOCK_BOOTTIME);
}

// jiffies at HZ = 250 (Debian's kernel configuration), from the monotonic clock.
uint64_t jiffies64(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, CallContext*) {
    return clock_ns(CLOCK_MONOTONIC) / 4'000'000ull;
}

uint64_t get_prandom_u32(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, CallContext*) {
    thread_local std::mt19937 rng{std::random_device{}()};
    return rng();
}

// The calling thread's CPU slot (see maps.hpp).
uint64_t get_smp_processor_id(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, CallContext* ctx) {
    Runtime* rt = runtime_of(ctx);
    return rt == nullptr ? 0 : current_cpu(rt->options().cpus);
}

// bpf_tail_call(ctx, prog_array, index): on success the program does not come back; on failure
// (empty slot, index out of range, chain of 33 reached) it returns -ENOENT and goes on.
uint64_t tail_call(uint64_t tail_ctx, uint64_t map, uint64_t index, uint64_t, uint64_t, CallContext* ctx) {
    auto* m = dynamic_cast<HandleMap*>(map_arg(ctx, map));
    if (m == nullptr || m->spec().type != vm::MapType::ProgArray) {
        if (ctx->fault == nullptr) {
            ctx->fault = "argument 2 is not a prog_array";
        }
        return 0;
    }
    const auto i = static_cast<uint32_t>(index);
    const uint64_t target = i < m->spec().max_entries ? m->handle(&i) : 0;
    if (target == 0 || ctx->tail_calls >= vm::kMaxTailCalls) {
        return neg(kENOENT);
    }
    ctx->tail_call = reinterpret_cast<const void*>(static_cast<uintptr_t>(target));
    ctx->tail_call_ctx = tail_ctx;
    return 0;
}

uint64_t map_push_elem(uint64_t map, uint64_t value, uint64_t flags, uint64_t, uint64_t, CallContext* ctx) {
    Map* m = map_arg(ctx, map);
    if (m == nullptr ||
        !mem_ok(ctx, value, m->spec().value_size, false, "map_push_elem: value is not readable memory")) {
        return 0;
    }
    return static_cast<uint64_t>(static_cast<int64_t>(m->push(ptr(value), flags)));
}

uint64_t map_pop_elem(uint64_t map, uint64_t value, uint64_t, uint64_t, uint64_t, CallContext* ctx) {
    Map* m = map_arg(ctx, map);
    if (m == nullptr || !mem_ok(ctx, value, m->spec().value_size, true, "map_pop_elem: value is not writable memory")) {
        return 0;
    }
    return static_cast<uint64_t>(static_cast<int64_t>(m->pop(wptr(value))));
}

uint64_t map_peek_elem(uint64_t map, uint64_t value, uint64_t, uint64_t, uint64_t, CallContext* ctx) {
    Map* m = map_arg(ctx, map);
    // Bloom filters read the value to test it; queues and stacks write it.
    const bool bloom = m != nullptr && m->spec().type == vm::MapType::BloomFilter;
    if (m == nullptr ||
        !mem_ok(ctx, value, m->spec().value_size, !bloom, "map_peek_elem: value is not accessible memory")) {
        return 0;
    }
    return static_cast<uint64_t>(static_cast<int64_t>(m->peek(wptr(value))));
}

RingBuffer* ringbuf_arg(CallContext* ctx, uint64_t map) {
    auto* rb = dynamic_cast<RingBuffer*>(map_arg(ctx, map));
    if (rb == nullptr && ctx->fault == nullptr) {
        ctx->fault = "argument 1 is not a ring buffer";
    }
    return rb;
}

uint64_t ringbuf_output(uint64_t map, uint64_t data, uint64_t size, uint64_t, uint64_t, CallContext* ctx) {
    RingBuffer* rb = ringbuf_arg(ctx, map);
    if (rb == nullptr || !mem_ok(ctx, data, size, false, "ringbuf_output: data is not readable memory")) {
        return 0;
    }
    return static_cast<uint64_t>(static_cast<int64_t>(rb->output(ptr(data), size)));
}

uint64_t ringbuf_reserve(uint64_t map, uint64_t size, uint64_t flags, uint64_t, uint64_t, CallContext* ctx) {
    RingBuffer* rb = ringbuf_arg(ctx, map);
    if (rb == nullptr || flags != 0) {
        return 0;
    }
    return reinterpret_cast<uintptr_t>(rb->reserve(size));
}

// submit / discard name only the record: find the ring buffer that holds it.
uint64_t ringbuf_commit(uint64_t data, bool discard, CallContext* ctx) {
    Runtime* rt = runtime_of(ctx);
    if (rt == nullptr) {
        return 0;
    }
    for (std::size_t i = 0; i < rt->map_count(); ++i) {
        if (auto* rb = dynamic_cast<RingBuffer*>(&rt->map(i)); rb != nullptr && rb->submit(ptr(data), discard)) {
            return 0;
        }
    }
    ctx->fault = "ringbuf_submit/discard: argument 1 is not a reserved ring buffer record";
    return 0;
}

uint64_t ringbuf_submit(uint64_t data, uint64_t, uint64_t, uint64_t, uint64_t, CallContext* ctx) {
    return ringbuf_commit(data, false, ctx);
}

uint64_t ringbuf_discard(uint64_t data, uint64_t, uint64_t, uint64_t, uint64_t, CallContext* ctx) {
    return ringbuf_commit(data, true, ctx);
}

uint64_t ringbuf_query(uint64_t map, uint64_t flags, uint64_t, uint64_t, uint64_t, CallContext* ctx) {
    RingBuffer* rb = ringbuf_arg(ctx, map);
    return rb == nullptr ? 0 : rb->query(flags);
}

// bpf_perf_event_output(ctx, map, flags, data, size): flags' low 32 bits pick the CPU index,
// BPF_F_CURRENT_CPU (0xffffffff) the caller's.
uint64_t perf_event_output(uint64_t, uint64_t map, uint64_t flags, uint64_t data, uint64_t size, CallContext* ctx) {
    auto* pe = dynamic_cast<PerfEventArray*>(map_arg(ctx, map));
    if (pe == nullptr) {
        if (ctx->fault == nullptr) {
            ctx->fault = "argument 2 is not a perf event array";
        }
        return 0;
    }
    if (!mem_ok(ctx, data, size, false, "perf_event_output: data is not readable memory")) {
        return 0;
    }
    uint64_t cpu = flags & 0xffffffffu;
    if (cpu == 0xffffffffu) {
        Runtime* rt = runtime_of(ctx);
        cpu = rt == nullptr ? 0 : current_cpu(rt->options().cpus);
    }
    return static_cast<uint64_t>(static_cast<int64_t>(pe->output(cpu, ptr(data), size)));
}

uint64_t get_current_pid_tgid(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, CallContext* ctx) {
    Runtime* rt = runtime_of(ctx);
    if (rt != nullptr && rt->options().pid_tgid) {
        return *rt->options().pid_tgid;
    }
    return (static_cast<uint64_t>(getpid()) << 32) | static_cast<uint64_t>(syscall(SYS_gettid));
}

uint64_t get_current_uid_gid(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, CallContext* ctx) {
    Runtime* rt = runtime_of(ctx);
    if (rt != nullptr && rt->options().uid_gid) {
        return *rt->options().uid_gid;
    }
    return (static_cast<uint64_t>(getgid()) << 32) | getuid();
}

uint64_t get_current_comm(uint64_t buf, uint64_t size, uint64_t, uint64_t, uint64_t, CallContext* ctx) {
    if (!mem_ok(ctx, buf, size, true, "get_current_comm: buffer is not writable memory")) {
        return 0;
    }
    if (size == 0) {
        return neg(kEINVAL);
    }
    Runtime* rt = runtime_of(ctx);
    std::string comm;
    if (rt != nullptr && rt->options().comm) {
        comm = *rt->options().comm;
    } else {
        std::ifstream("/proc/self/comm") >> comm;
    }
    auto* out = static_cast<char*>(wptr(buf));
    const std::size_t n = std::min<std::size_t>(comm.size(), size - 1);
    std::memcpy(out, comm.data(), n);
    std::memset(out + n, 0, size - n);
    return 0;
}

// probe_read family: copy only from memory the sandbox allows; otherwise zero the destination
// and return -EFAULT, as the kernel does for a faulting address.
uint64_t probe_read(uint64_t dst, uint64_t size, uint64_t src, uint64_t, uint64_t, CallContext* ctx) {
    if (!mem_ok(ctx, dst, size, true, "probe_read: destination is not writable memory")) {
        return 0;
    }
    if (size == 0) {
        return 0;  // (no copy: the addresses may be null)
    }
    if (!ctx->allowed(src, size, false)) {
        std::memset(wptr(dst), 0, size);
        return neg(kEFAULT);
    }
    std::memmove(wptr(dst), ptr(src), size);
    return 0;
}

uint64_t probe_read_str(uint64_t dst, uint64_t size, uint64_t src, uint64_t, uint64_t, CallContext* ctx) {
    if (!mem_ok(ctx, dst, size, true, "probe_read_str: destination is not writable memory")) {
        return 0;
    }
    if (size == 0) {
        return 0;
    }
    auto* out = static_cast<char*>(wptr(dst));
    for (uint64_t i = 0; i + 1 < size; ++i) {
        if (!ctx->allowed(src + i, 1, false)) {
            std::memset(out, 0, size);
            return neg(kEFAULT);
        }
        out[i] = *static_cast<const char*>(ptr(src + i));
        if (out[i] == '\0') {
            return i + 1;
        }
    }
    out[size - 1] = '\0';
    return size;
}

uint64_t strncmp_helper(uint64_t s1, uint64_t s1_size, uint64_t s2, uint64_t, uint64_t, CallContext* ctx) {
    if (!mem_ok(ctx, s1, s1_size, false, "strncmp: s1 is not readable memory")) {
        return 0;
    }
    for (uint64_t i = 0; i < s1_size; ++i) {
        if (!mem_ok(ctx, s2 + i, 1, false, "strncmp: s2 is not a readable string")) {
            return 0;
        }
        const auto a = *static_cast<const unsigned char*>(ptr(s1 + i));
        const auto b = *static_cast<const unsigned char*>(ptr(s2 + i));
        if (a != b) {
            return a < b ? static_cast<uint64_t>(-1) : 1;
        }
        if (a == 0) {
            return 0;
        }
    }
    return 0;
}

// csum_diff: the 32-bit ones'-complement sum of `to` minus that of `from`, plus seed.
uint64_t csum_diff(uint64_t from, uint64_t from_size, uint64_t to, uint64_t to_size, uint64_t seed, CallContext* ctx) {
    if (from_size % 4 != 0 || to_size % 4 != 0 || from_size > 512 || to_size > 512) {
        return neg(kEINVAL);
    }
    if (!mem_ok(ctx, from, from_size, false, "csum_diff: from is not readable memory") ||
        !mem_ok(ctx, to, to_size, false, "csum_diff: to is not readable memory")) {
        return 0;
    }
    uint64_t sum = static_cast<uint32_t>(seed);
    for (uint64_t i = 0; i < from_size; i += 4) {
        uint32_t w;
        std::memcpy(&w, ptr(from + i), 4);
        sum += static_cast<uint32_t>(~w);
    }
    for (uint64_t i = 0; i < to_size; i += 4) {
        uint32_t w;
        std::memcpy(&w, ptr(to + i), 4);
        sum += w;
    }
    while ((sum >> 32) != 0) {
        sum = (sum & 0xffffffffu) + (sum >> 32);
    }
    return sum;
}

// The bpf_printk / bpf_snprintf format language: %d %i %u %x %X %p %c %s %% with l / ll / h
// modifiers; each conversion takes the next argument. -EINVAL for anything else, or when the
// arguments run out.
int format_bpf(std::string_view f, std::span<const uint64_t> args, CallContext* ctx, std::string& out) {
    std::size_t next = 0;
    for (std::size_t i = 0; i < f.size() && f[i] != '\0'; ++i) {
        if (f[i] != '%') {
            out += f[i];
            continue;
        }
        std::size_t j = i + 1;
        unsigned longs = 0;
        while (j < f.size() && (f[j] == 'l' || f[j] == 'h')) {
            longs += f[j] == 'l' ? 1 : 0;
            ++j;
        }
        if (j >= f.size()) {
            return -kEINVAL;
        }
        const char conv = f[j];
        i = j;
        if (conv == '%') {
            out += '%';
            continue;
        }
        if (next == args.size()) {
            return -kEINVAL;
        }
        const uint64_t v = args[next++];
        const auto wide = static_cast<unsigned long long>(longs >= 1 ? v : static_cast<uint32_t>(v));
        char buf[64];
        switch (conv) {
            case 'd':
            case 'i':
                std::snprintf(buf, sizeof buf, "%lld",
                              longs >= 1 ? static_cast<long long>(v) : static_cast<long long>(static_cast<int32_t>(v)));
                break;
            case 'u':
                std::snprintf(buf, sizeof buf, "%llu", wide);
                break;
            case 'x':
            case 'X':
                std::snprintf(buf, sizeof buf, conv == 'x' ? "%llx" : "%llX", wide);
                break;
            case 'p':
                std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
                break;
            case 'c':
                buf[0] = static_cast<char>(v);
                buf[1] = '\0';
                break;
            case 's':
                // Strings are read only from memory the program may read.
                buf[0] = '\0';
                for (uint64_t k = 0; k < 256 && ctx->allowed(v + k, 1, false); ++k) {
                    const char c = *static_cast<const char*>(ptr(v + k));
                    if (c == '\0') {
                        break;
                    }
                    out += c;
                }
                break;
            default:
                return -kEINVAL;
        }
        out += buf;
    }
    return 0;
}

// bpf_trace_printk(fmt, fmt_size, a1, a2, a3): a line for the runtime's trace sink.
uint64_t trace_printk(uint64_t fmt, uint64_t fmt_size, uint64_t a1, uint64_t a2, uint64_t a3, CallContext* ctx) {
    if (!mem_ok(ctx, fmt, fmt_size, false, "trace_printk: format is not readable memory")) {
        return 0;
    }
    Runtime* rt = runtime_of(ctx);
    if (rt == nullptr) {
        return 0;
    }
    const uint64_t args[3] = {a1, a2, a3};
    std::string out;
    if (const int r = format_bpf({static_cast<const char*>(ptr(fmt)), fmt_size}, args, ctx, out); r != 0) {
        return neg(-r);
    }
    while (!out.empty() && out.back() == '\n') {
        out.pop_back();
    }
    rt->trace(out);
    return out.size() + 1;
}

// bpf_snprintf(str, str_size, fmt, data, data_len): data holds the u64 arguments (at most 12);
// returns the length the whole output needs, NUL included, and writes at most str_size bytes.
uint64_t snprintf_helper(uint64_t str, uint64_t str_size, uint64_t fmt, uint64_t data, uint64_t data_len,
                         CallContext* ctx) {
    if (data_len % 8 != 0 || data_len > 12 * 8) {
        return neg(kEINVAL);
    }
    if (!mem_ok(ctx, str, str_size, true, "snprintf: destination is not writable memory") ||
        !mem_ok(ctx, data, data_len, false, "snprintf: arguments are not readable memory")) {
        return 0;
    }
    std::string f;
    for (uint64_t k = 0;; ++k) {
        if (!mem_ok(ctx, fmt + k, 1, false, "snprintf: format is not a readable string")) {
            return 0;
        }
        const char c = *static_cast<const char*>(ptr(fmt + k));
        if (c == '\0') {
            break;
        }
        f += c;
    }
    std::vector<uint64_t> args(data_len / 8);
    if (data_len != 0) {
        std::memcpy(args.data(), ptr(data), data_len);  // (with none, data may be null)
    }
    std::string out;
    if (const int r = format_bpf(f, args, ctx, out); r != 0) {
        return neg(-r);
    }
    if (str_size > 0) {
        const std::size_t n = std::min<std::size_t>(out.size(), str_size - 1);
        if (n != 0) {
            std::memcpy(wptr(str), out.data(), n);
        }
        static_cast<char*>(wptr(str))[n] = '\0';
    }
    return out.size() + 1;
}

// bpf_strtol / bpf_strtoul(buf, buf_len, flags, res): flags' low 5 bits are the base (0 = by
// prefix); leading white space and (strtol) one '-' are accepted. Returns the characters used,
// -EINVAL without digits, -ERANGE on overflow.
uint64_t parse_number(uint64_t buf, uint64_t buf_len, uint64_t flags, uint64_t res, bool is_signed, CallContext* ctx) {
    if (!mem_ok(ctx, buf, buf_len, false, "strtol: buffer is not readable memory") ||
        !mem_ok(ctx, res, 8, true, "strtol: result is not writable memory")) {
        return 0;
    }
    if ((flags & ~uint64_t{0x1f}) != 0) {
        return neg(kEINVAL);
    }
    const std::string_view s(static_cast<const char*>(ptr(buf)), buf_len);
    std::size_t i = 0;
    while (i < s.size() && (s[i] == ' ' || (s[i] >= '\t' && s[i] <= '\r'))) {
        ++i;
    }
    bool negative = false;
    if (is_signed && i < s.size() && s[i] == '-') {
        negative = true;
        ++i;
    }
    unsigned base = static_cast<unsigned>(flags & 0x1f);
    if ((base == 0 || base == 16) && i + 1 < s.size() && s[i] == '0' && (s[i + 1] == 'x' || s[i + 1] == 'X')) {
        base = 16;
        i += 2;
    } else if (base == 0) {
        base = i < s.size() && s[i] == '0' ? 8 : 10;
    }
    if (base != 8 && base != 10 && base != 16) {
        return neg(kEINVAL);
    }
    uint64_t value = 0;
    const std::size_t digits_start = i;
    for (; i < s.size(); ++i) {
        const char c = s[i];
        const unsigned d = c >= '0' && c <= '9'   ? unsigned(c - '0')
                           : c >= 'a' && c <= 'f' ? unsigned(c - 'a' + 10)
                           : c >= 'A' && c <= 'F' ? unsigned(c - 'A' + 10)
                                                  : 99;
        if (d >= base) {
            break;
        }
        if (value > (UINT64_MAX - d) / base) {
            return neg(34);  // -ERANGE
        }
        value = value * base + d;
    }
    if (i == digits_start) {
        return neg(kEINVAL);
    }
    if (is_signed) {
        if (value > (negative ? uint64_t{1} << 63 : (uint64_t{1} << 63) - 1)) {
            return neg(34);
        }
        value = negative ? 0 - value : value;
    }
    std::memcpy(wptr(res), &value, 8);
    return i;
}

uint64_t strtol_helper(uint64_t buf, uint64_t len, uint64_t flags, uint64_t res, uint64_t, CallContext* ctx) {
    return parse_number(buf, len, flags, res, true, ctx);
}

uint64_t strtoul_helper(uint64_t buf, uint64_t len, uint64_t flags, uint64_t res, uint64_t, CallContext* ctx) {
    return parse_number(buf, len, flags, res, false, ctx);
}

// bpf_for_each_map_elem(map, callback, ctx, flags): callback(map, &key, &value, ctx) for every
// element until it returns 1; returns the number of elements visited.
uint64_t for_each_map_elem(uint64_t map, uint64_t callback, uint64_t callback_ctx, uint64_t flags, uint64_t,
                           CallContext* ctx) {
    Map* m = map_arg(ctx, map);
    if (m == nullptr) {
        return 0;
    }
    if (flags != 0 || m->spec().key_size == 0) {
        return neg(kEINVAL);
    }
    if (ctx->invoke == nullptr) {
        ctx->fault = "this engine cannot run callbacks";
        return 0;
    }
    // The callback reads the key from a copy the helper lends it for the call.
    std::vector<uint8_t> key(m->spec().key_size);
    std::vector<uint8_t> next(m->spec().key_size);
    const vm::Region key_region{reinterpret_cast<uintptr_t>(key.data()), key.size(), false, "map key"};
    const void* cursor = nullptr;
    uint64_t visited = 0;
    for (uint64_t guard = 0; guard <= m->spec().max_entries && m->next_key(cursor, next.data()) == 0; ++guard) {
        key = next;
        cursor = key.data();
        void* value = m->lookup(key.data());
        if (value == nullptr) {
            continue;
        }
        ++visited;
        ctx->callback_region = &key_region;
        const uint64_t r = ctx->invoke(ctx, callback, map, reinterpret_cast<uintptr_t>(key.data()),
                                       reinterpret_cast<uintptr_t>(value), callback_ctx, 0);
        ctx->callback_region = nullptr;
        if (ctx->fault != nullptr || r == 1) {
            break;
        }
    }
    return visited;
}

// ---- XDP: moving the packet's start, end and metadata inside its frame --------------------

constexpr uint64_t kXdpFrameHeader = 40;  // sizeof(struct xdp_frame), kept free at the frame start
constexpr uint64_t kEthHeader = 14;

XdpContext* xdp_arg(CallContext* ctx, uint64_t p) {
    if (!mem_ok(ctx, p, sizeof(XdpContext), false, "argument 1 is not the XDP context")) {
        return nullptr;
    }
    auto* x = static_cast<XdpContext*>(wptr(p));
    if (x->magic != XdpContext::kMagic) {
        ctx->fault = "argument 1 is not the XDP context";
        return nullptr;
    }
    return x;
}

uint64_t xdp_adjust_head(uint64_t xdp, uint64_t delta, uint64_t, uint64_t, uint64_t, CallContext* ctx) {
    XdpContext* x = xdp_arg(ctx, xdp);
    if (x == nullptr) {
        return 0;
    }
    const int64_t off = static_cast<int32_t>(delta);
    const uint64_t metalen = x->data - x->data_meta;
    const uint64_t data = x->data + static_cast<uint64_t>(off);
    if (data < x->frame_start + kXdpFrameHeader + metalen || data > x->data_end - kEthHeader) {
        return neg(kEINVAL);
    }
    if (metalen != 0) {
        std::memmove(wptr(x->data_meta + static_cast<uint64_t>(off)), ptr(x->data_meta), metalen);
    }
    x->data_meta += static_cast<uint64_t>(off);
    x->data = data;
    return 0;
}

uint64_t xdp_adjust_tail(uint64_t xdp, uint64_t delta, uint64_t, uint64_t, uint64_t, CallContext* ctx) {
    XdpContext* x = xdp_arg(ctx, xdp);
    if (x == nullptr) {
        return 0;
    }
    const int64_t off = static_cast<int32_t>(delta);
    auto* frags = reinterpret_cast<XdpFrags*>(x->frags);
    if (frags != nullptr && !frags->frags.empty()) {
        // A multi-buffer packet, as the kernel treats one: growing extends the last fragment
        // (within its page); shrinking takes from the fragments first, then the linear part,
        // and leaves at least an Ethernet header.
        if (off > 0) {
            std::vector<uint8_t>& last = frags->frags.back();
            if (last.size() + static_cast<uint64_t>(off) > XdpFrags::kFragSize) {
                return neg(kEINVAL);
            }
            last.resize(last.size() + static_cast<std::size_t>(off), 0);
            return 0;
        }
        uint64_t shrink = static_cast<uint64_t>(-off);
        if (shrink + kEthHeader > (x->data_end - x->data) + frags->bytes()) {
            return neg(kEINVAL);
        }
        while (shrink > 0 && !frags->frags.empty()) {
            std::vector<uint8_t>& last = frags->frags.back();
            const uint64_t take = std::min<uint64_t>(shrink, last.size());
            last.resize(last.size() - static_cast<std::size_t>(take));
            shrink -= take;
            if (last.empty()) {
                frags->frags.pop_back();
            }
        }
        x->data_end -= shrink;
        return 0;
    }
    const uint64_t end = x->data_end + static_cast<uint64_t>(off);
    if (end > x->frame_end || end < x->data + kEthHeader) {
        return neg(kEINVAL);
    }
    if (off > 0) {
        std::memset(wptr(x->data_end), 0, static_cast<std::size_t>(off));
    }
    x->data_end = end;
    return 0;
}

// bpf_xdp_get_buff_len(xdp): the packet's length, fragments included.
uint64_t xdp_get_buff_len(uint64_t xdp, uint64_t, uint64_t, uint64_t, uint64_t, CallContext* ctx) {
    XdpContext* x = xdp_arg(ctx, xdp);
    if (x == nullptr) {
        return 0;
    }
    const auto* frags = reinterpret_cast<const XdpFrags*>(x->frags);
    return (x->data_end - x->data) + (frags != nullptr ? frags->bytes() : 0);
}

uint64_t xdp_adjust_meta(uint64_t xdp, uint64_t delta, uint64_t, uint64_t, uint64_t, CallContext* ctx) {
    XdpContext* x = xdp_arg(ctx, xdp);
    if (x == nullptr) {
        return 0;
    }
    const uint64_t meta = x->data_meta + static_cast<uint64_t>(static_cast<int64_t>(static_cast<int32_t>(delta)));
    if (meta < x->frame_start + kXdpFrameHeader || meta > x->data) {
        return neg(kEINVAL);
    }
    const uint64_t metalen = x->data - meta;
    if (metalen % 4 != 0 || metalen > 32) {
        return neg(13);  // -EACCES
    }
    x->data_meta = meta;
    return 0;
}

// bpf_skb_load_bytes(skb, offset, to, len): copy from the packet data; -EFAULT when out of range.
uint64_t skb_load_bytes(uint64_t skb, uint64_t offset, uint64_t to, uint64_t len, uint64_t, CallContext* ctx) {
    // bpfvm's part of the context (pointers, magic) is its own read-only region.
    constexpr uint64_t kOwn = offsetof(SkbContext, data);
    if (!mem_ok(ctx, skb + kOwn, sizeof(SkbContext) - kOwn, false, "argument 1 is not the __sk_buff context") ||
        !mem_ok(ctx, to, len, true, "skb_load_bytes: destination is not writable memory")) {
        return 0;
    }
    const auto* s = static_cast<const SkbContext*>(ptr(skb));
    if (s->magic != SkbContext::kMagic) {
        ctx->fault = "argument 1 is not the __sk_buff context";
        return 0;
    }
    const uint64_t size = s->data_end - s->data;
    const auto off = static_cast<uint32_t>(offset);
    if (len == 0 || off > size || len > size - off) {
        if (len != 0) {
            std::memset(wptr(to), 0, len);
        }
        return neg(kEFAULT);
    }
    if (!mem_ok(ctx, s->data + off, len, false, "skb_load_bytes: the skb's data is not readable memory")) {
        return 0;
    }
    std::memcpy(wptr(to), ptr(s->data + off), len);
    return 0;
}

// bpf_loop(nr_loops, callback, ctx, flags): callback(i, ctx) for i = 0.. until it returns 1.
uint64_t loop(uint64_t nr_loops, uint64_t callback, uint64_t callback_ctx, uint64_t flags, uint64_t, CallContext* ctx) {
    if (flags != 0) {
        return neg(kEINVAL);
    }
    if (nr_loops > (uint64_t{1} << 23)) {
        return neg(kE2BIG);
    }
    if (ctx->invoke == nullptr) {
        ctx->fault = "this engine cannot run callbacks";
        return 0;
    }
    uint64_t i = 0;
    while (i < nr_loops) {
        const uint64_t r = ctx->invoke(ctx, callback, i, callback_ctx, 0, 0, 0);
        ++i;
        if (ctx->fault != nullptr || r == 1) {
            break;
        }
    }
    return i;
}

// bpf_redirect(ifindex, flags): the verdict that sends the packet to another interface. XDP:
// XDP_REDIRECT, or XDP_ABORTED for bad flags; tc: TC_ACT_REDIRECT, or TC_ACT_SHOT for flags other
// than BPF_F_INGRESS. The target is recorded for the embedder (Runtime::last_redirect).
uint64_t redirect(uint64_t ifindex, uint64_t flags, uint64_t, uint64_t, uint64_t, CallContext* ctx) {
    Runtime* rt = runtime_of(ctx);
    if (rt == nullptr) {
        return 0;
    }
    if (ctx->program_type == vm::ProgramType::Xdp) {
        if (flags != 0) {
            return 0;  // XDP_ABORTED
        }
        rt->record_redirect(static_cast<uint32_t>(ifindex), flags);
        return 4;  // XDP_REDIRECT
    }
    if ((flags & ~uint64_t{1}) != 0) {
        return 2;  // TC_ACT_SHOT
    }
    rt->record_redirect(static_cast<uint32_t>(ifindex), flags);
    return 7;  // TC_ACT_REDIRECT
}

HelperPrototype proto(RetKind ret, std::initializer_list<ArgKind> args) {
    HelperPrototype p;
    p.ret = ret;
    p.args.fill(ArgKind::None);
    std::size_t i = 0;
    for (ArgKind a : args) {
        p.args[i++] = a;
    }
    return p;
}

}  // namespace

void add_kernel_helpers(vm::HelperTable& t) {
    using A = ArgKind;
    using R = RetKind;
    struct Entry {
        uint32_t id;
        const char* name;
        vm::HelperFn fn;
        HelperPrototype proto;
    };
    const Entry entries[] = {
        {1, "map_lookup_elem", map_lookup_elem, proto(R::MapValueOrNull, {A::MapHandle, A::MapKey})},
        {2, "map_update_elem", map_update_elem, proto(R::Integer, {A::MapHandle, A::MapKey, A::MapValue, A::Scalar})},
        {3, "map_delete_elem", map_delete_elem, proto(R::Integer, {A::MapHandle, A::MapKey})},
        {4, "probe_read", probe_read, proto(R::Integer, {A::WritableMem, A::SizeOrZero, A::Anything})},
        {5, "ktime_get_ns", ktime_get_ns, proto(R::Integer, {})},
        {6, "trace_printk", trace_printk,
         proto(R::Integer, {A::ReadableMem, A::Size, A::Anything, A::Anything, A::Anything})},
        {7, "get_prandom_u32", get_prandom_u32, proto(R::Integer, {})},
        {8, "get_smp_processor_id", get_smp_processor_id, proto(R::Integer, {})},
        {14, "get_current_pid_tgid", get_current_pid_tgid, proto(R::Integer, {})},
        {15, "get_current_uid_gid", get_current_uid_gid, proto(R::Integer, {})},
        {16, "get_current_comm", get_current_comm, proto(R::Integer, {A::WritableMem, A::Size})},
        {12, "tail_call", tail_call, proto(R::Integer, {A::Context, A::MapHandle, A::Scalar})},
        {25, "perf_event_output", perf_event_output,
         proto(R::Integer, {A::Context, A::MapHandle, A::Scalar, A::ReadableMem, A::Size})},
        {87, "map_push_elem", map_push_elem, proto(R::Integer, {A::MapHandle, A::MapValue, A::Scalar})},
        {88, "map_pop_elem", map_pop_elem, proto(R::Integer, {A::MapHandle, A::WritableMem})},
        {89, "map_peek_elem", map_peek_elem, proto(R::Integer, {A::MapHandle, A::WritableMem})},
        {130, "ringbuf_output", ringbuf_output, proto(R::Integer, {A::MapHandle, A::ReadableMem, A::Size, A::Scalar})},
        {131, "ringbuf_reserve", ringbuf_reserve, proto(R::MemOrNull, {A::MapHandle, A::Scalar, A::Scalar})},
        {132, "ringbuf_submit", ringbuf_submit, proto(R::Void, {A::Anything, A::Scalar})},
        {133, "ringbuf_discard", ringbuf_discard, proto(R::Void, {A::Anything, A::Scalar})},
        {134, "ringbuf_query", ringbuf_query, proto(R::Integer, {A::MapHandle, A::Scalar})},
        {23, "redirect", redirect, proto(R::Integer, {A::Scalar, A::Scalar})},
        {26, "skb_load_bytes", skb_load_bytes, proto(R::Integer, {A::Context, A::Scalar, A::WritableMem, A::Size})},
        {105, "strtol", strtol_helper, proto(R::Integer, {A::ReadableMem, A::Size, A::Scalar, A::WritableMem})},
        {106, "strtoul", strtoul_helper, proto(R::Integer, {A::ReadableMem, A::Size, A::Scalar, A::WritableMem})},
        {164, "for_each_map_elem", for_each_map_elem,
         proto(R::Integer, {A::MapHandle, A::Function, A::Anything, A::Scalar})},
        {165, "snprintf", snprintf_helper,
         proto(R::Integer, {A::WritableMem, A::SizeOrZero, A::ReadableMem, A::ReadableMem, A::SizeOrZero})},
        {181, "loop", loop, proto(R::Integer, {A::Scalar, A::Function, A::Anything, A::Scalar})},
        {44, "xdp_adjust_head", xdp_adjust_head, proto(R::Integer, {A::Context, A::Scalar})},
        {54, "xdp_adjust_meta", xdp_adjust_meta, proto(R::Integer, {A::Context, A::Scalar})},
        {65, "xdp_adjust_tail", xdp_adjust_tail, proto(R::Integer, {A::Context, A::Scalar})},
        {188, "xdp_get_buff_len", xdp_get_buff_len, proto(R::Integer, {A::Context})},
        {28, "csum_diff", csum_diff,
         proto(R::Integer, {A::ReadableMem, A::SizeOrZero, A::ReadableMem, A::SizeOrZero, A::Scalar})},
        {45, "probe_read_str", probe_read_str, proto(R::Integer, {A::WritableMem, A::SizeOrZero, A::Anything})},
        {112, "probe_read_user", probe_read, proto(R::Integer, {A::WritableMem, A::SizeOrZero, A::Anything})},
        {113, "probe_read_kernel", probe_read, proto(R::Integer, {A::WritableMem, A::SizeOrZero, A::Anything})},
        {114, "probe_read_user_str", probe_read_str, proto(R::Integer, {A::WritableMem, A::SizeOrZero, A::Anything})},
        {115, "probe_read_kernel_str", probe_read_str, proto(R::Integer, {A::WritableMem, A::SizeOrZero, A::Anything})},
        {118, "jiffies64", jiffies64, proto(R::Integer, {})},
        {125, "ktime_get_boot_ns", ktime_get_boot_ns, proto(R::Integer, {})},
        {182, "strncmp", strncmp_helper, proto(R::Integer, {A::ReadableMem, A::Size, A::Anything})},
    };
    for (const Entry& e : entries) {
        (void)t.add(e.id, e.name, e.fn, e.proto);
    }
}

}  // namespace bpfvm::helpers
