// Runs one program on every engine and compares them with the checked interpreter: r0, the
// buffer after the run, the trap (kind, pc, width, direction, buffer-relative address) and, for
// the checked JIT, the instruction count. Unchecked engines run only what the checked
// interpreter finished.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bpfvm/vm/helpers.hpp"
#include "bpfvm/vm/program.hpp"

namespace bpfvm::test {

struct Disagreement {
    bool any = false;
    std::string report;  // one line per difference, naming the engines
};

Disagreement compare_engines(const vm::Program& program, const vm::HelperTable& helpers,
                             const std::vector<uint8_t>& buffer, uint64_t budget);

// A program and its buffer as a conformance-format file (-- asm, -- mem), the form in which
// mismatches are kept as regression tests.
std::string as_test_file(const vm::Program& program, const std::vector<uint8_t>& buffer, const std::string& comment);

}  // namespace bpfvm::test
