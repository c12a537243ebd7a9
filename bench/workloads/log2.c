#include "workload.h"
/* Integer log2 of 1,024 values (the buffer holds 1,024 u32 values), by shifting. log2_large.c
 * runs the same loop on more values. */
#ifndef LOG2_VALUES
#define LOG2_VALUES 1024
#define LOG2_NAME log2
#endif
#define LOG2_WORKLOAD(name) WORKLOAD(name)
LOG2_WORKLOAD(LOG2_NAME) {
    const u32* values = (const u32*)mem;
    u64 total = 0;
    (void)len;
    for (u32 i = 0; i < LOG2_VALUES; i++) {
        u32 v = values[i] | 1;
        u32 r = 0;
        if (v >> 16) { v >>= 16; r += 16; }
        if (v >> 8) { v >>= 8; r += 8; }
        if (v >> 4) { v >>= 4; r += 4; }
        if (v >> 2) { v >>= 2; r += 2; }
        if (v >> 1) { r += 1; }
        total += r;
    }
    return total;
}
