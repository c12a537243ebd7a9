#include "workload.h"
/* Number of primes below N by trial division, N from the buffer's first word (2,000). */
WORKLOAD(primes) {
    u32 limit = *(u32*)mem;
    u64 count = 0;
    (void)len;
    for (u32 n = 2; n < limit; n++) {
        u32 prime = 1;
        for (u32 d = 2; d * d <= n; d++) {
            if (n % d == 0) {
                prime = 0;
                break;
            }
        }
        count += prime;
    }
    return count;
}
