// Syscall programs (ctx = a buffer) exercising the map types and their helpers; the test drives
// each one and checks what it left in the maps.
#include "bpf_common.h"

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_tail_call)(void *ctx, void *map, u32 index) = (void *)12;
static long (*bpf_map_push_elem)(void *map, const void *value, u64 flags) = (void *)87;
static long (*bpf_map_pop_elem)(void *map, void *value) = (void *)88;
static long (*bpf_map_peek_elem)(void *map, void *value) = (void *)89;
static void *(*bpf_ringbuf_reserve)(void *ringbuf, u64 size, u64 flags) = (void *)131;
static void (*bpf_ringbuf_submit)(void *data, u64 flags) = (void *)132;
static void (*bpf_ringbuf_discard)(void *data, u64 flags) = (void *)133;
static long (*bpf_ringbuf_output)(void *ringbuf, void *data, u64 size, u64 flags) = (void *)130;

struct lpm_key {
    u32 prefixlen;
    u8 addr[4];
};

struct {
    __uint(type, 11);  // LPM_TRIE
    __uint(max_entries, 16);
    __uint(map_flags, 1);  // BPF_F_NO_PREALLOC
    __type(key, struct lpm_key);
    __type(value, u32);
} routes SEC(".maps");

struct {
    __uint(type, 27);  // RINGBUF
    __uint(max_entries, 4096);
} events SEC(".maps");

struct {
    __uint(type, 22);  // QUEUE
    __uint(max_entries, 4);
    __type(value, u32);
} fifo SEC(".maps");

struct {
    __uint(type, 23);  // STACK
    __uint(max_entries, 4);
    __type(value, u32);
} lifo SEC(".maps");

struct {
    __uint(type, 6);  // PERCPU_ARRAY
    __uint(max_entries, 1);
    __type(key, u32);
    __type(value, u64);
} per_cpu SEC(".maps");

struct {
    __uint(type, 30);  // BLOOM_FILTER
    __uint(max_entries, 64);
    __type(value, u32);
} seen SEC(".maps");

int tail_second(void *ctx);
int tail_loop(void *ctx);

struct {
    __uint(type, 3);  // PROG_ARRAY
    __uint(max_entries, 4);
    __type(key, u32);
    __array(values, int(void *));
} jumps SEC(".maps") = {.values = {[0] = (void *)&tail_loop, [1] = (void *)&tail_second}};

u64 loop_entries;

// ctx: an IPv4 address in network order; returns the next hop of the longest matching route.
SEC("syscall") int lpm_route(u8 *ctx) {
    struct lpm_key key = {32, {ctx[0], ctx[1], ctx[2], ctx[3]}};
    u32 *hop = bpf_map_lookup_elem(&routes, &key);
    return hop ? *hop : 0;
}

// Two submitted records (one reserved, one copied) and one discarded in between.
SEC("syscall") int ringbuf_events(u32 *ctx) {
    u32 *a = bpf_ringbuf_reserve(&events, 8, 0);
    if (!a) {
        return 1;
    }
    a[0] = ctx[0];
    a[1] = 0xaaaa;
    bpf_ringbuf_submit(a, 0);
    u32 *b = bpf_ringbuf_reserve(&events, 4, 0);
    if (!b) {
        return 2;
    }
    b[0] = 0xdead;
    bpf_ringbuf_discard(b, 0);
    u32 c = ctx[0] + 1;
    return bpf_ringbuf_output(&events, &c, sizeof(c), 0);
}

// Pushes 1, 2, 3 into a queue and a stack; returns the first pop of each as queue * 16 + stack.
SEC("syscall") int queue_stack(void *ctx) {
    for (u32 i = 1; i <= 3; i++) {
        bpf_map_push_elem(&fifo, &i, 0);
        bpf_map_push_elem(&lifo, &i, 0);
    }
    u32 q = 0, s = 0, peeked = 0;
    bpf_map_peek_elem(&fifo, &peeked);
    if (bpf_map_pop_elem(&fifo, &q) || bpf_map_pop_elem(&lifo, &s) || peeked != q) {
        return -1;
    }
    return q * 16 + s;
}

SEC("syscall") int percpu_count(void *ctx) {
    u32 zero = 0;
    u64 *v = bpf_map_lookup_elem(&per_cpu, &zero);
    if (v) {
        *v += 1;  // this CPU's slot only: no atomics needed
    }
    return 0;
}

// ctx[0]: a value to add to the filter; returns whether ctx[1] may be in it (peek == 0).
SEC("syscall") int bloom(u32 *ctx) {
    u32 v = ctx[0];
    bpf_map_push_elem(&seen, &v, 0);
    u32 probe = ctx[1];
    return bpf_map_peek_elem(&seen, &probe) == 0;
}

SEC("syscall") int tail_first(void *ctx) {
    bpf_tail_call(ctx, &jumps, 1);
    return 7;  // only when the tail call fails
}

SEC("syscall") int tail_second(void *ctx) { return 42; }

// Tail-calls itself until the chain limit stops it; loop_entries counts the entries.
SEC("syscall") int tail_loop(void *ctx) {
    __sync_fetch_and_add(&loop_entries, 1);
    bpf_tail_call(ctx, &jumps, 0);
    return 99;
}

static long (*bpf_loop)(u32 nr_loops, void *callback_fn, void *callback_ctx, u64 flags) = (void *)181;

struct loop_state {
    u64 sum;
    u32 stop_at;
};

static long add_index(u32 index, struct loop_state *st) {
    st->sum += index;
    return index >= st->stop_at ? 1 : 0;  // 1 stops the loop
}

// ctx[0]: iterations asked for; ctx[1]: index to stop at. Returns sum * 1000 + iterations done.
SEC("syscall") int loop_sum(u32 *ctx) {
    struct loop_state st = {0, ctx[1]};  // on the stack: the callback writes it through a pointer
    long n = bpf_loop(ctx[0], add_index, &st, 0);
    return st.sum * 1000 + n;
}

static long (*bpf_for_each_map_elem)(void *map, void *callback_fn, void *callback_ctx, u64 flags) = (void *)164;
static long (*bpf_snprintf)(char *str, u32 str_size, const char *fmt, u64 *data, u32 data_len) = (void *)165;
static long (*bpf_strtol)(const char *buf, u64 buf_len, u64 flags, long *res) = (void *)105;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, u64 flags) = (void *)2;

struct {
    __uint(type, 1);  // HASH
    __uint(max_entries, 8);
    __type(key, u32);
    __type(value, u64);
} weights SEC(".maps");

static long add_weight(void *map, u32 *key, u64 *value, u64 *total) {
    *total += *key * *value;
    return 0;
}

// Fills weights {1: 10, 2: 20, 3: 30} and returns the sum of key * value over every element.
SEC("syscall") int weighted_sum(void *ctx) {
    for (u32 k = 1; k <= 3; k++) {
        u64 v = k * 10;
        bpf_map_update_elem(&weights, &k, &v, 0);
    }
    u64 total = 0;
    long visited = bpf_for_each_map_elem(&weights, add_weight, &total, 0);
    return total * 10 + visited;
}

// Formats "n=<ctx[0]>" into ctx + 8, then parses the number back with strtol.
SEC("syscall") int format_parse(u32 *ctx) {
    char *out = (char *)(ctx + 2);
    u64 args[1] = {ctx[0]};
    long len = bpf_snprintf(out, 16, "n=%u", args, sizeof(args));
    long value = 0;
    long used = bpf_strtol(out + 2, 14, 10, &value);
    return value * 100 + len * 10 + used;
}

static long (*bpf_perf_event_output)(void *ctx, void *map, u64 flags, void *data, u64 size) = (void *)25;

struct {
    __uint(type, 4);  // PERF_EVENT_ARRAY
    __uint(max_entries, 4);
    __type(key, u32);
    __type(value, u32);
} samples SEC(".maps");

// Two samples: one on the current CPU, one on CPU 2.
SEC("syscall") int perf_out(u32 *ctx) {
    u64 v = ctx[0];
    long a = bpf_perf_event_output(ctx, &samples, 0xffffffffULL /* BPF_F_CURRENT_CPU */, &v, sizeof(v));
    v += 1;
    long b = bpf_perf_event_output(ctx, &samples, 2, &v, sizeof(v));
    return a == 0 && b == 0;
}

char _license[] SEC("license") = "GPL";
