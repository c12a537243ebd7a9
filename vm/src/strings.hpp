// Small text helpers private to vm/ (g++ 12 has no <format>).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace bpfvm::vm {

inline std::string hex(uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
    return buf;
}

inline std::string hex2(uint8_t v) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "0x%02x", v);
    return buf;
}

}  // namespace bpfvm::vm
