#include "workload.h"
/* Byte checksum over 1 KiB: a 16-bit ones'-complement sum of bytes. */
WORKLOAD(checksum) {
    u64 sum = 0;
    (void)len;
    for (u64 i = 0; i < 1024; i++) {
        sum += mem[i];
        OPAQUE(sum);
    }
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return sum;
}
