#include "bpfvm/loader/btf.hpp"

#include <cstring>

#include "byte_reader.hpp"

namespace bpfvm::loader {

namespace {

constexpr uint16_t kBtfMagic = 0xeb9f;
constexpr uint32_t kMaxTypes = 1u << 20;  // far beyond any real object; bounds work on garbage

}  // namespace

std::string_view to_string(BtfKind kind) {
    switch (kind) {
        case BtfKind::Void:
            return "void";
        case BtfKind::Int:
            return "int";
        case BtfKind::Ptr:
            return "ptr";
        case BtfKind::Array:
            return "array";
        case BtfKind::Struct:
            return "struct";
        case BtfKind::Union:
            return "union";
        case BtfKind::Enum:
            return "enum";
        case BtfKind::Fwd:
            return "fwd";
        case BtfKind::Typedef:
            return "typedef";
        case BtfKind::Volatile:
            return "volatile";
        case BtfKind::Const:
            return "const";
        case BtfKind::Restrict:
            return "restrict";
        case BtfKind::Func:
            return "func";
        case BtfKind::FuncProto:
            return "func_proto";
        case BtfKind::Var:
            return "var";
        case BtfKind::Datasec:
            return "datasec";
        case BtfKind::Float:
            return "float";
        case BtfKind::DeclTag:
            return "decl_tag";
        case BtfKind::TypeTag:
            return "type_tag";
        case BtfKind::Enum64:
            return "enum64";
    }
    return "?";
}

std::optional<std::string> Btf::string_at(uint32_t offset) const {
    if (offset >= strings_.size()) {
        return std::nullopt;
    }
    const char* start = strings_.data() + offset;
    const void* end = std::memchr(start, 0, strings_.size() - offset);
    if (end == nullptr) {
        return std::nullopt;
    }
    return std::string(start, static_cast<const char*>(end));
}

Expected<Btf> Btf::parse(std::span<const uint8_t> bytes, const std::string& where) {
    ByteReader header(bytes, where);
    uint16_t magic = 0;
    uint8_t version = 0;
    uint8_t flags = 0;
    uint32_t hdr_len = 0, type_off = 0, type_len = 0, str_off = 0, str_len = 0;
    if (!header.u16(magic) || !header.u8(version) || !header.u8(flags) || !header.u32(hdr_len) ||
        !header.u32(type_off) || !header.u32(type_len) || !header.u32(str_off) || !header.u32(str_len)) {
        return make_error(where, "BTF header is truncated (" + std::to_string(bytes.size()) + " bytes)");
    }
    if (magic != kBtfMagic) {
        return make_error(where, "bad BTF magic 0x" + hex16(magic) + " (want 0xeb9f, little-endian)");
    }
    if (version != 1) {
        return make_error(where, "unsupported BTF version " + std::to_string(version));
    }
    if (hdr_len < 24 || hdr_len > bytes.size()) {
        return make_error(where, "BTF header length " + std::to_string(hdr_len) + " is out of range");
    }
    const std::span<const uint8_t> body = bytes.subspan(hdr_len);
    if (uint64_t{type_off} + type_len > body.size() || uint64_t{str_off} + str_len > body.size()) {
        return make_error(
            where, "BTF type or string section lies outside the " + std::to_string(bytes.size()) + "-byte BTF data");
    }
    Btf btf;
    const std::span<const uint8_t> strs = body.subspan(str_off, str_len);
    btf.strings_.assign(strs.begin(), strs.end());
    if (!btf.strings_.empty() && btf.strings_.back() != 0) {
        return make_error(where, "BTF string section does not end with NUL");
    }
    btf.types_.emplace_back();  // id 0: void

    ByteReader r(body.subspan(type_off, type_len), where);
    auto name_of = [&](uint32_t off, std::string& out) -> bool {
        std::optional<std::string> s = btf.string_at(off);
        if (!s) {
            return false;
        }
        out = std::move(*s);
        return true;
    };
    while (!r.done()) {
        const uint32_t id = static_cast<uint32_t>(btf.types_.size());
        if (id >= kMaxTypes) {
            return make_error(where, "more than " + std::to_string(kMaxTypes) + " BTF types");
        }
        const std::string at = "BTF type " + std::to_string(id);
        uint32_t name_off = 0, info = 0, size_or_type = 0;
        if (!r.u32(name_off) || !r.u32(info) || !r.u32(size_or_type)) {
            return make_error(where, at + " is truncated");
        }
        BtfType t;
        const uint32_t vlen = info & 0xffff;
        const uint32_t kind = (info >> 24) & 0x1f;
        t.kind_flag = (info >> 31) != 0;
        if (!name_of(name_off, t.name)) {
            return make_error(where, at + ": name offset " + std::to_string(name_off) + " is outside the strings");
        }
        if (kind > static_cast<uint32_t>(BtfKind::Enum64) || kind == 0) {
            return make_error(where, at + ": unknown kind " + std::to_string(kind));
        }
        t.kind = static_cast<BtfKind>(kind);
        auto read_members = [&](bool named, bool datasec) -> bool {
            for (uint32_t i = 0; i < vlen; ++i) {
                BtfMember m;
                uint32_t a = 0, b = 0, c = 0;
                if (!r.u32(a) || !r.u32(b)) {
                    return false;
                }
                if (named) {  // struct/union member {name, type, offset} or param {name, type}
                    if (!name_of(a, m.name)) {
                        return false;
                    }
                    m.type = b;
                    if (t.kind == BtfKind::Struct || t.kind == BtfKind::Union) {
                        if (!r.u32(c)) {
                            return false;
                        }
                        m.offset = t.kind_flag ? (c & 0xffffff) : c;
                        m.bitfield_size = t.kind_flag ? (c >> 24) : 0;
                    }
                } else if (datasec) {  // {type, offset, size}
                    if (!r.u32(c)) {
                        return false;
                    }
                    m.type = a;
                    m.offset = b;
                    m.bitfield_size = c;
                }
                t.members.push_back(std::move(m));
            }
            return true;
        };
        bool ok = true;
        switch (t.kind) {
            case BtfKind::Int: {
                uint32_t data = 0;
                ok = r.u32(data);
                t.size = size_or_type;
                t.int_bits = data & 0xff;
                t.int_signed = ((data >> 24) & 0x1) != 0;
                break;
            }
            case BtfKind::Ptr:
            case BtfKind::Typedef:
            case BtfKind::Volatile:
            case BtfKind::Const:
            case BtfKind::Restrict:
            case BtfKind::TypeTag:
                t.ref = size_or_type;
                break;
            case BtfKind::Func:
                t.ref = size_or_type;
                t.linkage = vlen;
                break;
            case BtfKind::Fwd:
                break;
            case BtfKind::Float:
                t.size = size_or_type;
                break;
            case BtfKind::Array:
                ok = r.u32(t.array_elem) && r.u32(t.array_index) && r.u32(t.array_nelems);
                break;
            case BtfKind::Struct:
            case BtfKind::Union:
                t.size = size_or_type;
                ok = read_members(true, false);
                break;
            case BtfKind::FuncProto:
                t.ref = size_or_type;
                ok = read_members(true, false);
                break;
            case BtfKind::Datasec:
                t.size = size_or_type;
                ok = read_members(false, true);
                break;
            case BtfKind::Var:
                t.ref = size_or_type;
                ok = r.u32(t.linkage);
                break;
            case BtfKind::DeclTag: {
                uint32_t component = 0;
                t.ref = size_or_type;
                ok = r.u32(component);
                break;
            }
            case BtfKind::Enum:
            case BtfKind::Enum64:
                t.size = size_or_type;
                for (uint32_t i = 0; ok && i < vlen; ++i) {
                    BtfEnumerator e;
                    uint32_t name = 0, lo = 0, hi = 0;
                    ok = r.u32(name) && r.u32(lo) && (t.kind == BtfKind::Enum || r.u32(hi)) && name_of(name, e.name);
                    if (t.kind == BtfKind::Enum) {
                        // kind_flag set: signed values (btf.rst).
                        e.value = t.kind_flag ? int64_t{static_cast<int32_t>(lo)} : int64_t{lo};
                    } else {
                        e.value = static_cast<int64_t>(uint64_t{hi} << 32 | lo);
                    }
                    t.enumerators.push_back(std::move(e));
                }
                break;
            case BtfKind::Void:
                break;
        }
        if (!ok) {
            return make_error(where, at + " (" + std::string(to_string(t.kind)) +
                                         ") is truncated or names a string "
                                         "outside the string section");
        }
        btf.types_.push_back(std::move(t));
    }
    // Every reference must name an existing type.
    for (uint32_t id = 1; id < btf.types_.size(); ++id) {
        const BtfType& t = btf.types_[id];
        auto bad = [&](uint32_t ref) {
            return make_error(where, "BTF type " + std::to_string(id) + " (" + std::string(to_string(t.kind)) +
                                         ") refers to type " + std::to_string(ref) + ", which does not exist");
        };
        if (t.ref >= btf.types_.size()) {
            return bad(t.ref);
        }
        if (t.kind == BtfKind::Array && (t.array_elem >= btf.types_.size() || t.array_index >= btf.types_.size())) {
            return bad(std::max(t.array_elem, t.array_index));
        }
        for (const BtfMember& m : t.members) {
            if (m.type >= btf.types_.size()) {
                return bad(m.type);
            }
        }
    }
    return btf;
}

Expected<uint32_t> Btf::resolve(uint32_t id) const {
    for (int hops = 0; hops < 64; ++hops) {
        if (!valid(id)) {
            return make_error("BTF", "type " + std::to_string(id) + " does not exist");
        }
        const BtfType& t = types_[id];
        if (t.kind != BtfKind::Typedef && t.kind != BtfKind::Const && t.kind != BtfKind::Volatile &&
            t.kind != BtfKind::Restrict && t.kind != BtfKind::TypeTag) {
            return id;
        }
        id = t.ref;
    }
    return make_error("BTF", "type chain through " + std::to_string(id) + " is too long (a cycle?)");
}

Expected<uint64_t> Btf::size_of(uint32_t id) const {
    for (int hops = 0; hops < 64; ++hops) {
        Expected<uint32_t> r = resolve(id);
        if (!r) {
            return r.error();
        }
        const BtfType& t = types_[*r];
        switch (t.kind) {
            case BtfKind::Int:
            case BtfKind::Struct:
            case BtfKind::Union:
            case BtfKind::Enum:
            case BtfKind::Enum64:
            case BtfKind::Datasec:
            case BtfKind::Float:
                return uint64_t{t.size};
            case BtfKind::Ptr:
                return uint64_t{8};
            case BtfKind::Var:
                id = t.ref;
                continue;
            case BtfKind::Array: {
                Expected<uint64_t> elem = size_of(t.array_elem);
                if (!elem) {
                    return elem;
                }
                if (*elem != 0 && t.array_nelems > (uint64_t{1} << 32) / *elem) {
                    return make_error("BTF", "array type " + std::to_string(*r) + " is absurdly large");
                }
                return *elem * t.array_nelems;
            }
            case BtfKind::Void:
            case BtfKind::Fwd:
            case BtfKind::Func:
            case BtfKind::FuncProto:
            case BtfKind::Typedef:
            case BtfKind::Volatile:
            case BtfKind::Const:
            case BtfKind::Restrict:
            case BtfKind::DeclTag:
            case BtfKind::TypeTag:
                break;
        }
        return make_error("BTF",
                          "type " + std::to_string(*r) + " (" + std::string(to_string(t.kind)) + ") has no size");
    }
    return make_error("BTF", "type chain through " + std::to_string(id) + " is too long (a cycle?)");
}

std::optional<uint32_t> Btf::find(BtfKind kind, std::string_view name) const {
    for (uint32_t id = 1; id < types_.size(); ++id) {
        if (types_[id].kind == kind && types_[id].name == name) {
            return id;
        }
    }
    return std::nullopt;
}

Expected<BtfExt> BtfExt::parse(std::span<const uint8_t> bytes, const Btf& btf, const std::string& where) {
    ByteReader header(bytes, where);
    uint16_t magic = 0;
    uint8_t version = 0, flags = 0;
    uint32_t hdr_len = 0, func_off = 0, func_len = 0, line_off = 0, line_len = 0, core_off = 0, core_len = 0;
    if (!header.u16(magic) || !header.u8(version) || !header.u8(flags) || !header.u32(hdr_len) ||
        !header.u32(func_off) || !header.u32(func_len) || !header.u32(line_off) || !header.u32(line_len)) {
        return make_error(where, "BTF.ext header is truncated");
    }
    if (magic != kBtfMagic) {
        return make_error(where, "bad BTF.ext magic 0x" + hex16(magic));
    }
    if (hdr_len >= 32 && !(header.u32(core_off) && header.u32(core_len))) {
        return make_error(where, "BTF.ext header is truncated");
    }
    if (hdr_len < 24 || hdr_len > bytes.size()) {
        return make_error(where, "BTF.ext header length " + std::to_string(hdr_len) + " is out of range");
    }
    const std::span<const uint8_t> body = bytes.subspan(hdr_len);
    BtfExt ext;
    // Each sub-section: u32 record size, then {u32 section name, u32 count, records...}.
    auto walk = [&](uint32_t off, uint32_t len, uint32_t min_rec, const char* what,
                    auto&& on_record) -> Expected<Unit> {
        if (len == 0) {
            return Unit{};
        }
        if (uint64_t{off} + len > body.size()) {
            return make_error(where, std::string(what) + " lies outside the BTF.ext data");
        }
        ByteReader r(body.subspan(off, len), where);
        uint32_t rec_size = 0;
        if (!r.u32(rec_size) || rec_size < min_rec || rec_size > 256 || rec_size % 4 != 0) {
            return make_error(where, std::string(what) + " record size " + std::to_string(rec_size) + " is invalid");
        }
        while (!r.done()) {
            uint32_t sec_name = 0, count = 0;
            if (!r.u32(sec_name) || !r.u32(count)) {
                return make_error(where, std::string(what) + " is truncated");
            }
            std::optional<std::string> sec = btf.string_at(sec_name);
            if (!sec) {
                return make_error(where, std::string(what) + ": section name offset " + std::to_string(sec_name) +
                                             " is outside the BTF strings");
            }
            if (uint64_t{count} * rec_size > r.remaining()) {
                return make_error(where, std::string(what) + " for section '" + *sec + "': " + std::to_string(count) +
                                             " records do not fit");
            }
            for (uint32_t i = 0; i < count; ++i) {
                ByteReader rec(r.take(rec_size), where);
                Expected<Unit> ok = on_record(*sec, rec);
                if (!ok) {
                    return ok;
                }
            }
        }
        return Unit{};
    };
    auto str = [&](uint32_t off, std::string& out, const char* what) -> Expected<Unit> {
        std::optional<std::string> s = btf.string_at(off);
        if (!s) {
            return make_error(
                where, std::string(what) + " string offset " + std::to_string(off) + " is outside the BTF strings");
        }
        out = std::move(*s);
        return Unit{};
    };
    Expected<Unit> ok = walk(func_off, func_len, 8, "func_info", [&](const std::string& sec, ByteReader& rec) {
        BtfFuncInfo fi;
        rec.u32(fi.insn_offset);
        rec.u32(fi.type_id);
        ext.func_info[sec].push_back(fi);
        return Expected<Unit>(Unit{});
    });
    if (!ok) {
        return ok.error();
    }
    ok = walk(line_off, line_len, 16, "line_info", [&](const std::string& sec, ByteReader& rec) -> Expected<Unit> {
        BtfLineInfo li;
        uint32_t file = 0, line = 0, line_col = 0;
        rec.u32(li.insn_offset);
        rec.u32(file);
        rec.u32(line);
        rec.u32(line_col);
        li.line_number = line_col >> 10;
        li.column = line_col & 0x3ff;
        Expected<Unit> a = str(file, li.file, "line_info file");
        if (!a) {
            return a;
        }
        Expected<Unit> b = str(line, li.line, "line_info line");
        if (!b) {
            return b;
        }
        ext.line_info[sec].push_back(std::move(li));
        return Unit{};
    });
    if (!ok) {
        return ok.error();
    }
    ok = walk(core_off, core_len, 16, "core_relo", [&](const std::string& sec, ByteReader& rec) -> Expected<Unit> {
        BtfCoreRelo c;
        uint32_t access = 0, kind = 0;
        rec.u32(c.insn_offset);
        rec.u32(c.type_id);
        rec.u32(access);
        rec.u32(kind);
        if (kind > static_cast<uint32_t>(CoreReloKind::TypeMatches)) {
            return make_error(where,
                              "CO-RE relocation in section '" + sec + "' has unknown kind " + std::to_string(kind));
        }
        c.kind = static_cast<CoreReloKind>(kind);
        Expected<Unit> a = str(access, c.access, "CO-RE access");
        if (!a) {
            return a;
        }
        ext.core_relos[sec].push_back(std::move(c));
        return Unit{};
    });
    if (!ok) {
        return ok.error();
    }
    return ext;
}

}  // namespace bpfvm::loader
