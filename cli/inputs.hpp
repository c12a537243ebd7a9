// Reading the command's inputs: program files of the three kinds, byte files, conformance runs.
#pragma once

#include <string>
#include <vector>

#include "bpfvm/jit/engine.hpp"
#include "bpfvm/loader/object.hpp"
#include "bpfvm/vm/assembler.hpp"
#include "bpfvm/vm/expected.hpp"
#include "bpfvm/vm/helpers.hpp"
#include "bpfvm/vm/interpreter.hpp"
#include "bpfvm/vm/program.hpp"

namespace bpfvm::cli {

Expected<std::vector<uint8_t>> read_bytes(const std::string& path);

struct LoadedProgram {
    vm::Program program;
    std::vector<uint8_t> mem;              // a conformance file's `-- mem`, else empty
    std::optional<loader::Object> object;  // for ELF objects
    std::size_t program_index = 0;         // which of object->programs
};

bool is_elf(const std::vector<uint8_t>& bytes);

// ELF objects by their magic (`program` picks one by name; default the first), then by extension:
// .s/.asm assembly, .data conformance test, anything else raw bytecode.
Expected<LoadedProgram> load_program(const std::string& path, const std::string& program = "",
                                     const loader::LoadOptions& options = {});

// NAME=NUMBER (decimal, 0x hex or 0 octal), as --kconfig and --set take them; `option` names
// the flag in the error.
Expected<std::pair<std::string, uint64_t>> parse_assignment(const std::string& text, const std::string& option);

// Loader options from the command line: --btf FILE or --kernel-btf (the CO-RE target), and
// --kconfig NAME=VALUE (repeatable).
Expected<loader::LoadOptions> load_options(const std::string& btf_file, bool kernel_btf,
                                           const std::vector<std::string>& kconfig);

// What the disassembler prints around an object's program: source lines and map names.
vm::Annotations annotations_for(const loader::Object& object, const loader::ProgramInfo& program);

// The helpers the command offers: helper 5 as the conformance suite expects it.
vm::HelperTable default_helpers();

struct ConformanceOutcome {
    enum class Status { Pass, Fail, Skip };
    Status status;
    std::string detail;
};

ConformanceOutcome run_conformance_file(const std::string& path, const vm::HelperTable& helpers, jit::Engine engine);

}  // namespace bpfvm::cli
