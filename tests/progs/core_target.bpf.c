// The "kernel" for core_access.bpf.c: the same struct with another layout (pid moved, flags
// wider) and another value for TASK_STOPPED. Only its BTF is used.
#include "bpf_common.h"

struct task_like {
    long long start_time;
    long long utime;
    int flags;
    int pid;
    char comm[16];
};

enum task_state { TASK_RUNNING = 0, TASK_STOPPED = 8 };

SEC("syscall") int uses_types(struct task_like *t, enum task_state state) { return t->pid + state; }

char _license[] SEC("license") = "GPL";
