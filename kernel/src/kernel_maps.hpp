// Reading the kernel's maps after a test run (private to kernel/): contents as MapDump, and
// perf buffers opened before the run so perf event samples are caught.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "bpfvm/kernel/outcome.hpp"

struct perf_buffer;

namespace bpfvm::kernel {

struct KernelMap {
    std::string name;  // as bpfvm's loader names it
    vm::MapType type = vm::MapType::Unspecified;
    uint32_t key_size = 0;
    uint32_t value_size = 0;
    int fd = -1;
};

// Watches a set of maps across one run: perf event arrays get a perf buffer on every CPU before
// it (their samples would otherwise have nowhere to go), and dump() reads everything after.
class MapWatch {
public:
    explicit MapWatch(std::vector<KernelMap> maps);
    ~MapWatch();
    MapWatch(const MapWatch&) = delete;
    MapWatch& operator=(const MapWatch&) = delete;
    // Each map's contents (destructive for queues, stacks, ring buffers and perf buffers).
    std::vector<MapDump> dump();

private:
    struct Perf {
        std::size_t map;
        perf_buffer* buffer = nullptr;
        std::vector<std::vector<uint8_t>> samples;
    };
    std::vector<KernelMap> maps_;
    std::vector<std::unique_ptr<Perf>> perf_;
};

// Runs `f` with this thread pinned to CPU 0 (per-CPU maps and bpf_get_smp_processor_id then see
// the same CPU on both sides), then restores the thread's CPUs.
template <typename F>
auto on_cpu0(F&& f);

void pin_cpu0(bool pin);

template <typename F>
auto on_cpu0(F&& f) {
    pin_cpu0(true);
    struct Restore {
        ~Restore() { pin_cpu0(false); }
    } restore;
    return f();
}

}  // namespace bpfvm::kernel
