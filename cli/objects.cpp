#include "objects.hpp"

#include <cstdio>

namespace bpfvm::cli {

namespace {

std::string hex(uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
    return buf;
}

std::string pad(std::string s, std::size_t width) {
    if (s.size() < width) {
        s.append(width - s.size(), ' ');
    }
    return s;
}

const char* origin(vm::MapOrigin o) {
    switch (o) {
        case vm::MapOrigin::BtfMaps:
            return "BTF";
        case vm::MapOrigin::LegacyMaps:
            return "legacy";
        case vm::MapOrigin::GlobalData:
            return "global data";
    }
    return "?";
}

void map_line(std::string& out, const vm::MapSpec& m, const std::string& indent) {
    out += indent + pad(m.name, 24) + " " + pad(std::string(vm::to_string(m.type)), 16) + " key " +
           pad(std::to_string(m.key_size), 4) + " value " + pad(std::to_string(m.value_size), 6) + " max_entries " +
           pad(std::to_string(m.max_entries), 8) + " flags " + pad(hex(m.flags), 6) + " (" + origin(m.origin) +
           ((m.flags & vm::kMapFlagRdonlyProg) != 0 ? ", read-only" : "") + ")\n";
    for (const vm::MapSpec& inner : m.inner) {
        map_line(out, inner, indent + "  inner: ");
    }
    for (const auto& [slot, name] : m.initial_slots) {
        out += indent + "  slot " + std::to_string(slot) + " = " + name + "\n";
    }
    for (const std::string& note : m.notes) {
        out += indent + "  note: " + note + "\n";
    }
}

}  // namespace

std::string describe_maps(const loader::Object& object) {
    std::string out;
    for (const vm::MapSpec& m : object.maps) {
        map_line(out, m, "");
    }
    if (object.maps.empty()) {
        out += "(no maps)\n";
    }
    return out;
}

std::string describe_object(const loader::Object& object) {
    std::string out = "object " + object.name + "\n";
    out += "license: " + (object.license.empty() ? std::string("(none)") : object.license) + "\n";
    if (object.kernel_version) {
        out += "kernel version: " + hex(*object.kernel_version) + "\n";
    }
    out += "programs:\n";
    for (const loader::ProgramInfo& p : object.programs) {
        out += "  " + pad(p.name, 24) + " section " + pad(p.section, 24) + " type " +
               pad(std::string(vm::to_string(p.type)) + (p.type_known ? "" : " (section name unknown to libbpf)"), 14) +
               " " + std::to_string(p.insns.size()) + " instructions";
        if (p.functions.size() > 1) {
            out += ", subprograms:";
            for (std::size_t i = 1; i < p.functions.size(); ++i) {
                out += " " + p.functions[i].name;
            }
        }
        out += "\n";
    }
    out += "maps:\n";
    for (const vm::MapSpec& m : object.maps) {
        map_line(out, m, "  ");
    }
    out += "relocations:\n";
    for (const loader::RelocationInfo& r : object.relocations) {
        out += "  " + pad(r.section + "+" + hex(r.offset), 28) + " " + pad(loader::relocation_type_name(r.type), 15) +
               " " + pad(r.symbol, 20) + " -> " + r.target + "\n";
    }
    if (object.btf) {
        std::size_t funcs = 0, lines = 0, core = 0;
        if (object.btf_ext) {
            for (const auto& [s, v] : object.btf_ext->func_info) {
                funcs += v.size();
            }
            for (const auto& [s, v] : object.btf_ext->line_info) {
                lines += v.size();
            }
            for (const auto& [s, v] : object.btf_ext->core_relos) {
                core += v.size();
            }
        }
        out += "BTF: " + std::to_string(object.btf->count() - 1) + " types; BTF.ext: " + std::to_string(funcs) +
               " func_info, " + std::to_string(lines) + " line_info, " + std::to_string(core) + " CO-RE relocations\n";
    } else {
        out += "BTF: none\n";
    }
    for (const std::string& note : object.notes) {
        out += "note: " + note + "\n";
    }
    return out;
}

}  // namespace bpfvm::cli
