// hash, percpu_hash, lru_hash, lru_percpu_hash: preallocated slots, a free list, an index from key
// bytes to slot and, for the LRU kinds, a recency list that picks the victim when the map is full.
#include <cstring>
#include <list>
#include <string>
#include <unordered_map>

#include "maps_impl.hpp"

namespace bpfvm::helpers::detail {

namespace {

class HashMap final : public Map {
public:
    HashMap(vm::MapSpec spec, unsigned cpus)
        : Map(std::move(spec)),
          cpus_(cpus),
          lru_(spec_.type == vm::MapType::LruHash || spec_.type == vm::MapType::LruPercpuHash),
          stride_(round8(spec_.value_size)),
          values_(stride_ * cpus_ * spec_.max_entries),
          keys_(std::size_t{spec_.key_size} * spec_.max_entries),
          used_(spec_.max_entries, 0),
          recency_pos_(spec_.max_entries) {
        free_.reserve(spec_.max_entries);
        for (uint32_t i = spec_.max_entries; i > 0; --i) {
            free_.push_back(i - 1);
        }
    }

    void* lookup(const void* key) override {
        std::lock_guard lock(mutex_);
        auto it = index_.find(key_string(key));
        if (it == index_.end()) {
            return nullptr;
        }
        touch(it->second);
        return value_at(it->second, cpus_ == 1 ? 0 : current_cpu(cpus_));
    }

    int update(const void* key, const void* value, uint64_t flags) override {
        return store(key, value, flags, cpus_ == 1 ? 0 : current_cpu(cpus_), false);
    }

    int erase(const void* key) override {
        std::lock_guard lock(mutex_);
        auto it = index_.find(key_string(key));
        if (it == index_.end()) {
            return -kENOENT;
        }
        release(it->second);
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

    [[nodiscard]] std::size_t user_value_size() const override {
        return cpus_ == 1 ? spec_.value_size : stride_ * cpus_;
    }

    int read(const void* key, void* out) override {
        std::lock_guard lock(mutex_);
        auto it = index_.find(key_string(key));
        if (it == index_.end()) {
            return -kENOENT;
        }
        std::memcpy(out, value_at(it->second, 0), user_value_size());
        return 0;
    }

    int write(const void* key, const void* value, uint64_t flags) override { return store(key, value, flags, 0, true); }

private:
    // One CPU's value, or (all_cpus) every CPU's values laid out one after another.
    int store(const void* key, const void* value, uint64_t flags, unsigned cpu, bool all_cpus) {
        if (flags > kExist) {
            return -kEINVAL;
        }
        std::lock_guard lock(mutex_);
        const std::string k = key_string(key);
        auto it = index_.find(k);
        const std::size_t bytes = all_cpus ? user_value_size() : spec_.value_size;
        if (it != index_.end()) {
            if (flags == kNoExist) {
                return -kEEXIST;
            }
            std::memcpy(value_at(it->second, all_cpus ? 0 : cpu), value, bytes);
            touch(it->second);
            return 0;
        }
        if (flags == kExist) {
            return -kENOENT;
        }
        if (free_.empty()) {
            if (!lru_ || recency_.empty()) {
                return -kE2BIG;
            }
            // LRU: the least recently used element makes room.
            const uint32_t victim = recency_.back();
            index_.erase(key_string(keys_.data() + std::size_t{victim} * spec_.key_size));
            release(victim);
        }
        const uint32_t slot = free_.back();
        free_.pop_back();
        std::memcpy(keys_.data() + std::size_t{slot} * spec_.key_size, key, spec_.key_size);
        std::memset(value_at(slot, 0), 0, stride_ * cpus_);
        std::memcpy(value_at(slot, all_cpus ? 0 : cpu), value, bytes);
        used_[slot] = 1;
        if (lru_) {
            recency_.push_front(slot);
            recency_pos_[slot] = recency_.begin();
        }
        index_.emplace(k, slot);
        return 0;
    }

    void touch(uint32_t slot) {
        if (lru_) {
            recency_.splice(recency_.begin(), recency_, recency_pos_[slot]);
        }
    }

    void release(uint32_t slot) {
        used_[slot] = 0;
        if (lru_) {
            recency_.erase(recency_pos_[slot]);
        }
        free_.push_back(slot);
    }

    std::string key_string(const void* key) const { return std::string(static_cast<const char*>(key), spec_.key_size); }
    uint8_t* value_at(uint32_t slot, unsigned cpu) {
        return values_.data() + (std::size_t{slot} * cpus_ + cpu) * stride_;
    }

    unsigned cpus_;
    bool lru_;
    std::size_t stride_;
    std::vector<uint8_t> values_;
    std::vector<uint8_t> keys_;
    std::vector<uint8_t> used_;
    std::vector<uint32_t> free_;
    std::unordered_map<std::string, uint32_t> index_;
    std::list<uint32_t> recency_;  // most recent first
    std::vector<std::list<uint32_t>::iterator> recency_pos_;
};

}  // namespace

std::unique_ptr<Map> make_hash(const vm::MapSpec& spec, unsigned cpus) {
    return std::make_unique<HashMap>(spec, cpus);
}

}  // namespace bpfvm::helpers::detail
