#include "kernel_maps.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sched.h>

#include <algorithm>
#include <cstring>

#include "bpfvm/kernel/bpf.hpp"

namespace bpfvm::kernel {

namespace {

using vm::MapType;

bool per_cpu(MapType t) {
    return t == MapType::PercpuArray || t == MapType::PercpuHash || t == MapType::LruPercpuHash ||
           t == MapType::PercpuCgroupStorage;
}

// Every (key, value) of a map that lists its keys, sorted by key.
void list_entries(const KernelMap& m, MapDump& d) {
    const uint32_t value_size = per_cpu(m.type) ? (m.value_size + 7) / 8 * 8 * possible_cpus() : m.value_size;
    std::vector<uint8_t> key;
    for (std::size_t guard = 0; guard < (1u << 22); ++guard) {
        Expected<std::optional<std::vector<uint8_t>>> next = next_key(m.fd, key, m.key_size);
        if (!next || !next->has_value()) {
            break;
        }
        key = std::move(**next);
        Expected<std::vector<uint8_t>> value = lookup_map(m.fd, key, value_size);
        if (value) {  // (an array of programs or maps lists its empty slots too)
            d.entries.emplace_back(key, std::move(*value));
        }
    }
    std::sort(d.entries.begin(), d.entries.end());
}

int on_ring_record(void* ctx, void* data, size_t size) {
    auto* out = static_cast<std::vector<std::vector<uint8_t>>*>(ctx);
    const auto* p = static_cast<const uint8_t*>(data);
    out->emplace_back(p, p + size);
    return 0;
}

}  // namespace

void pin_cpu0(bool pin) {
    thread_local cpu_set_t saved;
    thread_local bool have_saved = false;
    if (pin) {
        have_saved = sched_getaffinity(0, sizeof saved, &saved) == 0;
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(0, &one);
        (void)sched_setaffinity(0, sizeof one, &one);
    } else if (have_saved) {
        (void)sched_setaffinity(0, sizeof saved, &saved);
    }
}

MapWatch::MapWatch(std::vector<KernelMap> maps) : maps_(std::move(maps)) {
    for (std::size_t i = 0; i < maps_.size(); ++i) {
        if (maps_[i].type != MapType::PerfEventArray) {
            continue;
        }
        auto perf = std::make_unique<Perf>();
        perf->map = i;
        auto on_sample = [](void* ctx, int, void* data, uint32_t size) {
            auto* p = static_cast<Perf*>(ctx);
            const auto* bytes = static_cast<const uint8_t*>(data);
            p->samples.emplace_back(bytes, bytes + size);
        };
        perf->buffer = perf_buffer__new(maps_[i].fd, 8, on_sample, nullptr, perf.get(), nullptr);
        perf_.push_back(std::move(perf));
    }
}

MapWatch::~MapWatch() {
    for (auto& p : perf_) {
        if (p->buffer != nullptr) {
            perf_buffer__free(p->buffer);
        }
    }
}

std::vector<MapDump> MapWatch::dump() {
    std::vector<MapDump> out;
    for (std::size_t i = 0; i < maps_.size(); ++i) {
        const KernelMap& m = maps_[i];
        MapDump d;
        d.name = m.name;
        d.type = m.type;
        if (m.type == MapType::Queue || m.type == MapType::Stack) {
            std::vector<uint8_t> value(m.value_size);
            for (std::size_t guard = 0; guard < (1u << 20); ++guard) {
                if (bpf_map_lookup_and_delete_elem(m.fd, nullptr, value.data()) != 0) {
                    break;
                }
                d.records.push_back(value);
            }
        } else if (m.type == MapType::Ringbuf) {
            ring_buffer* rb = ring_buffer__new(m.fd, on_ring_record, &d.records, nullptr);
            if (rb != nullptr) {
                (void)ring_buffer__consume(rb);
                ring_buffer__free(rb);
            } else {
                d.partial = "the ring buffer could not be read";
            }
        } else if (m.type == MapType::PerfEventArray) {
            for (auto& p : perf_) {
                if (p->map == i && p->buffer != nullptr) {
                    (void)perf_buffer__consume(p->buffer);
                    d.records = p->samples;
                }
            }
        } else if (m.type == MapType::BloomFilter) {
            d.partial = "a bloom filter's contents cannot be listed";
        } else if (m.type == MapType::ProgArray || m.type == MapType::ArrayOfMaps || m.type == MapType::HashOfMaps) {
            list_entries(m, d);
            for (auto& e : d.entries) {
                e.second.clear();
            }
            d.partial = "slots hold program or map ids: compared by key";
        } else {
            list_entries(m, d);
        }
        out.push_back(std::move(d));
    }
    return out;
}

}  // namespace bpfvm::kernel
