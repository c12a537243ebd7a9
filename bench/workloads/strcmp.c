#include "workload.h"
/* strcmp of two strings of len / 2 bytes (at mem and mem + len / 2) that differ only in the last
 * non-zero byte. */
WORKLOAD(strcmp) {
    const u8* a = mem;
    const u8* b = mem + (len >> 1);
    u32 i = 0;
    while (a[i] != 0 && a[i] == b[i]) {
        i++;
    }
    return (u64)(long long)((int)a[i] - (int)b[i]) + i;
}
