#include "workload.h"
/* FNV-1a (64-bit) over 1 KiB. */
WORKLOAD(fnv1a) {
    u64 h = 0xcbf29ce484222325ULL;
    (void)len;
    for (u64 i = 0; i < 1024; i++) {
        h ^= mem[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}
