/* Benchmark workloads, written once and compiled twice: for BPF (clang-19 -target bpf -O2) and
 * natively (clang-19 -O2). Each is one function `u64 NAME(u8 *mem, u64 len)`; mem is a buffer
 * the harness prepares. Under BPF the function must be the first one in .text, so helpers are
 * always inlined. */
#ifndef BPFVM_BENCH_WORKLOAD_H
#define BPFVM_BENCH_WORKLOAD_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

#ifdef BPFVM_NATIVE
#define WORKLOAD(name) u64 native_##name(u8* mem, u64 len)
#else
#define WORKLOAD(name) u64 name(u8* mem, u64 len)
#endif

#define INLINE static inline __attribute__((always_inline))

/* Keeps the optimiser from replacing a loop by its closed form (the loop is the point). */
#define OPAQUE(x) __asm__ volatile("" : "+r"(x))

#endif
