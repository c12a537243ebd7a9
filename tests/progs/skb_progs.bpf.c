// Two __sk_buff programs:
//  - count_udp (socket filter): reads the IPv4 protocol byte with a legacy LD_ABS load (the data
//    starts at the IP header for socket filters), counts UDP packets in cb[0]-free way via a map,
//    and accepts the first 64 bytes of UDP packets (returns the snap length), drops others (0).
//  - classify (tc): direct packet access over data/data_end, sets mark, priority and tc_classid,
//    copies skb->len into cb[0], and shoots packets shorter than 34 bytes.
#include "bpf_common.h"

struct __sk_buff {
    u32 len, pkt_type, mark, queue_mapping, protocol, vlan_present, vlan_tci, vlan_proto, priority,
        ingress_ifindex, ifindex, tc_index, cb[5], hash, tc_classid, data, data_end, napi_id;
};

unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_skb_load_bytes)(const void *skb, u32 offset, void *to, u32 len) = (void *)26;

struct {
    __uint(type, 2);
    __uint(max_entries, 1);
    __type(key, u32);
    __type(value, u64);
} udp_packets SEC(".maps");

SEC("socket") int count_udp(struct __sk_buff *skb) {
    if (skb->protocol != __builtin_bswap16(0x0800)) {
        return 0;
    }
    if (load_byte(skb, 9) != 17) {  // IPv4 protocol field: UDP
        return 0;
    }
    u8 ttl = 0;
    if (bpf_skb_load_bytes(skb, 8, &ttl, 1) != 0 || ttl == 0) {
        return 0;
    }
    u32 zero = 0;
    u64 *n = bpf_map_lookup_elem(&udp_packets, &zero);
    if (n) {
        __sync_fetch_and_add(n, 1);
    }
    return 64;
}

SEC("tc") int classify(struct __sk_buff *skb) {
    void *data = (void *)(long)skb->data;
    void *data_end = (void *)(long)skb->data_end;
    skb->cb[0] = skb->len;
    if (data + 34 > data_end) {
        return 2;  // TC_ACT_SHOT
    }
    u8 proto = *(u8 *)(data + 23);
    skb->mark = 0x1000 | proto;
    skb->priority = proto == 6 ? 7 : 1;
    skb->tc_classid = 0x10001;
    return 0;  // TC_ACT_OK
}

char _license[] SEC("license") = "GPL";
