// An XDP firewall, as a libbpf-style object bpfvm runs unmodified:
//  - drops IPv4/IPv6 TCP and UDP packets whose destination port is in the `blocked_ports` hash
//    map (the embedder, or `bpfvm run`, fills it; port 23 is blocked by the .rodata default),
//  - counts verdicts per protocol in `stats`,
//  - logs every drop with bpf_printk.
// Build: clang-19 -O2 -g -target bpf -c xdp_firewall.bpf.c -o xdp_firewall.o
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

struct xdp_md {
    u32 data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex;
};
enum { XDP_ABORTED, XDP_DROP, XDP_PASS };

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_trace_printk)(const char *fmt, u32 fmt_size, ...) = (void *)6;
#define bpf_printk(fmt, ...)                                    \
    ({                                                          \
        static const char ____fmt[] = fmt;                      \
        bpf_trace_printk(____fmt, sizeof(____fmt), ##__VA_ARGS__); \
    })

struct {
    __uint(type, 1);  // hash: port (host order) -> 1
    __uint(max_entries, 64);
    __type(key, u16);
    __type(value, u8);
} blocked_ports SEC(".maps");

struct verdicts {
    u64 passed;
    u64 dropped;
};

struct {
    __uint(type, 2);  // array: 0 = IPv4, 1 = IPv6, 2 = other
    __uint(max_entries, 3);
    __type(key, u32);
    __type(value, struct verdicts);
} stats SEC(".maps");

const volatile u16 always_blocked = 23;  // telnet; set another before loading to change it

static __attribute__((always_inline)) int verdict(u32 family, int drop) {
    struct verdicts *v = bpf_map_lookup_elem(&stats, &family);
    if (v) {
        __sync_fetch_and_add(drop ? &v->dropped : &v->passed, 1);
    }
    return drop ? XDP_DROP : XDP_PASS;
}

SEC("xdp") int firewall(struct xdp_md *ctx) {
    u8 *data = (u8 *)(long)ctx->data;
    u8 *data_end = (u8 *)(long)ctx->data_end;
    if (data + 14 > data_end) {
        return XDP_DROP;
    }
    const u16 ethertype = (u16)(data[12] << 8 | data[13]);
    u8 *l4;
    u8 proto;
    u32 family;
    if (ethertype == 0x0800) {
        if (data + 34 > data_end) {
            return XDP_DROP;
        }
        family = 0;
        proto = data[23];
        l4 = data + 14 + (data[14] & 0x0f) * 4;
    } else if (ethertype == 0x86dd) {
        if (data + 54 > data_end) {
            return XDP_DROP;
        }
        family = 1;
        proto = data[20];
        l4 = data + 54;
    } else {
        return verdict(2, 0);
    }
    if (proto != 6 && proto != 17) {
        return verdict(family, 0);
    }
    if (l4 + 4 > data_end) {
        return verdict(family, 1);
    }
    u16 port = (u16)(l4[2] << 8 | l4[3]);
    if (port == always_blocked || bpf_map_lookup_elem(&blocked_ports, &port)) {
        bpf_printk("drop %s port %u", proto == 6 ? "tcp" : "udp", port);
        return verdict(family, 1);
    }
    return verdict(family, 0);
}

char _license[] SEC("license") = "GPL";
