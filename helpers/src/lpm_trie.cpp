// lpm_trie: keys are {u32 prefixlen; u8 data[]} (data in network order); lookup finds the
// longest stored prefix that matches the first key.prefixlen bits of the key. Entries live in
// preallocated slots, searched linearly: correct first, fast later.
#include <cstring>

#include "maps_impl.hpp"

namespace bpfvm::helpers::detail {

namespace {

class LpmTrie final : public Map {
public:
    explicit LpmTrie(vm::MapSpec spec)
        : Map(std::move(spec)),
          data_size_(spec_.key_size - 4),
          stride_(round8(spec_.value_size)),
          values_(stride_ * spec_.max_entries),
          keys_(std::size_t{spec_.key_size} * spec_.max_entries),
          used_(spec_.max_entries, 0) {}

    void* lookup(const void* key) override {
        std::lock_guard lock(mutex_);
        const uint32_t len = prefix_len(key);
        if (len > max_bits()) {
            return nullptr;
        }
        int best = -1;
        uint32_t best_len = 0;
        for (uint32_t s = 0; s < spec_.max_entries; ++s) {
            if (used_[s] == 0) {
                continue;
            }
            const uint32_t l = prefix_len(stored_key(s));
            if (l <= len && (best < 0 || l > best_len) && matches(stored_key(s), key, l)) {
                best = static_cast<int>(s);
                best_len = l;
            }
        }
        return best < 0 ? nullptr : values_.data() + std::size_t(best) * stride_;
    }

    int update(const void* key, const void* value, uint64_t flags) override {
        if (flags > kExist) {
            return -kEINVAL;
        }
        if (prefix_len(key) > max_bits()) {
            return -kEINVAL;
        }
        std::lock_guard lock(mutex_);
        const int found = find_exact(key);
        if (found >= 0) {
            if (flags == kNoExist) {
                return -kEEXIST;
            }
            std::memcpy(values_.data() + std::size_t(found) * stride_, value, spec_.value_size);
            return 0;
        }
        if (flags == kExist) {
            return -kENOENT;
        }
        for (uint32_t s = 0; s < spec_.max_entries; ++s) {
            if (used_[s] == 0) {
                std::memcpy(keys_.data() + std::size_t{s} * spec_.key_size, key, spec_.key_size);
                std::memcpy(values_.data() + std::size_t{s} * stride_, value, spec_.value_size);
                used_[s] = 1;
                return 0;
            }
        }
        return -kENOSPC;  // the kernel's answer for a full trie
    }

    int erase(const void* key) override {
        std::lock_guard lock(mutex_);
        const int found = find_exact(key);
        if (found < 0) {
            return -kENOENT;
        }
        used_[static_cast<uint32_t>(found)] = 0;
        return 0;
    }

    int next_key(const void* key, void* next) override {
        std::lock_guard lock(mutex_);
        uint32_t start = 0;
        if (key != nullptr) {
            const int found = find_exact(key);
            start = found < 0 ? 0 : static_cast<uint32_t>(found) + 1;
        }
        for (uint32_t s = start; s < spec_.max_entries; ++s) {
            if (used_[s] != 0) {
                std::memcpy(next, stored_key(s), spec_.key_size);
                return 0;
            }
        }
        return -kENOENT;
    }

    int read(const void* key, void* out) override {
        std::lock_guard lock(mutex_);
        const int found = find_exact(key);
        if (found < 0) {
            return -kENOENT;
        }
        std::memcpy(out, values_.data() + std::size_t(found) * stride_, spec_.value_size);
        return 0;
    }

    [[nodiscard]] vm::Region region() const override {
        return {reinterpret_cast<uintptr_t>(values_.data()), values_.size(), true, "map value"};
    }

private:
    static uint32_t prefix_len(const void* key) {
        uint32_t l;
        std::memcpy(&l, key, 4);
        return l;
    }
    [[nodiscard]] uint32_t max_bits() const { return data_size_ * 8; }
    const uint8_t* stored_key(uint32_t s) const { return keys_.data() + std::size_t{s} * spec_.key_size; }

    // The first `bits` bits of the two keys' data agree.
    bool matches(const void* a, const void* b, uint32_t bits) const {
        const auto* x = static_cast<const uint8_t*>(a) + 4;
        const auto* y = static_cast<const uint8_t*>(b) + 4;
        const uint32_t whole = bits / 8;
        if (std::memcmp(x, y, whole) != 0) {
            return false;
        }
        const uint32_t rest = bits % 8;
        if (rest == 0) {
            return true;
        }
        const auto mask = static_cast<uint8_t>(0xff << (8 - rest));
        return (x[whole] & mask) == (y[whole] & mask);
    }

    int find_exact(const void* key) const {
        const uint32_t len = prefix_len(key);
        for (uint32_t s = 0; s < spec_.max_entries; ++s) {
            if (used_[s] != 0 && prefix_len(stored_key(s)) == len && matches(stored_key(s), key, len)) {
                return static_cast<int>(s);
            }
        }
        return -1;
    }

    uint32_t data_size_;
    std::size_t stride_;
    std::vector<uint8_t> values_;
    std::vector<uint8_t> keys_;
    std::vector<uint8_t> used_;
};

}  // namespace

std::unique_ptr<Map> make_lpm_trie(const vm::MapSpec& spec) {
    return std::make_unique<LpmTrie>(spec);
}

}  // namespace bpfvm::helpers::detail
