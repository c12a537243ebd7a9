// Reader for bpf_conformance test files (the format ../shared/conformance/README.md describes):
// sections `-- asm`, `-- raw`, `-- mem`, `-- result`, `-- error`, `-- c`, `-- no register offset`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bpfvm/vm/expected.hpp"
#include "bpfvm/vm/program.hpp"

namespace bpfvm::vm {

struct ConformanceTest {
    std::string source;    // file name, for messages
    std::string asm_text;  // the file with every non-asm line blanked, so
                           // assembler errors carry the file's line numbers
    bool has_asm = false;
    std::optional<std::vector<uint64_t>> raw;  // `-- raw`: slots to execute instead of the asm
    std::vector<uint8_t> mem;                  // `-- mem`: input bytes
    std::optional<uint64_t> result;            // `-- result`: expected r0
    std::optional<std::string> error;          // `-- error`: expected refusal text

    // A file with no expectation, or no program, is skipped (upstream runner rule).
    [[nodiscard]] bool runnable() const { return (result || error) && (has_asm || raw); }

    // The program's slots: `-- raw` if present, else the assembled `-- asm`.
    [[nodiscard]] Expected<std::vector<RawInsn>> instructions() const;
};

Expected<ConformanceTest> parse_conformance(std::string_view text, std::string_view source);

}  // namespace bpfvm::vm
