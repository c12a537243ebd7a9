// CO-RE: reads a field whose offset the target BTF decides, asks whether another exists and how
// big it is, the struct's size, and an enum value. The test resolves it against the BTF of
// core_target.bpf.c, where the struct has another layout.
#include "bpf_common.h"

struct task_like {
    int pad;
    int pid;
    short flags;
} __attribute__((preserve_access_index));

enum task_state { TASK_RUNNING = 0, TASK_STOPPED = 4 };

// r0 = pid + 1000 * sizeof(flags) (0 if absent) + 100000 * sizeof(struct task_like)
//        + 10000000 * TASK_STOPPED's value
SEC("syscall") int read_task(struct task_like *t) {
    int r = t->pid;
    if (__builtin_preserve_field_info(t->flags, 2 /* exists */)) {
        r += 1000 * __builtin_preserve_field_info(t->flags, 1 /* byte size */);
    }
    r += 100000 * __builtin_preserve_type_info(*t, 1 /* size */);
    r += 10000000 * __builtin_preserve_enum_value(*(typeof(enum task_state) *)TASK_STOPPED, 1 /* value */);
    return r;
}

char _license[] SEC("license") = "GPL";
