#include <atomic>
#include <cstring>
#include <string>

#include "maps_impl.hpp"

namespace bpfvm::helpers {

using detail::round8;

unsigned current_cpu(unsigned cpus) {
    static std::atomic<unsigned> next{0};
    thread_local const unsigned mine = next.fetch_add(1);
    return cpus == 0 ? 0 : mine % cpus;
}

int Map::push(const void*, uint64_t) {
    return -kEINVAL;
}
int Map::pop(void*) {
    return -kEINVAL;
}
int Map::peek(void*) {
    return -kEINVAL;
}

int Map::read(const void* key, void* value_out) {
    void* v = lookup(key);
    if (v == nullptr) {
        return -kENOENT;
    }
    std::lock_guard lock(mutex_);
    std::memcpy(value_out, v, spec_.value_size);
    return 0;
}

std::vector<std::pair<std::vector<uint8_t>, std::vector<uint8_t>>> Map::entries() {
    std::vector<std::pair<std::vector<uint8_t>, std::vector<uint8_t>>> out;
    if (spec_.key_size == 0) {
        return out;  // queues, stacks, bloom filters and ring buffers have no keys
    }
    std::vector<uint8_t> key(spec_.key_size);
    std::vector<uint8_t> next(spec_.key_size);
    const void* cursor = nullptr;
    for (uint64_t guard = 0; guard <= spec_.max_entries && next_key(cursor, next.data()) == 0; ++guard) {
        key = next;
        cursor = key.data();
        std::vector<uint8_t> value(user_value_size());
        if (read(key.data(), value.data()) == 0) {
            out.emplace_back(key, std::move(value));
        }
    }
    return out;
}

namespace detail {
namespace {

// array and percpu_array: key = u32 index, every element exists.
class ArrayMap final : public Map {
public:
    ArrayMap(vm::MapSpec spec, unsigned cpus)
        : Map(std::move(spec)),
          cpus_(cpus),
          stride_(round8(spec_.value_size)),
          values_(stride_ * spec_.max_entries * cpus_) {
        if (!spec_.initial_value.empty()) {
            std::memcpy(values_.data(), spec_.initial_value.data(),
                        std::min<std::size_t>(spec_.initial_value.size(), spec_.value_size));
        }
    }

    void* lookup(const void* key) override {
        const uint32_t i = index(key);
        return i < spec_.max_entries ? at(i, cpus_ == 1 ? 0 : current_cpu(cpus_)) : nullptr;
    }

    int update(const void* key, const void* value, uint64_t flags) override {
        const int check = check_update(key, flags);
        if (check != 0) {
            return check;
        }
        std::lock_guard lock(mutex_);
        std::memcpy(at(index(key), cpus_ == 1 ? 0 : current_cpu(cpus_)), value, spec_.value_size);
        return 0;
    }

    int erase(const void*) override { return -kEINVAL; }

    int next_key(const void* key, void* next) override {
        uint32_t n = 0;
        if (key != nullptr) {
            const uint32_t i = index(key);
            if (i < spec_.max_entries) {
                if (i + 1 >= spec_.max_entries) {
                    return -kENOENT;
                }
                n = i + 1;
            }
        }
        std::memcpy(next, &n, 4);
        return 0;
    }

    [[nodiscard]] vm::Region region() const override {
        return {reinterpret_cast<uintptr_t>(values_.data()), values_.size(),
                (spec_.flags & vm::kMapFlagRdonlyProg) == 0, "map value"};
    }

    [[nodiscard]] std::size_t user_value_size() const override {
        return cpus_ == 1 ? spec_.value_size : stride_ * cpus_;
    }

    int read(const void* key, void* out) override {
        const uint32_t i = index(key);
        if (i >= spec_.max_entries) {
            return -kENOENT;
        }
        std::lock_guard lock(mutex_);
        std::memcpy(out, at(i, 0), user_value_size());
        return 0;
    }

    int write(const void* key, const void* value, uint64_t flags) override {
        const int check = check_update(key, flags);
        if (check != 0) {
            return check;
        }
        std::lock_guard lock(mutex_);
        std::memcpy(at(index(key), 0), value, user_value_size());
        return 0;
    }

private:
    static uint32_t index(const void* key) {
        uint32_t i;
        std::memcpy(&i, key, 4);
        return i;
    }
    int check_update(const void* key, uint64_t flags) const {
        if (flags > kExist) {
            return -kEINVAL;
        }
        if (index(key) >= spec_.max_entries) {
            return -kE2BIG;
        }
        if (flags == kNoExist) {
            return -kEEXIST;  // array elements always exist
        }
        return 0;
    }
    uint8_t* at(uint32_t i, unsigned cpu) { return values_.data() + (std::size_t{i} * cpus_ + cpu) * stride_; }

    unsigned cpus_;
    std::size_t stride_;
    std::vector<uint8_t> values_;
};

}  // namespace

std::unique_ptr<Map> make_array(const vm::MapSpec& spec, unsigned cpus) {
    return std::make_unique<ArrayMap>(spec, cpus);
}

}  // namespace detail

Expected<std::unique_ptr<Map>> create_map(const vm::MapSpec& given, const MapOptions& options) {
    using T = vm::MapType;
    vm::MapSpec spec = given;
    if (spec.type == T::PerfEventArray && spec.max_entries == 0) {
        spec.max_entries = std::max(1u, options.cpus);  // one slot per CPU, as libbpf sizes it
    }
    const std::string where = "map '" + spec.name + "'";
    auto fail = [&](const std::string& what) -> Expected<std::unique_ptr<Map>> { return make_error(where, what); };
    auto need = [&](bool ok, const std::string& what) { return ok ? std::string() : what; };
    const unsigned cpus = std::max(1u, options.cpus);
    const bool percpu = spec.type == T::PercpuArray || spec.type == T::PercpuHash || spec.type == T::LruPercpuHash;
    if (spec.max_entries == 0) {
        return fail("max_entries is 0");
    }
    const uint64_t per_value =
        spec.type == T::Ringbuf ? 1 : (round8(spec.value_size) * (percpu ? cpus : 1) + spec.key_size);
    const uint64_t bytes = uint64_t{spec.max_entries} * per_value;
    if (bytes > (uint64_t{1} << 30)) {
        return fail(std::to_string(bytes) + " bytes of storage is more than the 1 GiB a map may have");
    }
    std::string problem;
    std::unique_ptr<Map> map;
    const bool keyless = spec.key_size == 0;
    switch (spec.type) {
        case T::Array:
        case T::PercpuArray:
            problem = need(spec.key_size == 4, "an array's key_size must be 4, is " + std::to_string(spec.key_size));
            if (problem.empty() && spec.value_size == 0) {
                problem = "value_size is 0";
            }
            if (problem.empty()) {
                map = detail::make_array(spec, spec.type == T::PercpuArray ? cpus : 1);
            }
            break;
        case T::Hash:
        case T::PercpuHash:
        case T::LruHash:
        case T::LruPercpuHash:
            problem = keyless ? "key_size is 0" : spec.value_size == 0 ? "value_size is 0" : "";
            if (problem.empty()) {
                map = detail::make_hash(spec, percpu ? cpus : 1);
            }
            break;
        case T::Queue:
        case T::Stack:
            problem = !keyless               ? "a queue or stack has no key (key_size must be 0)"
                      : spec.value_size == 0 ? "value_size is 0"
                                             : "";
            if (problem.empty()) {
                map = detail::make_queue(spec);
            }
            break;
        case T::BloomFilter:
            problem = !keyless               ? "a bloom filter has no key (key_size must be 0)"
                      : spec.value_size == 0 ? "value_size is 0"
                                             : "";
            if (problem.empty()) {
                map = detail::make_bloom_filter(spec);
            }
            break;
        case T::LpmTrie:
            problem = spec.key_size <= 4 || spec.key_size > 4 + 256
                          ? "an LPM trie key is a 4-byte prefix length and 1 to 256 bytes of data"
                      : spec.value_size == 0                       ? "value_size is 0"
                      : (spec.flags & vm::kMapFlagNoPrealloc) == 0 ? "an LPM trie needs BPF_F_NO_PREALLOC in map_flags"
                                                                   : "";
            if (problem.empty()) {
                map = detail::make_lpm_trie(spec);
            }
            break;
        case T::Ringbuf: {
            const uint32_t n = spec.max_entries;
            problem = !keyless || spec.value_size != 0 ? "a ring buffer has no key or value (sizes must be 0)"
                      : (n & (n - 1)) != 0 || n % 4096 != 0
                          ? "a ring buffer's max_entries must be a power of 2 and a multiple of the 4096-byte page"
                          : "";
            if (problem.empty()) {
                map = detail::make_ringbuf(spec);
            }
            break;
        }
        case T::PerfEventArray:
            map = detail::make_perf_event_array(spec);
            break;
        case T::ProgArray:
        case T::ArrayOfMaps:
            problem = spec.key_size != 4 || spec.value_size != 4 ? "key_size and value_size must be 4" : "";
            if (problem.empty()) {
                map = detail::make_handle_array(spec);
            }
            break;
        case T::HashOfMaps:
            problem = keyless || spec.value_size != 4 ? "needs a key, and value_size 4" : "";
            if (problem.empty()) {
                map = detail::make_handle_hash(spec);
            }
            break;
        case T::Unspecified:
        case T::StackTrace:
        case T::CgroupArray:
        case T::Devmap:
        case T::Sockmap:
        case T::Cpumap:
        case T::Xskmap:
        case T::Sockhash:
        case T::CgroupStorage:
        case T::ReuseportSockarray:
        case T::PercpuCgroupStorage:
        case T::SkStorage:
        case T::DevmapHash:
        case T::StructOps:
        case T::InodeStorage:
        case T::TaskStorage:
        case T::UserRingbuf:
        case T::CgrpStorage:
        case T::Arena:
            break;
    }
    if (!problem.empty()) {
        return fail(problem);
    }
    if (!map) {
        return fail("map type " + std::string(vm::to_string(spec.type)) + " (" +
                    std::to_string(static_cast<uint32_t>(spec.type)) + ") is not supported");
    }
    return map;
}

}  // namespace bpfvm::helpers
