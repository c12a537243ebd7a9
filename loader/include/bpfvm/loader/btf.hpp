// BTF and BTF.ext (the kernel's Documentation/bpf/btf.rst): type information, function info and
// line info. Parsed from untrusted bytes: every offset and count is checked.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "bpfvm/vm/expected.hpp"

namespace bpfvm::loader {

enum class BtfKind : uint8_t {
    Void = 0,
    Int = 1,
    Ptr = 2,
    Array = 3,
    Struct = 4,
    Union = 5,
    Enum = 6,
    Fwd = 7,
    Typedef = 8,
    Volatile = 9,
    Const = 10,
    Restrict = 11,
    Func = 12,
    FuncProto = 13,
    Var = 14,
    Datasec = 15,
    Float = 16,
    DeclTag = 17,
    TypeTag = 18,
    Enum64 = 19,
};

std::string_view to_string(BtfKind kind);

// A struct/union member, function parameter or datasec entry.
struct BtfMember {
    std::string name;  // empty for datasec entries
    uint32_t type = 0;
    uint32_t offset = 0;         // struct: bit offset; datasec: byte offset
    uint32_t bitfield_size = 0;  // struct with kind_flag: bitfield width; datasec: byte size
};

struct BtfEnumerator {
    std::string name;
    int64_t value = 0;
};

struct BtfType {
    BtfKind kind = BtfKind::Void;
    std::string name;
    bool kind_flag = false;
    uint32_t size = 0;        // int, struct, union, enum, datasec, float: byte size
    uint32_t ref = 0;         // ptr, typedef, cv, func, var, decl_tag, type_tag: referenced type
    uint32_t int_bits = 0;    // int
    bool int_signed = false;  // int
    uint32_t array_elem = 0, array_index = 0, array_nelems = 0;  // array
    uint32_t linkage = 0;                                        // var, func
    std::vector<BtfMember> members;
    std::vector<BtfEnumerator> enumerators;
};

class Btf {
public:
    // `where` names the source in errors ("section '.BTF'").
    static Expected<Btf> parse(std::span<const uint8_t> bytes, const std::string& where);

    [[nodiscard]] uint32_t count() const { return static_cast<uint32_t>(types_.size()); }  // ids 0..count-1
    [[nodiscard]] const BtfType& type(uint32_t id) const { return types_[id]; }
    [[nodiscard]] bool valid(uint32_t id) const { return id < types_.size(); }
    // The string at an offset in the string section, if in range.
    [[nodiscard]] std::optional<std::string> string_at(uint32_t offset) const;

    // Follows typedef, const, volatile, restrict and type tags to the underlying type.
    [[nodiscard]] Expected<uint32_t> resolve(uint32_t id) const;
    // Size in bytes of a type (pointers are 8).
    [[nodiscard]] Expected<uint64_t> size_of(uint32_t id) const;
    // First type of this kind and name.
    [[nodiscard]] std::optional<uint32_t> find(BtfKind kind, std::string_view name) const;

private:
    std::vector<BtfType> types_;
    std::vector<char> strings_;
};

// Function and line info for one code section (BTF.ext). Offsets are in bytes from the start of
// the section, as the file stores them.
struct BtfLineInfo {
    uint32_t insn_offset = 0;
    std::string file;
    std::string line;  // the source text of the line
    uint32_t line_number = 0;
    uint32_t column = 0;
};

struct BtfFuncInfo {
    uint32_t insn_offset = 0;
    uint32_t type_id = 0;
};

// CO-RE relocation kinds (enum bpf_core_relo_kind).
enum class CoreReloKind : uint32_t {
    FieldByteOffset = 0,
    FieldByteSize = 1,
    FieldExists = 2,
    FieldSigned = 3,
    FieldLshiftU64 = 4,
    FieldRshiftU64 = 5,
    TypeIdLocal = 6,
    TypeIdTarget = 7,
    TypeExists = 8,
    TypeSize = 9,
    EnumvalExists = 10,
    EnumvalValue = 11,
    TypeMatches = 12,
};

struct BtfCoreRelo {
    uint32_t insn_offset = 0;
    uint32_t type_id = 0;
    std::string access;  // "0:1:2" access string
    CoreReloKind kind = CoreReloKind::FieldByteOffset;
};

struct BtfExt {
    std::map<std::string, std::vector<BtfFuncInfo>> func_info;  // by section name
    std::map<std::string, std::vector<BtfLineInfo>> line_info;
    std::map<std::string, std::vector<BtfCoreRelo>> core_relos;

    // Strings (section names, file names, source lines, access strings) live in the BTF.
    static Expected<BtfExt> parse(std::span<const uint8_t> bytes, const Btf& btf, const std::string& where);
};

}  // namespace bpfvm::loader
