#include "workload.h"
/* strcmp of two 64 KiB strings (at mem and mem + 64 KiB) that differ only in the last byte. */
WORKLOAD(strcmp) {
    const u8* a = mem;
    const u8* b = mem + 65536;
    (void)len;
    u32 i = 0;
    while (a[i] != 0 && a[i] == b[i]) {
        i++;
    }
    return (u64)(long long)((int)a[i] - (int)b[i]) + i;
}
