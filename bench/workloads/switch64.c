#include "workload.h"
/* A 64-way switch over 4,096 values (the buffer holds 4,096 bytes; each picks a case). */
WORKLOAD(switch64) {
    u64 acc = 0;
    (void)len;
    for (u32 i = 0; i < 4096; i++) {
        u64 x = mem[i];
        switch (x & 63) {
        case 0: acc += x + 1; break;
        case 1: acc += x ^ 31; break;
        case 2: acc += x * 61; break;
        case 3: acc += (x << 4) | 1; break;
        case 4: acc += x - 121; break;
        case 5: acc += (x >> 6) + 3; break;
        case 6: acc += x | 181; break;
        case 7: acc += (x * 3) ^ 211; break;
        case 8: acc += x + 241; break;
        case 9: acc += x ^ 271; break;
        case 10: acc += x * 301; break;
        case 11: acc += (x << 12) | 1; break;
        case 12: acc += x - 361; break;
        case 13: acc += (x >> 1) + 3; break;
        case 14: acc += x | 421; break;
        case 15: acc += (x * 3) ^ 451; break;
        case 16: acc += x + 481; break;
        case 17: acc += x ^ 511; break;
        case 18: acc += x * 541; break;
        case 19: acc += (x << 7) | 1; break;
        case 20: acc += x - 601; break;
        case 21: acc += (x >> 9) + 3; break;
        case 22: acc += x | 661; break;
        case 23: acc += (x * 3) ^ 691; break;
        case 24: acc += x + 721; break;
        case 25: acc += x ^ 751; break;
        case 26: acc += x * 781; break;
        case 27: acc += (x << 2) | 1; break;
        case 28: acc += x - 841; break;
        case 29: acc += (x >> 4) + 3; break;
        case 30: acc += x | 901; break;
        case 31: acc += (x * 3) ^ 931; break;
        case 32: acc += x + 961; break;
        case 33: acc += x ^ 991; break;
        case 34: acc += x * 24; break;
        case 35: acc += (x << 10) | 1; break;
        case 36: acc += x - 84; break;
        case 37: acc += (x >> 12) + 3; break;
        case 38: acc += x | 144; break;
        case 39: acc += (x * 3) ^ 174; break;
        case 40: acc += x + 204; break;
        case 41: acc += x ^ 234; break;
        case 42: acc += x * 264; break;
        case 43: acc += (x << 5) | 1; break;
        case 44: acc += x - 324; break;
        case 45: acc += (x >> 7) + 3; break;
        case 46: acc += x | 384; break;
        case 47: acc += (x * 3) ^ 414; break;
        case 48: acc += x + 444; break;
        case 49: acc += x ^ 474; break;
        case 50: acc += x * 504; break;
        case 51: acc += (x << 13) | 1; break;
        case 52: acc += x - 564; break;
        case 53: acc += (x >> 2) + 3; break;
        case 54: acc += x | 624; break;
        case 55: acc += (x * 3) ^ 654; break;
        case 56: acc += x + 684; break;
        case 57: acc += x ^ 714; break;
        case 58: acc += x * 744; break;
        case 59: acc += (x << 8) | 1; break;
        case 60: acc += x - 804; break;
        case 61: acc += (x >> 10) + 3; break;
        case 62: acc += x | 864; break;
        case 63: acc += (x * 3) ^ 894; break;
        }
        OPAQUE(acc);
    }
    return acc;
}
