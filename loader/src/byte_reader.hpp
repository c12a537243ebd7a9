// Bounds-checked little-endian reads from untrusted bytes (private to loader/).
#pragma once

#include <cstdint>
#include <cstdio>
#include <span>
#include <string>

namespace bpfvm::loader {

class ByteReader {
public:
    ByteReader(std::span<const uint8_t> bytes, std::string where) : bytes_(bytes), where_(std::move(where)) {}

    [[nodiscard]] bool done() const { return pos_ >= bytes_.size(); }
    [[nodiscard]] std::size_t remaining() const { return bytes_.size() - pos_; }

    bool u8(uint8_t& out) { return read(out); }
    bool u16(uint16_t& out) { return read(out); }
    bool u32(uint32_t& out) { return read(out); }
    bool u64(uint64_t& out) { return read(out); }

    // The next n bytes (the caller checked remaining()).
    std::span<const uint8_t> take(std::size_t n) {
        const std::span<const uint8_t> s = bytes_.subspan(pos_, n);
        pos_ += n;
        return s;
    }

private:
    template <typename T>
    bool read(T& out) {
        if (remaining() < sizeof(T)) {
            pos_ = bytes_.size();
            return false;
        }
        uint64_t v = 0;
        for (std::size_t i = 0; i < sizeof(T); ++i) {
            v |= uint64_t{bytes_[pos_ + i]} << (8 * i);
        }
        out = static_cast<T>(v);
        pos_ += sizeof(T);
        return true;
    }

    std::span<const uint8_t> bytes_;
    std::string where_;
    std::size_t pos_ = 0;
};

inline std::string hex16(uint16_t v) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%04x", v);
    return buf;
}

}  // namespace bpfvm::loader
