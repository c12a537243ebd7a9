// A packet classifier over raw memory (r1 = data, r2 = length), written to exercise many
// instruction kinds in clang's output: loads of every width, byte swaps, compares, shifts.
#include "bpf_common.h"

static __attribute__((noinline)) u32 fold(u64 x) {
    x = (x >> 32) + (x & 0xffffffff);
    return (u32)((x >> 16) + (x & 0xffff));
}

static __attribute__((noinline)) s64 signed_mix(s64 a, s32 b) {
    if (b == 0) {
        return a;
    }
#if __BPF_CPU_VERSION__ >= 4
    return a / b + a % b + (s64)(signed char)a + (s64)(short)b;  // sdiv, smod, movsx
#else
    return (s64)((u64)a / (u32)b) + (s64)(signed char)a + (s64)(short)b;
#endif
}

u64 entry(u8* data, u64 len) {
    if (len < 34) {
        return 0;
    }
    u16 proto = __builtin_bswap16(*(u16*)(data + 12));
    u64 acc = 0;
    if (proto == 0x0800) {
        u32 src = __builtin_bswap32(*(u32*)(data + 26));
        u32 dst = __builtin_bswap32(*(u32*)(data + 30));
        acc = ((u64)src << 32) | dst;
        if ((dst & 0xffffff00) == 0xc0a80100) {
            acc ^= 0xdeadbeef;
        }
    } else if (proto == 0x86dd) {
        acc = *(u64*)(data + 22) * 31 + *(u64*)(data + 30);
    }
    for (u64 i = 0; i < len && i < 64; i++) {
        acc = (acc << 5) ^ (acc >> 59) ^ data[i];
    }
    s64 s = (s64)acc;
    acc += (u64)signed_mix(s, (s32)len - 40);
    __sync_fetch_and_add((u64*)data, 1);
    return fold(acc) + __builtin_bswap64(acc) % 7;
}
