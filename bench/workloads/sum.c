#include "workload.h"
/* Sum of 1..N, N = 10,000 (from the buffer's first word). */
WORKLOAD(sum) {
    u64 n = *(u32*)mem;
    u64 acc = 0;
    (void)len;
    for (u64 i = 1; i <= n; i++) {
        acc += i;
        OPAQUE(acc);
    }
    return acc;
}
