// ELF objects as clang writes them for `-target bpf` (DESIGN.md, loader/): programs found by
// section name as libbpf spells them, .text subprograms linked in, map and global-data
// references turned into lddw pseudo forms that name maps by index, BTF and BTF.ext read.
//
// The result is data: maps are described, not created (the runtime in helpers/ creates them
// and resolves the map indices to addresses when it links a program).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "bpfvm/loader/btf.hpp"
#include "bpfvm/vm/expected.hpp"
#include "bpfvm/vm/program.hpp"
#include "bpfvm/vm/specs.hpp"

namespace bpfvm::loader {

// Where an instruction of a linked program came from.
struct SourceLocation {
    std::string file;
    uint32_t line = 0;
    uint32_t column = 0;
    std::string text;  // the source line, when BTF.ext has it
};

struct Function {
    std::string name;
    uint32_t pc = 0;  // first instruction in the linked program
};

struct ProgramInfo {
    std::string name;     // the function symbol (the section name for symbol-less old objects)
    std::string section;  // ELF section
    vm::ProgramType type = vm::ProgramType::Unspecified;
    bool type_known = false;  // the section name is one libbpf knows
    // The program with its subprograms appended. Map references are lddw src 5 (map by index)
    // and src 6 (map value by index, offset in the second slot's imm) naming Object::maps;
    // function references are lddw src 4 with a pc-relative imm.
    std::vector<vm::RawInsn> insns;
    std::vector<Function> functions;                   // main first, then subprograms
    std::vector<std::optional<SourceLocation>> lines;  // per pc; empty without BTF.ext
};

struct RelocationInfo {
    std::string section;  // the section the relocation patches
    uint64_t offset = 0;  // byte offset in that section
    uint32_t type = 0;    // R_BPF_*
    std::string symbol;
    std::string target;  // what it resolved to: "map 'x'", "subprogram 'f'", ...
};

struct Object {
    std::string name;  // file name, for messages
    std::string license;
    std::optional<uint32_t> kernel_version;
    std::vector<ProgramInfo> programs;
    std::vector<vm::MapSpec> maps;
    std::vector<RelocationInfo> relocations;
    std::optional<Btf> btf;
    std::optional<BtfExt> btf_ext;
    std::vector<std::string> notes;  // things read but ignored on purpose

    [[nodiscard]] const ProgramInfo* find_program(std::string_view name) const;
    // Sets a global variable's initial bytes before the object's maps are created: libbpf's
    // `const volatile` configuration pattern for .rodata, and plain globals in .data/.bss.
    // The variable is found by name in the BTF; `bytes` must be exactly its size.
    Expected<Unit> set_global(std::string_view variable, std::span<const uint8_t> bytes);
    // The same for a number, written little-endian in the variable's size (which must hold it).
    Expected<Unit> set_global(std::string_view variable, uint64_t value);
    [[nodiscard]] std::optional<uint32_t> find_map(std::string_view name) const;
};

struct LoadOptions {
    // CO-RE: the BTF that relocations are resolved against. Unset: the object's own BTF (every
    // relocation keeps its compiled value).
    // (shared: a kernel's BTF is megabytes, parsed once and used for every object)
    std::shared_ptr<const Btf> target_btf;
    // Values of `extern ... __kconfig` variables (LINUX_KERNEL_VERSION, CONFIG_*), by name.
    std::map<std::string, uint64_t> kconfig;
};

// A target BTF for CO-RE: raw BTF (as /sys/kernel/btf/vmlinux) or the .BTF section of an ELF file.
Expected<Btf> load_btf_file(const std::string& path);

// `name` is used in every error ("prog.o: section 'xdp': ...").
Expected<Object> load_object(std::span<const uint8_t> bytes, const std::string& name, const LoadOptions& options = {});
Expected<Object> load_object_file(const std::string& path, const LoadOptions& options = {});

const char* relocation_type_name(uint32_t type);

}  // namespace bpfvm::loader
