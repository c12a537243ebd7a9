// The map implementations, one family per file (private to helpers/).
#pragma once

#include <memory>

#include "bpfvm/helpers/maps.hpp"

namespace bpfvm::helpers::detail {

inline std::size_t round8(std::size_t n) {
    return (n + 7) & ~std::size_t{7};
}

std::unique_ptr<Map> make_array(const vm::MapSpec& spec, unsigned cpus);  // array, percpu_array
std::unique_ptr<Map> make_hash(const vm::MapSpec& spec, unsigned cpus);   // hash, lru, percpu variants
std::unique_ptr<Map> make_queue(const vm::MapSpec& spec);                 // queue, stack
std::unique_ptr<Map> make_bloom_filter(const vm::MapSpec& spec);
std::unique_ptr<Map> make_lpm_trie(const vm::MapSpec& spec);
std::unique_ptr<Map> make_ringbuf(const vm::MapSpec& spec);
std::unique_ptr<Map> make_perf_event_array(const vm::MapSpec& spec);
std::unique_ptr<Map> make_handle_array(const vm::MapSpec& spec);  // prog_array, array_of_maps
std::unique_ptr<Map> make_handle_hash(const vm::MapSpec& spec);   // hash_of_maps

}  // namespace bpfvm::helpers::detail
