// ringbuf: records of an 8-byte header (length, busy and discard bits) and data padded to 8
// bytes, produced by programs and consumed in order by the embedder. A record never wraps: when
// it does not fit before the end, a padding record fills the rest and it starts at the beginning.
// perf_event_array: samples queued per CPU index.
#include <cstring>
#include <deque>

#include "maps_impl.hpp"

namespace bpfvm::helpers::detail {

namespace {

constexpr uint32_t kBusy = 1u << 31;
constexpr uint32_t kDiscard = 1u << 30;
constexpr uint32_t kPadding = 1u << 29;  // internal: skip to the start
constexpr uint64_t kHeader = 8;

class RingBufferMap final : public RingBuffer {
public:
    explicit RingBufferMap(vm::MapSpec spec) : RingBuffer(std::move(spec)), data_(spec_.max_entries, 0) {}

    void* lookup(const void*) override { return nullptr; }
    int update(const void*, const void*, uint64_t) override { return -kEINVAL; }
    int erase(const void*) override { return -kEINVAL; }
    int next_key(const void*, void*) override { return -kEINVAL; }

    void* reserve(uint64_t size) override {
        if (size == 0 || size > data_.size() / 2) {
            return nullptr;
        }
        const uint64_t need = kHeader + round8(size);
        std::lock_guard lock(mutex_);
        uint64_t at = prod_ % data_.size();
        const uint64_t used = prod_ - cons_;
        uint64_t extra = 0;
        if (at + need > data_.size()) {
            extra = data_.size() - at;  // pad to the end
        }
        if (used + extra + need > data_.size()) {
            return nullptr;
        }
        if (extra != 0) {
            write_header(at, kPadding | static_cast<uint32_t>(extra - kHeader));
            prod_ += extra;
            at = 0;
        }
        write_header(at, kBusy | static_cast<uint32_t>(size));
        prod_ += need;
        return data_.data() + at + kHeader;
    }

    bool submit(const void* data, bool discard) override {
        const auto* p = static_cast<const uint8_t*>(data);
        if (p < data_.data() + kHeader || p >= data_.data() + data_.size()) {
            return false;
        }
        std::lock_guard lock(mutex_);
        const uint64_t at = static_cast<uint64_t>(p - data_.data()) - kHeader;
        const uint32_t h = header(at);
        if ((h & kBusy) == 0 || (h & kPadding) != 0) {
            return false;
        }
        write_header(at, (h & ~kBusy) | (discard ? kDiscard : 0));
        return true;
    }

    int output(const void* src, uint64_t size) override {
        void* dst = reserve(size);
        if (dst == nullptr) {
            return -kEBUSY;
        }
        std::memcpy(dst, src, size);
        submit(dst, false);
        return 0;
    }

    uint64_t query(uint64_t what) override {
        std::lock_guard lock(mutex_);
        switch (what) {
            case 0:
                return prod_ - cons_;
            case 1:
                return data_.size();
            case 2:
                return cons_;
            case 3:
                return prod_;
            default:
                return 0;
        }
    }

    std::vector<std::vector<uint8_t>> consume() override {
        std::lock_guard lock(mutex_);
        std::vector<std::vector<uint8_t>> out;
        while (cons_ < prod_) {
            const uint64_t at = cons_ % data_.size();
            const uint32_t h = header(at);
            if ((h & kBusy) != 0) {
                break;  // not submitted yet: later records wait, as in the kernel
            }
            const uint32_t len = h & ~(kBusy | kDiscard | kPadding);
            if ((h & (kDiscard | kPadding)) == 0) {
                out.emplace_back(data_.begin() + static_cast<std::ptrdiff_t>(at + kHeader),
                                 data_.begin() + static_cast<std::ptrdiff_t>(at + kHeader + len));
            }
            cons_ += kHeader + round8(len);
        }
        return out;
    }

    [[nodiscard]] vm::Region region() const override {
        return {reinterpret_cast<uintptr_t>(data_.data()), data_.size(), true, "ring buffer"};
    }

private:
    uint32_t header(uint64_t at) const {
        uint32_t h;
        std::memcpy(&h, data_.data() + at, 4);
        return h;
    }
    void write_header(uint64_t at, uint32_t h) { std::memcpy(data_.data() + at, &h, 4); }

    std::vector<uint8_t> data_;
    uint64_t prod_ = 0;
    uint64_t cons_ = 0;
};

class PerfEvents final : public PerfEventArray {
public:
    using PerfEventArray::PerfEventArray;

    void* lookup(const void*) override { return nullptr; }
    int update(const void*, const void*, uint64_t) override { return -kEINVAL; }
    int erase(const void*) override { return -kEINVAL; }
    int next_key(const void*, void*) override { return -kEINVAL; }

    int output(uint64_t cpu, const void* data, uint64_t size) override {
        if (cpu >= spec_.max_entries) {
            return -kE2BIG;
        }
        std::lock_guard lock(mutex_);
        if (samples_.size() >= 65536) {
            return -kENOSPC;
        }
        const auto* p = static_cast<const uint8_t*>(data);
        // As a perf buffer delivers a raw sample: its 4-byte size and the data fill whole 8-byte
        // words, the rest zero.
        std::vector<uint8_t> sample(p, p + size);
        sample.resize((size + 4 + 7) / 8 * 8 - 4, 0);
        samples_.emplace_back(static_cast<uint32_t>(cpu), std::move(sample));
        return 0;
    }

    std::vector<std::pair<uint32_t, std::vector<uint8_t>>> consume() override {
        std::lock_guard lock(mutex_);
        std::vector<std::pair<uint32_t, std::vector<uint8_t>>> out(samples_.begin(), samples_.end());
        samples_.clear();
        return out;
    }

    [[nodiscard]] vm::Region region() const override { return {}; }

private:
    std::deque<std::pair<uint32_t, std::vector<uint8_t>>> samples_;
};

}  // namespace

std::unique_ptr<Map> make_ringbuf(const vm::MapSpec& spec) {
    return std::make_unique<RingBufferMap>(spec);
}
std::unique_ptr<Map> make_perf_event_array(const vm::MapSpec& spec) {
    return std::make_unique<PerfEvents>(spec);
}

}  // namespace bpfvm::helpers::detail
