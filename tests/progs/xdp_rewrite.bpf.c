// Two XDP programs over Ethernet (optionally VLAN-tagged) IPv4/IPv6:
//  - xdp_swap: counts packets per L3 protocol in an array map; for IPv4 it swaps the MAC
//    addresses, decrements the TTL with an incremental checksum update and returns XDP_TX;
//    truncated packets are dropped, everything else passes.
//  - xdp_pop_vlan: removes an 802.1Q tag with bpf_xdp_adjust_head and returns XDP_PASS.
#include "bpf_common.h"

struct xdp_md {
    u32 data;
    u32 data_end;
    u32 data_meta;
    u32 ingress_ifindex;
    u32 rx_queue_index;
    u32 egress_ifindex;
};

enum { XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX };

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_xdp_adjust_head)(struct xdp_md *ctx, int delta) = (void *)44;

struct ethhdr {
    u8 dst[6];
    u8 src[6];
    u16 proto;
};

struct vlanhdr {
    u16 tci;
    u16 proto;
};

struct iphdr {
    u8 ver_ihl;
    u8 tos;
    u16 tot_len;
    u16 id;
    u16 frag;
    u8 ttl;
    u8 protocol;
    u16 check;
    u32 saddr;
    u32 daddr;
};

struct {
    __uint(type, 2);  // BPF_MAP_TYPE_ARRAY: 0 IPv4, 1 IPv6, 2 other, 3 dropped
    __uint(max_entries, 4);
    __type(key, u32);
    __type(value, u64);
} proto_counts SEC(".maps");

static __attribute__((always_inline)) void count(u32 slot) {
    u64 *v = bpf_map_lookup_elem(&proto_counts, &slot);
    if (v) {
        __sync_fetch_and_add(v, 1);
    }
}

SEC("xdp") int xdp_swap(struct xdp_md *ctx) {
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end) {
        count(3);
        return XDP_DROP;
    }
    u16 proto = eth->proto;
    void *next = eth + 1;
    if (proto == __builtin_bswap16(0x8100)) {
        struct vlanhdr *vlan = next;
        if ((void *)(vlan + 1) > data_end) {
            count(3);
            return XDP_DROP;
        }
        proto = vlan->proto;
        next = vlan + 1;
    }
    if (proto == __builtin_bswap16(0x86dd)) {
        count(1);
        return XDP_PASS;
    }
    if (proto != __builtin_bswap16(0x0800)) {
        count(2);
        return XDP_PASS;
    }
    struct iphdr *ip = next;
    if ((void *)(ip + 1) > data_end) {
        count(3);
        return XDP_DROP;
    }
    count(0);
    u8 tmp[6];
    __builtin_memcpy(tmp, eth->dst, 6);
    __builtin_memcpy(eth->dst, eth->src, 6);
    __builtin_memcpy(eth->src, tmp, 6);
    // TTL is the high byte of a 16-bit word in network order: decrementing it adds 0x0100 to the
    // checksum (RFC 1624).
    u32 sum = (u32)ip->check + __builtin_bswap16(0x0100);
    ip->check = (u16)(sum + (sum >> 16));
    ip->ttl--;
    return XDP_TX;
}

SEC("xdp") int xdp_pop_vlan(struct xdp_md *ctx) {
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) + sizeof(struct vlanhdr) > data_end) {
        return XDP_PASS;
    }
    if (eth->proto != __builtin_bswap16(0x8100)) {
        return XDP_PASS;
    }
    struct vlanhdr *vlan = (void *)(eth + 1);
    u16 inner = vlan->proto;
    // Move the MAC addresses 4 bytes up, over the tag, then drop the first 4 bytes.
    u8 macs[12];
    __builtin_memcpy(macs, eth, 12);
    struct ethhdr *moved = (void *)((u8 *)data + 4);
    __builtin_memcpy(moved, macs, 12);
    moved->proto = inner;
    if (bpf_xdp_adjust_head(ctx, 4) != 0) {
        return XDP_ABORTED;
    }
    return XDP_PASS;
}

static long (*bpf_xdp_adjust_tail)(struct xdp_md *ctx, int delta) = (void *)65;
static long (*bpf_xdp_adjust_meta)(struct xdp_md *ctx, int delta) = (void *)54;
static long (*bpf_redirect)(u32 ifindex, u64 flags) = (void *)23;

// A subprogram that reads its caller's stack through a pointer argument.
static __attribute__((noinline)) u32 sum_bytes(const u8 *buf, u32 n) {
    u32 s = 0;
    for (u32 i = 0; i < n && i < 8; i++) {
        s += buf[i];
    }
    return s;
}

// Trims the 4-byte trailer, puts the sum of the first 8 bytes in 4 bytes of metadata, and
// redirects the packet to interface 7.
SEC("xdp") int xdp_trim(struct xdp_md *ctx) {
    if (bpf_xdp_adjust_tail(ctx, -4) != 0 || bpf_xdp_adjust_meta(ctx, -4) != 0) {
        return XDP_ABORTED;
    }
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    void *meta = (void *)(long)ctx->data_meta;
    if (meta + 4 > data || data + 8 > data_end) {
        return XDP_ABORTED;
    }
    u8 copy[8];
    __builtin_memcpy(copy, data, 8);
    *(u32 *)meta = sum_bytes(copy, 8);
    return bpf_redirect(7, 0);
}

char _license[] SEC("license") = "GPL";
