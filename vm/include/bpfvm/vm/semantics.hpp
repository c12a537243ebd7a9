// The arithmetic of RFC 9669, written once. The interpreter, the tests' expectations, and later
// the verifier's constant folding and the JITs' helpers all call these.
#pragma once

#include <cstdint>
#include <limits>
#include <type_traits>

namespace bpfvm::vm::sem {

// Unsigned division: x / 0 = 0 (RFC 9669, 4.1).
template <typename U>
constexpr U udiv(U a, U b) {
    static_assert(std::is_unsigned_v<U>);
    return b == 0 ? U{0} : U(a / b);
}

// Unsigned modulo: x % 0 = x.
template <typename U>
constexpr U umod(U a, U b) {
    static_assert(std::is_unsigned_v<U>);
    return b == 0 ? a : U(a % b);
}

// Signed division: x / 0 = 0, INT_MIN / -1 = INT_MIN (no overflow trap).
template <typename U>
constexpr U sdiv(U a, U b) {
    using S = std::make_signed_t<U>;
    const S sa = static_cast<S>(a);
    const S sb = static_cast<S>(b);
    if (sb == 0) {
        return 0;
    }
    if (sb == -1) {
        return U(U{0} - a);  // wraps for INT_MIN, as the RFC requires
    }
    return static_cast<U>(S(sa / sb));
}

// Signed modulo: x % 0 = x, INT_MIN % -1 = 0. The sign follows the dividend (truncation).
template <typename U>
constexpr U smod(U a, U b) {
    using S = std::make_signed_t<U>;
    const S sa = static_cast<S>(a);
    const S sb = static_cast<S>(b);
    if (sb == 0) {
        return a;
    }
    if (sb == -1) {
        return 0;
    }
    return static_cast<U>(S(sa % sb));
}

// Shifts mask their count to the operand width (RFC 9669, 4.1).
template <typename U>
constexpr U lsh(U a, uint64_t n) {
    return U(a << (n & (sizeof(U) * 8 - 1)));
}
template <typename U>
constexpr U rsh(U a, uint64_t n) {
    return U(a >> (n & (sizeof(U) * 8 - 1)));
}
template <typename U>
constexpr U arsh(U a, uint64_t n) {
    using S = std::make_signed_t<U>;
    return static_cast<U>(S(static_cast<S>(a) >> (n & (sizeof(U) * 8 - 1))));
}

// Sign-extend the low `bits` bits of v to 64 bits.
constexpr uint64_t sext(uint64_t v, unsigned bits) {
    switch (bits) {
        case 8:
            return static_cast<uint64_t>(static_cast<int64_t>(static_cast<int8_t>(v)));
        case 16:
            return static_cast<uint64_t>(static_cast<int64_t>(static_cast<int16_t>(v)));
        case 32:
            return static_cast<uint64_t>(static_cast<int64_t>(static_cast<int32_t>(v)));
        default:
            return v;
    }
}

constexpr uint16_t bswap16(uint16_t v) {
    return static_cast<uint16_t>((v >> 8) | (v << 8));
}
constexpr uint32_t bswap32(uint32_t v) {
    return (v >> 24) | ((v >> 8) & 0xff00u) | ((v << 8) & 0xff0000u) | (v << 24);
}
constexpr uint64_t bswap64(uint64_t v) {
    return (uint64_t{bswap32(static_cast<uint32_t>(v))} << 32) | bswap32(static_cast<uint32_t>(v >> 32));
}

// Byte swap of the low `bits` bits, zero-extended (bits = 16, 32 or 64).
constexpr uint64_t bswap(uint64_t v, unsigned bits) {
    switch (bits) {
        case 16:
            return bswap16(static_cast<uint16_t>(v));
        case 32:
            return bswap32(static_cast<uint32_t>(v));
        default:
            return bswap64(v);
    }
}

// Conversion to little-endian on a little-endian host only truncates (RFC 9669, 4.2).
constexpr uint64_t truncate(uint64_t v, unsigned bits) {
    return bits >= 64 ? v : (v & ((uint64_t{1} << bits) - 1));
}

static_assert(sdiv<uint32_t>(0x80000000u, 0xffffffffu) == 0x80000000u);
static_assert(smod<uint64_t>(uint64_t{1} << 63, ~uint64_t{0}) == 0);
static_assert(smod<uint32_t>(static_cast<uint32_t>(-7), 2) == static_cast<uint32_t>(-1));
static_assert(udiv<uint64_t>(5, 0) == 0 && umod<uint64_t>(5, 0) == 5);
static_assert(bswap64(0x0102030405060708ull) == 0x0807060504030201ull);

}  // namespace bpfvm::vm::sem
