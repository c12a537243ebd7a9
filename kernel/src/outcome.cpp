#include "bpfvm/kernel/outcome.hpp"

#include <algorithm>
#include <cstdio>
#include <map>

namespace bpfvm::kernel {

std::string_view to_string(Outcome::Status s) {
    switch (s) {
        case Outcome::Status::Ran:
            return "ran";
        case Outcome::Status::Trapped:
            return "trapped";
        case Outcome::Status::InputRefused:
            return "input refused";
        case Outcome::Status::ProgramRefused:
            return "program refused";
        case Outcome::Status::Unavailable:
            return "unavailable";
    }
    return "?";
}

std::string hex(std::span<const uint8_t> bytes) {
    static const char* kDigits = "0123456789abcdef";
    std::string s;
    s.reserve(bytes.size() * 2);
    for (uint8_t b : bytes) {
        s += kDigits[b >> 4];
        s += kDigits[b & 15];
    }
    return s;
}

namespace {

std::string number(uint64_t v) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%llu (0x%llx)", static_cast<unsigned long long>(v),
                  static_cast<unsigned long long>(v));
    return buf;
}

std::string status_text(const Outcome& o) {
    std::string s(to_string(o.status));
    if (o.status == Outcome::Status::Ran) {
        s += ", retval " + number(o.retval);
    } else if (!o.reason.empty()) {
        s += ": " + o.reason;
    }
    return s;
}

// Where two byte strings first differ, as "offset N: xx vs yy" (or their lengths).
void compare_bytes(const std::string& what, const std::vector<uint8_t>& a, const std::vector<uint8_t>& b,
                   std::vector<Difference>& out) {
    if (a == b) {
        return;
    }
    if (a.size() != b.size()) {
        out.push_back({what + " length", std::to_string(a.size()), std::to_string(b.size())});
    }
    const std::size_t n = std::min(a.size(), b.size());
    for (std::size_t i = 0; i < n; ++i) {
        if (a[i] != b[i]) {
            const std::size_t end = std::min(n, i + 16);
            out.push_back(
                {what + " at byte " + std::to_string(i), hex({a.data() + i, end - i}), hex({b.data() + i, end - i})});
            return;
        }
    }
}

void compare_map(const MapDump& k, const MapDump& o, std::vector<Difference>& out) {
    const std::string what = "map '" + k.name + "'";
    const bool keys_only = !k.partial.empty() || !o.partial.empty();
    std::map<std::vector<uint8_t>, std::vector<uint8_t>> a(k.entries.begin(), k.entries.end());
    std::map<std::vector<uint8_t>, std::vector<uint8_t>> b(o.entries.begin(), o.entries.end());
    for (const auto& [key, value] : a) {
        auto it = b.find(key);
        if (it == b.end()) {
            out.push_back({what + " key " + hex(key), keys_only ? "present" : hex(value), "absent"});
        } else if (!keys_only && it->second != value) {
            out.push_back({what + " key " + hex(key), hex(value), hex(it->second)});
        }
    }
    for (const auto& [key, value] : b) {
        if (a.find(key) == a.end()) {
            out.push_back({what + " key " + hex(key), "absent", keys_only ? "present" : hex(value)});
        }
    }
    if (!keys_only && k.records != o.records) {
        std::string ka, oa;
        for (const auto& r : k.records) {
            ka += (ka.empty() ? "" : " ") + hex(r);
        }
        for (const auto& r : o.records) {
            oa += (oa.empty() ? "" : " ") + hex(r);
        }
        out.push_back({what + " records", ka.empty() ? "(none)" : ka, oa.empty() ? "(none)" : oa});
    }
}

}  // namespace

std::vector<Difference> compare(const Outcome& kernel, const Outcome& other) {
    std::vector<Difference> out;
    using S = Outcome::Status;
    if (kernel.status == S::ProgramRefused || kernel.status == S::Unavailable) {
        return out;  // nothing to compare with
    }
    if (kernel.status != other.status) {
        out.push_back({"status", status_text(kernel), status_text(other)});
        return out;
    }
    if (kernel.status == S::InputRefused) {
        if (kernel.err != other.err) {
            out.push_back({"errno", std::to_string(kernel.err), std::to_string(other.err)});
        }
        return out;
    }
    const bool full = kernel.retval_is_64_bits && other.retval_is_64_bits;
    const uint64_t mask = full ? ~uint64_t{0} : uint64_t{0xffffffff};
    if ((kernel.retval & mask) != (other.retval & mask)) {
        out.push_back(
            {full ? "retval" : "retval (low 32 bits)", number(kernel.retval & mask), number(other.retval & mask)});
    }
    if (kernel.has_data && other.has_data) {
        compare_bytes("packet", kernel.data_out, other.data_out, out);
    }
    if (kernel.has_ctx && other.has_ctx) {
        compare_bytes("ctx", kernel.ctx_out, other.ctx_out, out);
    }
    for (const MapDump& k : kernel.maps) {
        auto it =
            std::find_if(other.maps.begin(), other.maps.end(), [&](const MapDump& m) { return m.name == k.name; });
        if (it == other.maps.end()) {
            out.push_back({"map '" + k.name + "'", "present", "absent"});
            continue;
        }
        compare_map(k, *it, out);
    }
    for (const MapDump& o : other.maps) {
        if (std::none_of(kernel.maps.begin(), kernel.maps.end(), [&](const MapDump& m) { return m.name == o.name; })) {
            out.push_back({"map '" + o.name + "'", "absent", "present"});
        }
    }
    return out;
}

}  // namespace bpfvm::kernel
