// A program the loader must refuse, naming the source line: its inline assembly jumps far past
// the end of the function.
#include "bpf_common.h"

SEC("xdp") int jumps_away(void *ctx) {
    asm volatile("goto +1000");
    return 2;
}

char _license[] SEC("license") = "GPL";
