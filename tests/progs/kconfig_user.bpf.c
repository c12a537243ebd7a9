// __kconfig externs: values the loader's user gives (libbpf reads them from the kernel).
#include "bpf_common.h"

#define __kconfig __attribute__((section(".kconfig")))

extern unsigned int LINUX_KERNEL_VERSION __kconfig;
extern int CONFIG_HZ __kconfig;

SEC("syscall") int kernel_info(void *ctx) { return (LINUX_KERNEL_VERSION >> 16) * 10000 + CONFIG_HZ; }

char _license[] SEC("license") = "GPL";
