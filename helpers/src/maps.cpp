#include "bpfvm/helpers/maps.hpp"

#include <cstring>
#include <string>
#include <unordered_map>

namespace bpfvm::helpers {

namespace {

constexpr std::size_t kMaxMapBytes = std::size_t{1} << 30;  // refuse maps over 1 GiB of storage

std::size_t round8(std::size_t n) {
    return (n + 7) & ~std::size_t{7};
}

// array: key = u32 index, every element exists.
class ArrayMap final : public Map {
public:
    explicit ArrayMap(vm::MapSpec spec)
        : Map(std::move(spec)), stride_(round8(spec_.value_size)), values_(stride_ * spec_.max_entries) {
        if (!spec_.initial_value.empty()) {
            std::memcpy(values_.data(), spec_.initial_value.data(),
                        std::min<std::size_t>(spec_.initial_value.size(), spec_.value_size));
        }
    }

    void* lookup(const void* key) override {
        const uint32_t i = index(key);
        return i < spec_.max_entries ? values_.data() + std::size_t{i} * stride_ : nullptr;
    }

    int update(const void* key, const void* value, uint64_t flags) override {
        if (flags > kExist) {
            return -kEINVAL;
        }
        const uint32_t i = index(key);
        if (i >= spec_.max_entries) {
            return -kE2BIG;
        }
        if (flags == kNoExist) {
            return -kEEXIST;  // array elements always exist
        }
        std::lock_guard lock(mutex_);
        std::memcpy(values_.data() + std::size_t{i} * stride_, value, spec_.value_size);
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

private:
    static uint32_t index(const void* key) {
        uint32_t i;
        std::memcpy(&i, key, 4);
        return i;
    }
    std::size_t stride_;
    std::vector<uint8_t> values_;
};

// hash: preallocated slots, a free list, and an index from key bytes to slot.
class HashMap final : public Map {
public:
    explicit HashMap(vm::MapSpec spec)
        : Map(std::move(spec)),
          stride_(round8(spec_.value_size)),
          values_(stride_ * spec_.max_entries),
          keys_(std::size_t{spec_.key_size} * spec_.max_entries),
          used_(spec_.max_entries, 0) {
        free_.reserve(spec_.max_entries);
        for (uint32_t i = spec_.max_entries; i > 0; --i) {
            free_.push_back(i - 1);
        }
    }

    void* lookup(const void* key) override {
        std::lock_guard lock(mutex_);
        auto it = index_.find(key_string(key));
        return it == index_.end() ? nullptr : value_at(it->second);
    }

    int update(const void* key, const void* value, uint64_t flags) override {
        if (flags > kExist) {
            return -kEINVAL;
        }
        std::lock_guard lock(mutex_);
        const std::string k = key_string(key);
        auto it = index_.find(k);
        if (it != index_.end()) {
            if (flags == kNoExist) {
                return -kEEXIST;
            }
            std::memcpy(value_at(it->second), value, spec_.value_size);
            return 0;
        }
        if (flags == kExist) {
            return -kENOENT;
        }
        if (free_.empty()) {
            return -kE2BIG;
        }
        const uint32_t slot = free_.back();
        free_.pop_back();
        std::memcpy(keys_.data() + std::size_t{slot} * spec_.key_size, key, spec_.key_size);
        std::memcpy(value_at(slot), value, spec_.value_size);
        used_[slot] = 1;
        index_.emplace(k, slot);
        return 0;
    }

    int erase(const void* key) override {
        std::lock_guard lock(mutex_);
        auto it = index_.find(key_string(key));
        if (it == index_.end()) {
            return -kENOENT;
        }
        used_[it->second] = 0;
        free_.push_back(it->second);
        index_.erase(it);
        return 0;
    }

    int next_key(const void* key, void* next) override {
        std::lock_guard lock(mutex_);
        uint32_t start = 0;
        if (key != nullptr) {
            auto it = index_.find(key_string(key));
            if (it != index_.end()) {
                start = it->second + 1;
            }
        }
        for (uint32_t s = start; s < spec_.max_entries; ++s) {
            if (used_[s] != 0) {
                std::memcpy(next, keys_.data() + std::size_t{s} * spec_.key_size, spec_.key_size);
                return 0;
            }
        }
        return -kENOENT;
    }

    [[nodiscard]] vm::Region region() const override {
        return {reinterpret_cast<uintptr_t>(values_.data()), values_.size(), true, "map value"};
    }

private:
    std::string key_string(const void* key) const { return std::string(static_cast<const char*>(key), spec_.key_size); }
    uint8_t* value_at(uint32_t slot) { return values_.data() + std::size_t{slot} * stride_; }

    std::size_t stride_;
    std::vector<uint8_t> values_;
    std::vector<uint8_t> keys_;
    std::vector<uint8_t> used_;
    std::vector<uint32_t> free_;
    std::unordered_map<std::string, uint32_t> index_;
};

}  // namespace

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
    std::vector<uint8_t> key(spec_.key_size);
    std::vector<uint8_t> next(spec_.key_size);
    const void* cursor = nullptr;
    for (uint64_t guard = 0; guard <= spec_.max_entries && next_key(cursor, next.data()) == 0; ++guard) {
        key = next;
        cursor = key.data();
        std::vector<uint8_t> value(spec_.value_size);
        if (read(key.data(), value.data()) == 0) {
            out.emplace_back(key, std::move(value));
        }
    }
    return out;
}

Expected<std::unique_ptr<Map>> create_map(const vm::MapSpec& spec) {
    const std::string where = "map '" + spec.name + "'";
    auto fail = [&](const std::string& what) -> Expected<std::unique_ptr<Map>> { return make_error(where, what); };
    if (spec.max_entries == 0) {
        return fail("max_entries is 0");
    }
    if (spec.value_size == 0) {
        return fail("value_size is 0");
    }
    const uint64_t bytes = uint64_t{spec.max_entries} * (round8(spec.value_size) + spec.key_size);
    if (bytes > kMaxMapBytes) {
        return fail(std::to_string(bytes) + " bytes of storage is more than the 1 GiB a map may have");
    }
    if (spec.type == vm::MapType::Array) {
        if (spec.key_size != 4) {
            return fail("an array's key_size must be 4, is " + std::to_string(spec.key_size));
        }
        return std::unique_ptr<Map>(std::make_unique<ArrayMap>(spec));
    }
    if (spec.type == vm::MapType::Hash) {
        if (spec.key_size == 0) {
            return fail("key_size is 0");
        }
        return std::unique_ptr<Map>(std::make_unique<HashMap>(spec));
    }
    return fail("map type " + std::string(vm::to_string(spec.type)) + " (" +
                std::to_string(static_cast<uint32_t>(spec.type)) + ") is not supported yet");
}

}  // namespace bpfvm::helpers
