#include "bpfvm/vm/conformance_file.hpp"

#include <charconv>
#include <utility>

#include "bpfvm/vm/assembler.hpp"

namespace bpfvm::vm {

namespace {

enum class Section : uint8_t { None, Asm, Result, Mem, Raw, Note, C, Error };

// Header kinds are found by substring, in this order (upstream parser's rule).
Section header_kind(std::string_view line) {
    static constexpr std::pair<std::string_view, Section> kKinds[] = {
        {"asm", Section::Asm},     {"result", Section::Result},           {"mem", Section::Mem},
        {"raw", Section::Raw},     {"no register offset", Section::Note}, {" c", Section::C},
        {"error", Section::Error},
    };
    for (const auto& [text, kind] : kKinds) {
        if (line.find(text) != std::string_view::npos) {
            return kind;
        }
    }
    return Section::None;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
        s.remove_suffix(1);
    }
    return s;
}

std::optional<uint64_t> parse_u64(std::string_view t) {
    int base = 10;
    if (t.size() > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) {
        base = 16;
        t.remove_prefix(2);
    }
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v, base);
    if (t.empty() || ec != std::errc() || p != t.data() + t.size()) {
        return std::nullopt;
    }
    return v;
}

}  // namespace

Expected<ConformanceTest> parse_conformance(std::string_view text, std::string_view source) {
    ConformanceTest test;
    test.source = source;
    Section section = Section::None;
    std::string last_result;
    std::size_t result_line = 0;
    std::size_t number = 0;
    std::size_t pos = 0;
    auto where = [&](std::size_t line) { return std::string(source) + ":" + std::to_string(line); };
    while (pos < text.size()) {
        std::size_t end = text.find('\n', pos);
        if (end == std::string_view::npos) {
            end = text.size();
        }
        std::string_view line = text.substr(pos, end - pos);
        pos = end + 1;
        ++number;
        if (!line.empty() && line.back() == '\r') {
            line.remove_suffix(1);
        }
        if (const std::size_t hash = line.find('#'); hash != std::string_view::npos) {
            line = line.substr(0, hash);
        }
        if (line.find("--") != std::string_view::npos) {
            section = header_kind(line);
            if (section == Section::None) {
                return make_error(where(number), "unknown section header '" + std::string(trim(line)) + "'");
            }
            if (section == Section::Asm) {
                test.has_asm = true;
            }
            if (section == Section::Raw && !test.raw) {
                test.raw.emplace();
            }
            test.asm_text += "\n";
            continue;
        }
        const std::string_view content = trim(line);
        test.asm_text += section == Section::Asm ? std::string(line) + "\n" : "\n";
        if (content.empty()) {
            continue;
        }
        switch (section) {
            case Section::Result:
                last_result = content;
                result_line = number;
                break;
            case Section::Error:
                test.error = std::string(content);
                break;
            case Section::Mem:
            case Section::Raw: {
                std::size_t i = 0;
                while (i < content.size()) {
                    while (i < content.size() && (content[i] == ' ' || content[i] == '\t')) {
                        ++i;
                    }
                    const std::size_t start = i;
                    while (i < content.size() && content[i] != ' ' && content[i] != '\t') {
                        ++i;
                    }
                    const std::string_view tok = content.substr(start, i - start);
                    if (tok.empty()) {
                        continue;
                    }
                    if (section == Section::Mem) {
                        uint8_t byte = 0;
                        auto [p, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), byte, 16);
                        if (tok.size() > 2 || ec != std::errc() || p != tok.data() + tok.size()) {
                            return make_error(where(number),
                                              "bad byte '" + std::string(tok) + "' in -- mem (want 1-2 hex digits)");
                        }
                        test.mem.push_back(byte);
                    } else {
                        auto v = parse_u64(tok);
                        if (!v) {
                            return make_error(where(number),
                                              "bad instruction slot '" + std::string(tok) + "' in -- raw");
                        }
                        test.raw->push_back(*v);
                    }
                }
                break;
            }
            case Section::None:
            case Section::Asm:
            case Section::Note:
            case Section::C:
                break;
        }
    }
    if (!last_result.empty()) {
        const std::optional<uint64_t> v = parse_u64(last_result);  // "0x..." is hex, else decimal
        if (!v) {
            return make_error(where(result_line), "bad result '" + last_result + "' (want a 64-bit number)");
        }
        test.result = *v;
    }
    if (test.raw && test.raw->empty()) {
        test.raw.reset();
    }
    return test;
}

Expected<std::vector<RawInsn>> ConformanceTest::instructions() const {
    if (raw) {
        std::vector<RawInsn> out;
        out.reserve(raw->size());
        for (uint64_t slot : *raw) {
            out.push_back(from_u64(slot));
        }
        return out;
    }
    Expected<std::vector<RawInsn>> insns = assemble(asm_text, source);
    if (insns && insns->empty()) {
        return make_error(source, "no instructions in -- asm");
    }
    return insns;
}

}  // namespace bpfvm::vm
