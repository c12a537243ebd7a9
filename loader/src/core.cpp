// CO-RE relocations (BTF.ext core_relo): each names an instruction, a local BTF type and an
// access path ("0:1:2"); the value the compiler put in the instruction (a field offset, a size,
// an existence bit, ...) is recomputed against a target BTF by matching names, and patched in, as
// libbpf does. A field the target lacks poisons a field-offset access: the instruction becomes a
// call to an unknown helper, so the program fails only if it gets there.
#include "core.hpp"

#include <cstring>

#include "bpfvm/vm/helpers.hpp"

namespace bpfvm::loader {

namespace {

// "task_struct___v1" and "task_struct" are the same type to CO-RE (the flavour suffix is ignored).
std::string essential_name(const std::string& name) {
    const std::size_t p = name.find("___");
    return p == std::string::npos ? name : name.substr(0, p);
}

Expected<std::vector<uint32_t>> parse_access(const std::string& access, const std::string& where) {
    std::vector<uint32_t> out;
    std::size_t i = 0;
    while (i < access.size()) {
        uint64_t v = 0;
        const std::size_t start = i;
        while (i < access.size() && access[i] >= '0' && access[i] <= '9') {
            v = v * 10 + static_cast<uint64_t>(access[i] - '0');
            if (v > UINT32_MAX) {
                return make_error(where, "access string '" + access + "' has a number out of range");
            }
            ++i;
        }
        if (i == start || (i < access.size() && access[i] != ':')) {
            return make_error(where, "malformed access string '" + access + "'");
        }
        out.push_back(static_cast<uint32_t>(v));
        ++i;
    }
    if (out.empty()) {
        return make_error(where, "empty access string");
    }
    return out;
}

// A resolved field: where it is and what it is.
struct Field {
    uint64_t bit_offset = 0;
    uint32_t bit_size = 0;  // bitfields only
    uint64_t byte_size = 0;
    bool is_signed = false;
    uint32_t type = 0;  // the field's type id
};

bool is_signed_type(const Btf& btf, uint32_t id) {
    Expected<uint32_t> r = btf.resolve(id);
    if (!r) {
        return false;
    }
    const BtfType& t = btf.type(*r);
    return (t.kind == BtfKind::Int && t.int_signed) || (t.kind == BtfKind::Enum && t.kind_flag);
}

// Follows `path` (member names, or array indices as "[n]") through `root` in `btf`. Searches
// anonymous struct/union members for a name, as the C language does.
std::optional<Field> walk(const Btf& btf, uint32_t root, uint64_t root_index, const std::vector<std::string>& path) {
    Expected<uint64_t> root_size = btf.size_of(root);
    if (!root_size) {
        return std::nullopt;
    }
    Field f;
    f.bit_offset = root_index * *root_size * 8;
    f.type = root;
    for (const std::string& step : path) {
        Expected<uint32_t> cur = btf.resolve(f.type);
        if (!cur) {
            return std::nullopt;
        }
        const BtfType& t = btf.type(*cur);
        if (step[0] == '[') {
            if (t.kind != BtfKind::Array) {
                return std::nullopt;
            }
            const uint64_t index = std::stoull(step.substr(1));
            if (t.array_nelems != 0 && index >= t.array_nelems) {
                return std::nullopt;
            }
            Expected<uint64_t> elem = btf.size_of(t.array_elem);
            if (!elem) {
                return std::nullopt;
            }
            f.bit_offset += index * *elem * 8;
            f.type = t.array_elem;
            f.bit_size = 0;
            continue;
        }
        if (t.kind != BtfKind::Struct && t.kind != BtfKind::Union) {
            return std::nullopt;
        }
        // Depth-first search for the name, through anonymous members.
        struct Hit {
            uint64_t offset;
            const BtfMember* member;
        };
        std::optional<Hit> hit;
        std::vector<std::pair<uint32_t, uint64_t>> todo{{*cur, 0}};
        for (int guard = 0; !todo.empty() && !hit && guard < 1024; ++guard) {
            const auto [id, base] = todo.back();
            todo.pop_back();
            for (const BtfMember& m : btf.type(id).members) {
                if (m.name == step) {
                    hit = Hit{base + m.offset, &m};
                    break;
                }
                if (m.name.empty()) {
                    Expected<uint32_t> anon = btf.resolve(m.type);
                    if (anon && (btf.type(*anon).kind == BtfKind::Struct || btf.type(*anon).kind == BtfKind::Union)) {
                        todo.emplace_back(*anon, base + m.offset);
                    }
                }
            }
        }
        if (!hit) {
            return std::nullopt;
        }
        f.bit_offset += hit->offset;
        f.bit_size = hit->member->bitfield_size;
        f.type = hit->member->type;
    }
    Expected<uint64_t> size = btf.size_of(f.type);
    f.byte_size = size ? *size : 0;
    f.is_signed = is_signed_type(btf, f.type);
    return f;
}

// The local access path as names: "0:1:2" on struct s -> {member 1's name, member 2's name or [2]}.
Expected<std::vector<std::string>> local_path(const Btf& btf, uint32_t root, const std::vector<uint32_t>& access,
                                              const std::string& where) {
    std::vector<std::string> path;
    uint32_t cur = root;
    for (std::size_t i = 1; i < access.size(); ++i) {
        Expected<uint32_t> r = btf.resolve(cur);
        if (!r) {
            return make_error(where, r.error().what);
        }
        const BtfType& t = btf.type(*r);
        if (t.kind == BtfKind::Array) {
            path.push_back("[" + std::to_string(access[i]) + "]");
            cur = t.array_elem;
        } else if (t.kind == BtfKind::Struct || t.kind == BtfKind::Union) {
            if (access[i] >= t.members.size()) {
                return make_error(where, "access index " + std::to_string(access[i]) + " is past the " +
                                             std::to_string(t.members.size()) + " members of " + t.name);
            }
            const BtfMember& m = t.members[access[i]];
            if (m.name.empty()) {
                // Anonymous members are stepped through by index; keep the path by name below it.
                path.push_back("");
            } else {
                path.push_back(m.name);
            }
            cur = m.type;
        } else {
            return make_error(where, "access string steps into a " + std::string(to_string(t.kind)));
        }
    }
    // Anonymous steps vanish from the name path (walk() searches through anonymous members).
    std::vector<std::string> named;
    for (std::string& s : path) {
        if (!s.empty()) {
            named.push_back(std::move(s));
        }
    }
    return named;
}

// Target types that CO-RE would match to the local type `local`: same kind, same essential name.
std::vector<uint32_t> candidates(const Btf& local, uint32_t local_id, const Btf& target) {
    std::vector<uint32_t> out;
    Expected<uint32_t> r = local.resolve(local_id);
    if (!r) {
        return out;
    }
    const BtfType& lt = local.type(*r);
    const std::string name = essential_name(lt.name);
    for (uint32_t id = 1; id < target.count(); ++id) {
        const BtfType& tt = target.type(id);
        const bool same_kind = tt.kind == lt.kind || ((tt.kind == BtfKind::Enum || tt.kind == BtfKind::Enum64) &&
                                                      (lt.kind == BtfKind::Enum || lt.kind == BtfKind::Enum64));
        if (same_kind && essential_name(tt.name) == name) {
            out.push_back(id);
        }
    }
    return out;
}

}  // namespace

Expected<Unit> apply_core_relocation(const Btf& local, const Btf& target, const BtfCoreRelo& relo,
                                     std::span<uint8_t> code, const std::string& where) {
    const std::size_t index = relo.insn_offset / 8;
    if (relo.insn_offset % 8 != 0 || index >= code.size() / 8) {
        return make_error(where,
                          "CO-RE relocation at byte " + std::to_string(relo.insn_offset) + " is not an instruction");
    }
    if (!local.valid(relo.type_id)) {
        return make_error(where,
                          "CO-RE relocation names BTF type " + std::to_string(relo.type_id) + ", which does not exist");
    }
    Expected<std::vector<uint32_t>> access = parse_access(relo.access, where);
    if (!access) {
        return access.error();
    }
    uint8_t* at = code.data() + index * 8;
    vm::RawInsn insn = vm::unpack(at);
    const std::string what = where + ": CO-RE relocation at instruction " + std::to_string(index);
    std::optional<uint64_t> value;  // nullopt: the target lacks it
    bool poison = false;
    switch (relo.kind) {
        case CoreReloKind::FieldByteOffset:
        case CoreReloKind::FieldByteSize:
        case CoreReloKind::FieldExists:
        case CoreReloKind::FieldSigned:
        case CoreReloKind::FieldLshiftU64:
        case CoreReloKind::FieldRshiftU64: {
            Expected<std::vector<std::string>> path = local_path(local, relo.type_id, *access, what);
            if (!path) {
                return path.error();
            }
            std::optional<Field> found;
            for (uint32_t cand : candidates(local, relo.type_id, target)) {
                std::optional<Field> f = walk(target, cand, (*access)[0], *path);
                if (f) {
                    if (found && (found->bit_offset != f->bit_offset || found->byte_size != f->byte_size)) {
                        return make_error(what, "several target types named '" +
                                                    local.type(*local.resolve(relo.type_id)).name +
                                                    "' disagree about the field");
                    }
                    found = f;
                }
            }
            const CoreReloKind k = relo.kind;
            if (k == CoreReloKind::FieldExists) {
                value = found ? 1 : 0;
            } else if (!found) {
                poison = true;
            } else if (k == CoreReloKind::FieldByteOffset) {
                // A bitfield's access loads the aligned word that holds it.
                value = found->bit_size != 0 && found->byte_size != 0
                            ? (found->bit_offset / 8) & ~(found->byte_size - 1)
                            : found->bit_offset / 8;
            } else if (k == CoreReloKind::FieldByteSize) {
                value = found->byte_size;
            } else if (k == CoreReloKind::FieldSigned) {
                value = found->is_signed ? 1 : 0;
            } else {  // the shifts that extract a (bit)field from a u64 load
                const uint64_t bits = found->bit_size != 0 ? found->bit_size : found->byte_size * 8;
                const uint64_t word_bits = found->byte_size == 0 ? 8 : found->byte_size * 8;
                const uint64_t in_word = found->bit_offset % word_bits;
                value = k == CoreReloKind::FieldLshiftU64 ? 64 - (in_word + bits) : 64 - bits;
            }
            break;
        }
        case CoreReloKind::TypeIdLocal:
            value = relo.type_id;
            break;
        case CoreReloKind::TypeIdTarget:
        case CoreReloKind::TypeExists:
        case CoreReloKind::TypeSize:
        case CoreReloKind::TypeMatches: {
            const std::vector<uint32_t> c = candidates(local, relo.type_id, target);
            if (relo.kind == CoreReloKind::TypeExists || relo.kind == CoreReloKind::TypeMatches) {
                value = c.empty() ? 0 : 1;
            } else if (!c.empty()) {
                if (relo.kind == CoreReloKind::TypeIdTarget) {
                    value = c[0];
                } else {
                    Expected<uint64_t> size = target.size_of(c[0]);
                    if (!size) {
                        return make_error(what, size.error().what);
                    }
                    value = *size;
                }
            } else {
                poison = true;
            }
            break;
        }
        case CoreReloKind::EnumvalExists:
        case CoreReloKind::EnumvalValue: {
            Expected<uint32_t> le = local.resolve(relo.type_id);
            if (!le || (local.type(*le).kind != BtfKind::Enum && local.type(*le).kind != BtfKind::Enum64) ||
                (*access)[0] >= local.type(*le).enumerators.size()) {
                return make_error(what, "does not name an enumerator of a local enum");
            }
            const std::string& name = local.type(*le).enumerators[(*access)[0]].name;
            std::optional<int64_t> found;
            for (uint32_t cand : candidates(local, relo.type_id, target)) {
                for (const BtfEnumerator& e : target.type(cand).enumerators) {
                    if (e.name == name) {
                        found = e.value;
                    }
                }
            }
            if (relo.kind == CoreReloKind::EnumvalExists) {
                value = found ? 1 : 0;
            } else if (found) {
                value = static_cast<uint64_t>(*found);
            } else {
                poison = true;
            }
            break;
        }
    }
    if (poison) {
        // Only code that reaches it fails: a call to a helper that does not exist. An lddw keeps
        // its two slots (the second becomes `ja +0`).
        if (insn.opcode == 0x18 && index + 1 < code.size() / 8) {
            vm::pack(vm::RawInsn{0x05, 0, 0, 0, 0}, at + 8);
        }
        vm::pack(vm::RawInsn{0x85, 0, 0, 0, vm::kCorePoisonHelper}, at);
        return Unit{};
    }
    const uint64_t v = *value;
    const uint8_t cls = insn.opcode & 0x07;
    if (insn.opcode == 0x18) {
        if (index + 1 >= code.size() / 8) {
            return make_error(what, "lddw without its second slot");
        }
        vm::RawInsn next = vm::unpack(at + 8);
        insn.imm = static_cast<int32_t>(static_cast<uint32_t>(v));
        next.imm = static_cast<int32_t>(static_cast<uint32_t>(v >> 32));
        vm::pack(next, at + 8);
    } else if ((cls == 0x04 || cls == 0x07) && (insn.opcode & 0x08) == 0) {  // ALU with an immediate
        if (v > UINT32_MAX) {
            return make_error(what, "value " + std::to_string(v) + " does not fit the instruction's immediate");
        }
        insn.imm = static_cast<int32_t>(static_cast<uint32_t>(v));
    } else if (cls == 0x01 || cls == 0x02 || cls == 0x03) {  // LDX, ST, STX: the offset
        if (relo.kind != CoreReloKind::FieldByteOffset || v > INT16_MAX) {
            return make_error(what, "cannot patch value " + std::to_string(v) + " into a memory instruction");
        }
        insn.off = static_cast<int16_t>(v);
    } else {
        return make_error(what,
                          "the instruction (opcode 0x" + std::to_string(insn.opcode) + ") is not one CO-RE patches");
    }
    vm::pack(insn, at);
    return Unit{};
}

}  // namespace bpfvm::loader
