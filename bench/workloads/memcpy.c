#include "workload.h"
/* A 64 KiB byte copy: the first 64 KiB of the buffer to the second; returns a sample. */
WORKLOAD(memcpy) {
    u8* dst = mem + 65536;
    (void)len;
    for (u32 i = 0; i < 65536; i++) {
        dst[i] = mem[i];
    }
    return dst[12345] + dst[65535];
}
