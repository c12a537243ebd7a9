// Reading the command's inputs: program files of the three kinds, byte files, conformance runs.
#pragma once

#include <string>
#include <vector>

#include "bpfvm/vm/expected.hpp"
#include "bpfvm/vm/helpers.hpp"
#include "bpfvm/vm/interpreter.hpp"
#include "bpfvm/vm/program.hpp"

namespace bpfvm::cli {

Expected<std::vector<uint8_t>> read_bytes(const std::string& path);

struct LoadedProgram {
    vm::Program program;
    std::vector<uint8_t> mem;  // a conformance file's `-- mem`, else empty
};

// By extension: .s/.asm assembly, .data conformance test, anything else raw bytecode.
Expected<LoadedProgram> load_program(const std::string& path);

// The helpers the command offers: helper 5 as the conformance suite expects it.
vm::HelperTable default_helpers();

struct ConformanceOutcome {
    enum class Status { Pass, Fail, Skip };
    Status status;
    std::string detail;
};

ConformanceOutcome run_conformance_file(const std::string& path, const vm::HelperTable& helpers, vm::Mode mode);

}  // namespace bpfvm::cli
