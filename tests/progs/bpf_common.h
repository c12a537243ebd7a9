/* What the test programs share: fixed-width types and the map-definition macros libbpf's
 * bpf_helpers.h provides (the test programs do not depend on libbpf's headers). */
#ifndef BPFVM_TEST_PROGS_COMMON_H
#define BPFVM_TEST_PROGS_COMMON_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long s64;
typedef int s32;

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
#define __array(name, val) typeof(val) *name[]

#endif
