// A socket filter that logs every IPv4 packet to a ring buffer (source, destination, protocol,
// length) for the embedder to consume, counts packets per protocol in a per-CPU array, and
// keeps only the first 96 bytes of TCP packets (the value a socket filter returns is the
// number of bytes to keep; 0 drops).
// Build: clang-19 -O2 -g -target bpf -c packet_log.bpf.c -o packet_log.o
typedef unsigned char u8;
typedef unsigned int u32;
typedef unsigned long long u64;

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

struct __sk_buff {
    u32 len, pkt_type, mark, queue_mapping, protocol;
};

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_skb_load_bytes)(const void *skb, u32 offset, void *to, u32 len) = (void *)26;
static long (*bpf_ringbuf_output)(void *ringbuf, void *data, u64 size, u64 flags) = (void *)130;

struct event {
    u32 saddr;
    u32 daddr;
    u32 len;
    u8 protocol;
    u8 pad[3];
};

struct {
    __uint(type, 27);  // ring buffer
    __uint(max_entries, 4096);
} events SEC(".maps");

struct {
    __uint(type, 6);  // per-CPU array, by IP protocol number
    __uint(max_entries, 256);
    __type(key, u32);
    __type(value, u64);
} per_protocol SEC(".maps");

SEC("socket") int packet_log(struct __sk_buff *skb) {
    if (skb->protocol != __builtin_bswap16(0x0800)) {
        return skb->len;  // not IPv4: keep it whole
    }
    u8 ip[20];
    if (bpf_skb_load_bytes(skb, 0, ip, sizeof(ip)) != 0) {  // socket filters start at the IP header
        return 0;
    }
    struct event e = {};
    __builtin_memcpy(&e.saddr, ip + 12, 4);
    __builtin_memcpy(&e.daddr, ip + 16, 4);
    e.len = skb->len;
    e.protocol = ip[9];
    bpf_ringbuf_output(&events, &e, sizeof(e), 0);
    u32 key = ip[9];
    u64 *n = bpf_map_lookup_elem(&per_protocol, &key);
    if (n) {
        *n += 1;
    }
    return e.protocol == 6 && skb->len > 96 ? 96 : skb->len;
}

char _license[] SEC("license") = "GPL";
