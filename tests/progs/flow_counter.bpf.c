// A per-flow counter over raw memory (r1 = a record, r2 = its length), in .text so it runs with
// the raw-memory context: a hash map keyed by flow, an array of totals, .rodata configuration the
// test sets, a .bss counter, and trace_printk.
#include "bpf_common.h"

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, u64 flags) = (void *)2;
static long (*bpf_trace_printk)(const char *fmt, u32 fmt_size, ...) = (void *)6;

struct flow {
    u32 src;
    u32 dst;
};

struct {
    __uint(type, 1);  // BPF_MAP_TYPE_HASH
    __uint(max_entries, 16);
    __type(key, struct flow);
    __type(value, u64);
} flows SEC(".maps");

struct {
    __uint(type, 2);  // BPF_MAP_TYPE_ARRAY
    __uint(max_entries, 2);
    __type(key, u32);
    __type(value, u64);
} totals SEC(".maps");

const volatile u32 weight = 1;  // .rodata: set by the loader's user before linking
u64 records_seen;               // .bss

u64 count_flow(const u32 *record, u64 len) {
    if (len < 12) {
        return 0;
    }
    struct flow f = {record[0], record[1]};
    const u64 bytes = record[2] * (u64)weight;
    u64 *v = bpf_map_lookup_elem(&flows, &f);
    if (v) {
        __sync_fetch_and_add(v, bytes);
    } else {
        bpf_map_update_elem(&flows, &f, &bytes, 1 /* BPF_NOEXIST */);
    }
    u32 slot = f.src & 1;
    u64 *total = bpf_map_lookup_elem(&totals, &slot);
    if (total) {
        *total += bytes;
    }
    records_seen++;
    const char fmt[] = "flow %u -> %u: %llu bytes";
    bpf_trace_printk(fmt, sizeof(fmt), f.src, f.dst, bytes);
    return records_seen;
}

char _license[] SEC("license") = "GPL";
