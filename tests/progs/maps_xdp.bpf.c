// The map types and map helpers of maps_tour.bpf.c again, in XDP programs the kernel can test-run
// too (syscall programs may not use most map types there): each takes its arguments from the
// packet after the Ethernet header, so the kernel oracle runs them on its packet set and compares
// the return value, the packet and every map with bpfvm's.
#include "bpf_common.h"

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, u64 flags) = (void *)2;
static long (*bpf_tail_call)(void *ctx, void *map, u32 index) = (void *)12;
static long (*bpf_perf_event_output)(void *ctx, void *map, u64 flags, void *data, u64 size) = (void *)25;
static long (*bpf_map_push_elem)(void *map, const void *value, u64 flags) = (void *)87;
static long (*bpf_map_pop_elem)(void *map, void *value) = (void *)88;
static long (*bpf_map_peek_elem)(void *map, void *value) = (void *)89;
static long (*bpf_ringbuf_output)(void *ringbuf, void *data, u64 size, u64 flags) = (void *)130;
static void *(*bpf_ringbuf_reserve)(void *ringbuf, u64 size, u64 flags) = (void *)131;
static void (*bpf_ringbuf_submit)(void *data, u64 flags) = (void *)132;
static u64 (*bpf_ringbuf_query)(void *ringbuf, u64 flags) = (void *)134;
static long (*bpf_for_each_map_elem)(void *map, void *callback, void *ctx, u64 flags) = (void *)164;
static long (*bpf_loop)(u32 nr_loops, void *callback, void *ctx, u64 flags) = (void *)181;

struct xdp_md {
    u32 data;
    u32 data_end;
    u32 data_meta;
    u32 ingress_ifindex;
    u32 rx_queue_index;
    u32 egress_ifindex;
};

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

struct {
    __uint(type, 1);  // HASH
    __uint(max_entries, 8);
    __type(key, u32);
    __type(value, u64);
} weights SEC(".maps");

struct {
    __uint(type, 4);  // PERF_EVENT_ARRAY
    __uint(key_size, 4);
    __uint(value_size, 4);
} samples SEC(".maps");

int tail_second(struct xdp_md *ctx);

struct {
    __uint(type, 3);  // PROG_ARRAY
    __uint(max_entries, 2);
    __type(key, u32);
    __array(values, int(void *));
} jumps SEC(".maps") = {.values = {[1] = (void *)&tail_second}};

u64 runs;                    // .bss
const volatile u32 bias = 5;  // .rodata

// The packet's first u32 words after the Ethernet header (0 past its end).
static __attribute__((always_inline)) u32 word(struct xdp_md *ctx, u32 i) {
    u8 *data = (u8 *)(long)ctx->data;
    u8 *end = (u8 *)(long)ctx->data_end;
    if (i > 7 || data + 14 + 4 * (i + 1) > end) {
        return 0;
    }
    u8 *p = data + 14 + 4 * i;
    return (u32)p[0] | (u32)p[1] << 8 | (u32)p[2] << 16 | (u32)p[3] << 24;
}

static __attribute__((always_inline)) u32 length(struct xdp_md *ctx) {
    return ctx->data_end - ctx->data;
}

// Routes for 10/8 and 10.0.0/24; the IPv4 destination's next hop, or 0.
SEC("xdp") int lpm_route(struct xdp_md *ctx) {
    struct lpm_key k8 = {8, {10, 0, 0, 0}};
    struct lpm_key k24 = {24, {10, 0, 0, 0}};
    u32 hop8 = 1, hop24 = 2;
    bpf_map_update_elem(&routes, &k8, &hop8, 0);
    bpf_map_update_elem(&routes, &k24, &hop24, 0);
    u8 *data = (u8 *)(long)ctx->data;
    u8 *end = (u8 *)(long)ctx->data_end;
    if (data + 34 > end || data[12] != 0x08 || data[13] != 0) {
        return 0;
    }
    struct lpm_key q = {32, {data[30], data[31], data[32], data[33]}};
    u32 *hop = bpf_map_lookup_elem(&routes, &q);
    runs++;
    return hop ? *hop + bias : bias;
}

// A reserved record with the first 8 bytes after the Ethernet header, and one written with
// ringbuf_output holding the length; returns the bytes waiting in the ring.
SEC("xdp") int ring_events(struct xdp_md *ctx) {
    u32 *rec = bpf_ringbuf_reserve(&events, 8, 0);
    if (!rec) {
        return 1;
    }
    rec[0] = word(ctx, 0);
    rec[1] = word(ctx, 1);
    bpf_ringbuf_submit(rec, 0);
    u32 len = length(ctx);
    bpf_ringbuf_output(&events, &len, sizeof len, 0);
    return bpf_ringbuf_query(&events, 0);
}

// Words 0..4 pushed to a 4-slot queue and stack (the fifth does not fit), then one popped from
// each and one peeked.
SEC("xdp") int queue_stack(struct xdp_md *ctx) {
    long full = 0;
    for (u32 i = 0; i < 5; i++) {
        u32 v = word(ctx, i) + i;
        full += bpf_map_push_elem(&fifo, &v, 0);
        full += bpf_map_push_elem(&lifo, &v, 0);
    }
    u32 a = 0, b = 0, c = 0;
    bpf_map_pop_elem(&fifo, &a);
    bpf_map_pop_elem(&lifo, &b);
    bpf_map_peek_elem(&fifo, &c);
    return (u32)full + a * 3 + b * 5 + c * 7;
}

// Adds the packet's length to this CPU's counter.
SEC("xdp") int percpu_count(struct xdp_md *ctx) {
    u32 zero = 0;
    u64 *v = bpf_map_lookup_elem(&per_cpu, &zero);
    if (!v) {
        return 1;
    }
    *v += length(ctx);
    return *v;
}

// Word 0 into the bloom filter; asks for it (present) and for its complement (absent).
SEC("xdp") int bloom(struct xdp_md *ctx) {
    u32 v = word(ctx, 0);
    u32 missing = ~v;
    bpf_map_push_elem(&seen, &v, 0);
    long here = bpf_map_peek_elem(&seen, &v);
    long there = bpf_map_peek_elem(&seen, &missing);
    return (here == 0 ? 1 : 0) + (there == 0 ? 2 : 0);
}

// A tail call to slot 1 (tail_second), after an empty slot 0.
SEC("xdp") int tail_first(struct xdp_md *ctx) {
    bpf_tail_call(ctx, &jumps, 0);
    bpf_tail_call(ctx, &jumps, 1);
    return 1;
}

SEC("xdp") int tail_second(struct xdp_md *ctx) {
    return 42 + length(ctx);
}

struct loop_state {
    u64 sum;
    u32 limit;
};

static long add_square(u32 i, struct loop_state *s) {
    s->sum += (u64)i * i;
    return i + 1 >= s->limit ? 1 : 0;
}

// bpf_loop over up to the packet's length (at most 100), summing squares.
SEC("xdp") int loop_sum(struct xdp_md *ctx) {
    struct loop_state s = {0, length(ctx) % 23 + 1};
    long n = bpf_loop(100, add_square, &s, 0);
    return (u32)s.sum + (u32)n * 1000;
}

static long sum_values(void *map, u32 *key, u64 *value, u64 *total) {
    *total += *value * *key;
    return 0;
}

static __attribute__((always_inline)) void weigh(u32 k, u32 len) {
    u64 w = (u64)k * len;
    bpf_map_update_elem(&weights, &k, &w, 0);
}

// weights[k] = k * length for k = 1..3, then the sum of k * value over the map. (Not a loop:
// this kernel's verifier takes `for (k = 1; k <= 3; k++)` around a helper call for an endless
// loop; see maps_tour.bpf.c's weighted_sum, which it refuses.)
SEC("xdp") int weighted_sum(struct xdp_md *ctx) {
    u32 len = length(ctx);
    weigh(1, len);
    weigh(2, len);
    weigh(3, len);
    u64 total = 0;
    long n = bpf_for_each_map_elem(&weights, sum_values, &total, 0);
    return (u32)total + (u32)n * 100000;
}

// An 8-byte sample of words 0 and 1 to the perf event array, on this CPU.
SEC("xdp") int perf_out(struct xdp_md *ctx) {
    u32 sample[2] = {word(ctx, 0), word(ctx, 1)};
    return bpf_perf_event_output(ctx, &samples, 0xffffffffULL, sample, sizeof sample);
}

char _license[] SEC("license") = "GPL";
