// queue and stack (push / pop / peek), and the bloom filter (push adds, peek tests).
#include <cstring>

#include "maps_impl.hpp"

namespace bpfvm::helpers::detail {

namespace {

class QueueMap final : public Map {
public:
    explicit QueueMap(vm::MapSpec spec)
        : Map(std::move(spec)),
          fifo_(spec_.type == vm::MapType::Queue),
          values_(std::size_t{spec_.value_size} * spec_.max_entries) {}

    void* lookup(const void*) override { return nullptr; }
    int update(const void*, const void* value, uint64_t flags) override { return push(value, flags); }
    int erase(const void*) override { return -kEINVAL; }
    int next_key(const void*, void*) override { return -kEINVAL; }

    // BPF_EXIST on a full map drops the oldest element to make room.
    int push(const void* value, uint64_t flags) override {
        if (flags != kAny && flags != kExist) {
            return -kEINVAL;
        }
        std::lock_guard lock(mutex_);
        if (count_ == spec_.max_entries) {
            if (flags != kExist) {
                return -kE2BIG;
            }
            head_ = (head_ + 1) % spec_.max_entries;  // the oldest element
            --count_;
        }
        std::memcpy(slot((head_ + count_) % spec_.max_entries), value, spec_.value_size);
        ++count_;
        return 0;
    }

    int pop(void* out) override { return take(out, true); }
    int peek(void* out) override { return take(out, false); }

    [[nodiscard]] vm::Region region() const override {
        return {reinterpret_cast<uintptr_t>(values_.data()), values_.size(), false, "queue"};
    }

private:
    int take(void* out, bool remove) {
        std::lock_guard lock(mutex_);
        if (count_ == 0) {
            return -kENOENT;
        }
        const uint32_t at = fifo_ ? head_ : (head_ + count_ - 1) % spec_.max_entries;
        std::memcpy(out, slot(at), spec_.value_size);
        if (remove) {
            if (fifo_) {
                head_ = (head_ + 1) % spec_.max_entries;
            }
            --count_;
        }
        return 0;
    }
    uint8_t* slot(uint32_t i) { return values_.data() + std::size_t{i} * spec_.value_size; }

    bool fifo_;
    std::vector<uint8_t> values_;
    uint32_t head_ = 0;
    uint32_t count_ = 0;
};

// k hash functions over a bit array of about 1.44 * k * max_entries bits (rounded to a power of
// two), k = map_extra & 0xf or 5 as in the kernel. False positives, never false negatives.
class BloomFilter final : public Map {
public:
    explicit BloomFilter(vm::MapSpec spec) : Map(std::move(spec)) {
        uint64_t bits = uint64_t{spec_.max_entries} * hashes_ * 144 / 100 + 1;
        uint64_t size = 64;
        while (size < bits && size < (uint64_t{1} << 32)) {
            size <<= 1;
        }
        bits_.assign(size / 64, 0);
        mask_ = size - 1;
    }

    void* lookup(const void*) override { return nullptr; }
    int update(const void*, const void* value, uint64_t flags) override { return push(value, flags); }
    int erase(const void*) override { return -kEINVAL; }
    int next_key(const void*, void*) override { return -kEINVAL; }

    int push(const void* value, uint64_t flags) override {
        if (flags != kAny) {
            return -kEINVAL;
        }
        std::lock_guard lock(mutex_);
        for (uint32_t i = 0; i < hashes_; ++i) {
            const uint64_t b = hash(value, i) & mask_;
            bits_[b / 64] |= uint64_t{1} << (b % 64);
        }
        return 0;
    }

    int peek(void* value) override {
        std::lock_guard lock(mutex_);
        for (uint32_t i = 0; i < hashes_; ++i) {
            const uint64_t b = hash(value, i) & mask_;
            if ((bits_[b / 64] & (uint64_t{1} << (b % 64))) == 0) {
                return -kENOENT;
            }
        }
        return 0;
    }

    [[nodiscard]] vm::Region region() const override {
        return {reinterpret_cast<uintptr_t>(bits_.data()), bits_.size() * 8, false, "bloom filter"};
    }

private:
    uint64_t hash(const void* value, uint32_t seed) const {
        uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t{seed} * 0x9e3779b97f4a7c15ull);
        const auto* p = static_cast<const uint8_t*>(value);
        for (uint32_t i = 0; i < spec_.value_size; ++i) {
            h = (h ^ p[i]) * 0x100000001b3ull;
        }
        return h ^ (h >> 29);
    }

    uint32_t hashes_ = 5;
    std::vector<uint64_t> bits_;
    uint64_t mask_ = 0;
};

}  // namespace

std::unique_ptr<Map> make_queue(const vm::MapSpec& spec) {
    return std::make_unique<QueueMap>(spec);
}
std::unique_ptr<Map> make_bloom_filter(const vm::MapSpec& spec) {
    return std::make_unique<BloomFilter>(spec);
}

}  // namespace bpfvm::helpers::detail
