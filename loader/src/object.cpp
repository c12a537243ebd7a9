#include "bpfvm/loader/object.hpp"

#include <gelf.h>
#include <libelf.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>

#include "bpfvm/vm/files.hpp"
#include "byte_reader.hpp"
#include "core.hpp"

namespace bpfvm::loader {

namespace {

constexpr uint32_t kRelBpf64_64 = 1;     // R_BPF_64_64: lddw imm64
constexpr uint32_t kRelBpfAbs64 = 2;     // R_BPF_64_ABS64: data (map-in-map .values, BTF)
constexpr uint32_t kRelBpfAbs32 = 3;     // R_BPF_64_ABS32: data (.BTF, debug info)
constexpr uint32_t kRelBpfNodyld32 = 4;  // R_BPF_64_NODYLD32: BTF.ext
constexpr uint32_t kRelBpf64_32 = 10;    // R_BPF_64_32: call imm
constexpr uint16_t kEmBpf = 247;
constexpr std::size_t kMaxSections = 1u << 16;

struct Section {
    std::size_t index = 0;
    std::string name;
    GElf_Shdr hdr{};
    std::span<const uint8_t> data;  // empty for NOBITS
    bool exec = false;
};

struct Symbol {
    std::string name;
    GElf_Sym sym{};
    [[nodiscard]] unsigned type() const { return GELF_ST_TYPE(sym.st_info); }
    [[nodiscard]] unsigned bind() const { return GELF_ST_BIND(sym.st_info); }
};

struct Reloc {
    uint64_t offset = 0;
    uint32_t symbol = 0;
    uint32_t type = 0;
    std::size_t index = 0;  // position in its relocation section, for messages
};

// A function: instructions [start, end) of a code section.
struct Func {
    std::size_t section = 0;
    uint32_t start = 0;
    uint32_t end = 0;
    std::string name;
    bool global = false;
};

struct ElfCloser {
    void operator()(Elf* e) const { elf_end(e); }
};

void init_libelf() {
    static std::once_flag once;
    std::call_once(once, [] { elf_version(EV_CURRENT); });
}

std::string libelf_reason() {
    const char* m = elf_errmsg(-1);
    return m == nullptr ? "" : std::string(" (libelf: ") + m + ")";
}

bool is_data_section(const std::string& name) {
    auto starts = [&](const char* p) { return name.rfind(p, 0) == 0; };
    return name == ".data" || name == ".bss" || name == ".rodata" || starts(".data.") || starts(".rodata.") ||
           starts(".bss.");
}

class Reader {
public:
    Reader(std::span<const uint8_t> bytes, std::string name, const LoadOptions& options)
        : bytes_(bytes.begin(), bytes.end()), name_(std::move(name)), options_(options) {}

    Expected<Object> run() {
        init_libelf();
        Expected<Unit> r = open();
        if (!r) {
            return r.error();
        }
        for (auto step :
             {&Reader::read_sections, &Reader::read_symbols, &Reader::read_relocations, &Reader::read_license,
              &Reader::read_btf, &Reader::check_btf_ext, &Reader::apply_core, &Reader::read_maps, &Reader::read_kconfig,
              &Reader::find_functions, &Reader::decode_all_code, &Reader::link_programs}) {
            r = (this->*step)();
            if (!r) {
                return r.error();
            }
        }
        return std::move(obj_);
    }

private:
    std::vector<uint8_t> bytes_;
    std::string name_;
    const LoadOptions& options_;
    std::map<std::string, uint32_t> kconfig_offsets_;  // extern name -> offset in the .kconfig map
    std::optional<std::size_t> kconfig_map_;
    std::unique_ptr<Elf, ElfCloser> elf_;
    std::vector<Section> sections_;
    std::vector<Symbol> symbols_;
    std::map<std::size_t, std::vector<Reloc>> relocs_;  // by patched section index
    std::vector<Func> funcs_;
    std::map<std::size_t, std::size_t> data_map_;                     // section index -> map index
    std::map<std::pair<std::size_t, uint64_t>, std::size_t> map_at_;  // (section, offset) -> map index
    Object obj_;

    Error fail(const std::string& where, const std::string& what) const {
        return make_error(where.empty() ? name_ : name_ + ": " + where, what);
    }
    std::string sec_where(std::size_t index) const { return "section '" + sections_[index].name + "'"; }

    Expected<Unit> open() {
        if (bytes_.size() < sizeof(Elf64_Ehdr)) {
            return fail("",
                        "not an ELF object: " + std::to_string(bytes_.size()) + " bytes is shorter than an ELF header");
        }
        if (std::memcmp(bytes_.data(), ELFMAG, SELFMAG) != 0) {
            return fail("", "not an ELF object (bad magic)");
        }
        if (bytes_[EI_CLASS] != ELFCLASS64) {
            return fail("", "not a 64-bit ELF object (class " + std::to_string(bytes_[EI_CLASS]) + ")");
        }
        if (bytes_[EI_DATA] != ELFDATA2LSB) {
            return fail("", "not a little-endian ELF object (big-endian BPF objects are not supported)");
        }
        elf_.reset(elf_memory(reinterpret_cast<char*>(bytes_.data()), bytes_.size()));
        if (!elf_ || elf_kind(elf_.get()) != ELF_K_ELF) {
            return fail("", "libelf cannot read it" + libelf_reason());
        }
        GElf_Ehdr ehdr;
        if (gelf_getehdr(elf_.get(), &ehdr) == nullptr) {
            return fail("", "corrupt ELF header" + libelf_reason());
        }
        if (ehdr.e_machine != kEmBpf) {
            return fail("", "ELF machine is " + std::to_string(ehdr.e_machine) + ", not BPF (247)");
        }
        if (ehdr.e_shoff > bytes_.size() || uint64_t{ehdr.e_shnum} * ehdr.e_shentsize > bytes_.size() - ehdr.e_shoff) {
            return fail("", "the section header table (" + std::to_string(ehdr.e_shnum) + " entries at offset " +
                                std::to_string(ehdr.e_shoff) + ") goes past the end of the " +
                                std::to_string(bytes_.size()) + "-byte file");
        }
        if (ehdr.e_shentsize != sizeof(Elf64_Shdr) && ehdr.e_shnum != 0) {
            return fail("", "section header size " + std::to_string(ehdr.e_shentsize) + " is not " +
                                std::to_string(sizeof(Elf64_Shdr)));
        }
        if (ehdr.e_type != ET_REL) {
            return fail("", "ELF type is " + std::to_string(ehdr.e_type) + ", not a relocatable object (ET_REL)");
        }
        return Unit{};
    }

    Expected<Unit> read_sections() {
        std::size_t shnum = 0;
        std::size_t shstrndx = 0;
        if (elf_getshdrnum(elf_.get(), &shnum) != 0 || elf_getshdrstrndx(elf_.get(), &shstrndx) != 0) {
            return fail("", "corrupt section header table" + libelf_reason());
        }
        if (shnum > kMaxSections) {
            return fail("", std::to_string(shnum) + " sections is absurd");
        }
        sections_.resize(shnum);
        for (std::size_t i = 1; i < shnum; ++i) {
            Elf_Scn* scn = elf_getscn(elf_.get(), i);
            Section& s = sections_[i];
            s.index = i;
            if (scn == nullptr || gelf_getshdr(scn, &s.hdr) == nullptr) {
                return fail("section #" + std::to_string(i), "corrupt section header" + libelf_reason());
            }
            const char* name = elf_strptr(elf_.get(), shstrndx, s.hdr.sh_name);
            if (name == nullptr) {
                return fail("section #" + std::to_string(i),
                            "name offset " + std::to_string(s.hdr.sh_name) + " is outside the section name table");
            }
            s.name = name;
            s.exec = (s.hdr.sh_flags & SHF_EXECINSTR) != 0 && s.hdr.sh_type == SHT_PROGBITS;
            if (s.hdr.sh_type == SHT_NOBITS) {
                if (s.hdr.sh_size > (uint64_t{1} << 30)) {
                    return fail(sec_where(i), "size " + std::to_string(s.hdr.sh_size) + " is absurd");
                }
                continue;
            }
            if (s.hdr.sh_type == SHT_NULL) {
                continue;
            }
            if (s.hdr.sh_offset > bytes_.size() || s.hdr.sh_size > bytes_.size() - s.hdr.sh_offset) {
                return fail(sec_where(i), "its " + std::to_string(s.hdr.sh_size) + " bytes at offset " +
                                              std::to_string(s.hdr.sh_offset) + " lie outside the " +
                                              std::to_string(bytes_.size()) + "-byte file");
            }
            s.data = std::span<const uint8_t>(bytes_.data() + s.hdr.sh_offset, s.hdr.sh_size);
            if (s.exec && s.data.size() % 8 != 0) {
                return fail(sec_where(i),
                            "code size " + std::to_string(s.data.size()) + " is not a multiple of 8 bytes");
            }
        }
        return Unit{};
    }

    Expected<Unit> read_symbols() {
        const Section* symtab = nullptr;
        for (const Section& s : sections_) {
            if (s.hdr.sh_type == SHT_SYMTAB) {
                if (symtab != nullptr) {
                    return fail(sec_where(s.index), "a second symbol table");
                }
                symtab = &s;
            }
        }
        if (symtab == nullptr) {
            return Unit{};  // an object without symbols: whole sections are programs
        }
        if (symtab->hdr.sh_link == 0 || symtab->hdr.sh_link >= sections_.size() ||
            sections_[symtab->hdr.sh_link].hdr.sh_type != SHT_STRTAB) {
            return fail(sec_where(symtab->index),
                        "its string table index " + std::to_string(symtab->hdr.sh_link) + " is not a string table");
        }
        Elf_Data* data = elf_getdata(elf_getscn(elf_.get(), symtab->index), nullptr);
        if (data == nullptr) {
            return fail(sec_where(symtab->index), "cannot read the symbol table" + libelf_reason());
        }
        const std::size_t count = data->d_size / sizeof(Elf64_Sym);
        symbols_.resize(count);
        for (std::size_t i = 0; i < count; ++i) {
            Symbol& sym = symbols_[i];
            if (gelf_getsym(data, static_cast<int>(i), &sym.sym) == nullptr) {
                return fail("symbol #" + std::to_string(i), "corrupt" + libelf_reason());
            }
            const char* name = elf_strptr(elf_.get(), symtab->hdr.sh_link, sym.sym.st_name);
            if (name == nullptr) {
                return fail("symbol #" + std::to_string(i),
                            "name offset " + std::to_string(sym.sym.st_name) + " is outside the string table");
            }
            sym.name = name;
            const uint16_t shndx = sym.sym.st_shndx;
            if (shndx != SHN_UNDEF && shndx < SHN_LORESERVE && shndx >= sections_.size()) {
                return fail("symbol '" + sym.name + "'", "section index " + std::to_string(shndx) +
                                                             " does not exist (" + std::to_string(sections_.size()) +
                                                             " sections)");
            }
            if (sym.name.empty() && sym.type() == STT_SECTION && shndx < sections_.size()) {
                sym.name = sections_[shndx].name;
            }
        }
        return Unit{};
    }

    Expected<Unit> read_relocations() {
        for (const Section& s : sections_) {
            if (s.hdr.sh_type == SHT_RELA) {
                return fail(sec_where(s.index), "RELA relocations are not used by BPF objects");
            }
            if (s.hdr.sh_type != SHT_REL) {
                continue;
            }
            const std::size_t target = s.hdr.sh_info;
            if (target == 0 || target >= sections_.size()) {
                return fail(sec_where(s.index),
                            "relocates section #" + std::to_string(target) + ", which does not exist");
            }
            Elf_Data* data = elf_getdata(elf_getscn(elf_.get(), s.index), nullptr);
            if (data == nullptr) {
                return fail(sec_where(s.index), "cannot read the relocations" + libelf_reason());
            }
            const std::size_t count = data->d_size / sizeof(Elf64_Rel);
            std::vector<Reloc>& out = relocs_[target];
            for (std::size_t i = 0; i < count; ++i) {
                GElf_Rel rel;
                if (gelf_getrel(data, static_cast<int>(i), &rel) == nullptr) {
                    return fail(sec_where(s.index),
                                "relocation #" + std::to_string(i) + " is corrupt" + libelf_reason());
                }
                Reloc r{rel.r_offset, static_cast<uint32_t>(GELF_R_SYM(rel.r_info)),
                        static_cast<uint32_t>(GELF_R_TYPE(rel.r_info)), i};
                if (r.symbol >= symbols_.size()) {
                    return fail(sec_where(s.index), "relocation #" + std::to_string(i) + " names symbol #" +
                                                        std::to_string(r.symbol) + ", which does not exist");
                }
                const uint64_t limit = sections_[target].hdr.sh_size;
                if (r.offset > limit || limit - r.offset < 4) {
                    return fail(sec_where(s.index), "relocation #" + std::to_string(i) + " at offset " +
                                                        std::to_string(r.offset) + " lies outside " +
                                                        sec_where(target) + " (" + std::to_string(limit) + " bytes)");
                }
                out.push_back(r);
            }
            std::sort(out.begin(), out.end(), [](const Reloc& a, const Reloc& b) { return a.offset < b.offset; });
        }
        return Unit{};
    }

    const Section* find_section(std::string_view name) const {
        for (const Section& s : sections_) {
            if (s.index != 0 && s.name == name) {
                return &s;
            }
        }
        return nullptr;
    }

    Expected<Unit> read_license() {
        if (const Section* s = find_section("license"); s != nullptr && !s->data.empty()) {
            const auto* p = reinterpret_cast<const char*>(s->data.data());
            obj_.license.assign(p, strnlen(p, s->data.size()));
        }
        if (const Section* s = find_section("version")) {
            if (s->data.size() != 4) {
                return fail(sec_where(s->index),
                            "is " + std::to_string(s->data.size()) + " bytes, not a 4-byte version");
            }
            uint32_t v = 0;
            std::memcpy(&v, s->data.data(), 4);
            obj_.kernel_version = v;
        }
        return Unit{};
    }

    Expected<Unit> read_btf() {
        if (const Section* s = find_section(".BTF")) {
            Expected<Btf> btf = Btf::parse(s->data, name_ + ": section '.BTF'");
            if (!btf) {
                return btf.error();
            }
            obj_.btf = std::move(*btf);
        }
        if (const Section* s = find_section(".BTF.ext"); s != nullptr && obj_.btf) {
            Expected<BtfExt> ext = BtfExt::parse(s->data, *obj_.btf, name_ + ": section '.BTF.ext'");
            if (!ext) {
                return ext.error();
            }
            obj_.btf_ext = std::move(*ext);
        }
        return Unit{};
    }

    // BTF.ext records must point at instructions of existing code sections.
    Expected<Unit> check_btf_ext() {
        if (!obj_.btf_ext) {
            return Unit{};
        }
        auto check = [&](const std::string& sec, uint32_t offset, const char* what) -> Expected<Unit> {
            const Section* s = find_section(sec);
            if (s == nullptr || !s->exec) {
                return fail("section '.BTF.ext'",
                            std::string(what) + " for '" + sec + "', which is not a code section");
            }
            if (offset % 8 != 0 || offset >= s->data.size()) {
                return fail("section '.BTF.ext'", std::string(what) + " at byte " + std::to_string(offset) + " of '" +
                                                      sec + "' is not an instruction of its " +
                                                      std::to_string(s->data.size()) + " bytes");
            }
            return Unit{};
        };
        for (const auto& [sec, records] : obj_.btf_ext->func_info) {
            for (const BtfFuncInfo& fi : records) {
                Expected<Unit> r = check(sec, fi.insn_offset, "func_info");
                if (!r) {
                    return r;
                }
                if (!obj_.btf->valid(fi.type_id) || obj_.btf->type(fi.type_id).kind != BtfKind::Func) {
                    return fail("section '.BTF.ext'", "func_info for '" + sec + "' names BTF type " +
                                                          std::to_string(fi.type_id) + ", which is not a function");
                }
            }
        }
        for (const auto& [sec, records] : obj_.btf_ext->line_info) {
            for (const BtfLineInfo& li : records) {
                Expected<Unit> r = check(sec, li.insn_offset, "line_info");
                if (!r) {
                    return r;
                }
            }
        }
        for (const auto& [sec, records] : obj_.btf_ext->core_relos) {
            for (const BtfCoreRelo& c : records) {
                Expected<Unit> r = check(sec, c.insn_offset, "CO-RE relocation");
                if (!r) {
                    return r;
                }
            }
        }
        return Unit{};
    }

    // CO-RE: patch every relocated instruction for the target BTF (the object's own by default).
    Expected<Unit> apply_core() {
        if (!obj_.btf_ext) {
            return Unit{};
        }
        const Btf& target = options_.target_btf ? *options_.target_btf : *obj_.btf;
        for (const auto& [sec_name, relos] : obj_.btf_ext->core_relos) {
            const Section* sec = find_section(sec_name);
            if (sec == nullptr || !sec->exec) {
                return fail("section '.BTF.ext'",
                            "CO-RE relocations for '" + sec_name + "', which is not a code section");
            }
            const std::span<uint8_t> code(bytes_.data() + sec->hdr.sh_offset, sec->data.size());
            for (const BtfCoreRelo& relo : relos) {
                Expected<Unit> r =
                    apply_core_relocation(*obj_.btf, target, relo, code, name_ + ": " + sec_where(sec->index));
                if (!r) {
                    return r;
                }
            }
        }
        return Unit{};
    }

    // `extern ... __kconfig` variables: a read-only .kconfig map filled from LoadOptions::kconfig.
    Expected<Unit> read_kconfig() {
        if (!obj_.btf) {
            return Unit{};
        }
        const std::optional<uint32_t> sec = obj_.btf->find(BtfKind::Datasec, ".kconfig");
        if (!sec) {
            return Unit{};
        }
        // clang leaves extern offsets at 0: lay the variables out here as libbpf does (so the map
        // reads the same in bpfvm and in the kernel): by alignment (here their size) descending,
        // then size ascending, then name, each aligned to its size.
        const BtfType& ds = obj_.btf->type(*sec);
        std::vector<std::pair<const BtfType*, uint64_t>> layout;  // (variable, size)
        for (const BtfMember& e : ds.members) {
            const BtfType& var = obj_.btf->type(e.type);
            Expected<uint64_t> vsize = obj_.btf->size_of(e.type);
            if (var.kind != BtfKind::Var || !vsize || *vsize == 0 || *vsize > 8) {
                return fail("extern '" + var.name + "'", "a __kconfig value must be a number of 1 to 8 bytes");
            }
            layout.emplace_back(&var, *vsize);
        }
        std::sort(layout.begin(), layout.end(), [](const auto& a, const auto& b) {
            return a.second != b.second ? a.second > b.second : a.first->name < b.first->name;
        });
        uint64_t size = 0;
        std::vector<uint64_t> offsets;
        for (const auto& [var, vsize] : layout) {
            size = (size + vsize - 1) / vsize * vsize;
            offsets.push_back(size);
            size += vsize;
        }
        if (size == 0) {
            return Unit{};
        }
        vm::MapSpec m;
        m.name = ".kconfig";
        m.type = vm::MapType::Array;
        m.key_size = 4;
        m.value_size = static_cast<uint32_t>(size);
        m.max_entries = 1;
        m.flags = vm::kMapFlagRdonlyProg;
        m.origin = vm::MapOrigin::GlobalData;
        m.initial_value.assign(size, 0);
        for (std::size_t i = 0; i < layout.size(); ++i) {
            const BtfType& var = *layout[i].first;
            auto it = options_.kconfig.find(var.name);
            if (it == options_.kconfig.end()) {
                return fail("extern '" + var.name + "'",
                            "this __kconfig value was not given (--kconfig " + var.name + "=VALUE)");
            }
            for (uint64_t b = 0; b < layout[i].second; ++b) {
                m.initial_value[offsets[i] + b] = static_cast<uint8_t>(it->second >> (8 * b));
            }
            kconfig_offsets_[var.name] = static_cast<uint32_t>(offsets[i]);
        }
        kconfig_map_ = obj_.maps.size();
        obj_.maps.push_back(std::move(m));
        return Unit{};
    }

    // ---- maps ----------------------------------------------------------------------------

    std::vector<const Symbol*> symbols_in(std::size_t section) const {
        std::vector<const Symbol*> out;
        for (const Symbol& s : symbols_) {
            if (s.sym.st_shndx == section && s.type() != STT_SECTION && s.type() != STT_FILE && !s.name.empty()) {
                out.push_back(&s);
            }
        }
        std::sort(out.begin(), out.end(),
                  [](const Symbol* a, const Symbol* b) { return a->sym.st_value < b->sym.st_value; });
        return out;
    }

    Expected<Unit> read_maps() {
        // Legacy definitions: `maps`, or one section per map named `maps/NAME` (older loaders).
        for (const Section& legacy : sections_) {
            if (legacy.index != 0 && !legacy.exec && (legacy.name == "maps" || legacy.name.rfind("maps/", 0) == 0)) {
                Expected<Unit> r = read_legacy_maps(legacy);
                if (!r) {
                    return r;
                }
            }
        }
        if (const Section* btf_maps = find_section(".maps")) {
            Expected<Unit> r = read_btf_maps(*btf_maps);
            if (!r) {
                return r;
            }
        }
        for (const Section& s : sections_) {
            if (s.index == 0 || !is_data_section(s.name) || s.exec ||
                (s.hdr.sh_type != SHT_PROGBITS && s.hdr.sh_type != SHT_NOBITS)) {
                continue;
            }
            if (s.hdr.sh_size == 0) {
                continue;
            }
            vm::MapSpec m;
            m.name = s.name;
            m.type = vm::MapType::Array;
            m.key_size = 4;
            m.value_size = static_cast<uint32_t>(s.hdr.sh_size);
            m.max_entries = 1;
            m.origin = vm::MapOrigin::GlobalData;
            if (s.name.rfind(".rodata", 0) == 0) {
                m.flags = vm::kMapFlagRdonlyProg | vm::kMapFlagMmapable;
            } else {
                m.flags = vm::kMapFlagMmapable;
            }
            if (s.hdr.sh_type == SHT_NOBITS) {
                m.initial_value.assign(s.hdr.sh_size, 0);
            } else {
                m.initial_value.assign(s.data.begin(), s.data.end());
            }
            data_map_[s.index] = obj_.maps.size();
            obj_.maps.push_back(std::move(m));
        }
        return Unit{};
    }

    Expected<Unit> read_legacy_maps(const Section& s) {
        const std::vector<const Symbol*> syms = symbols_in(s.index);
        if (syms.empty()) {
            if (!s.data.empty()) {
                return fail(sec_where(s.index), "has " + std::to_string(s.data.size()) + " bytes but no map symbols");
            }
            return Unit{};
        }
        // libbpf's rule: every definition has the same size, the section size / the number of maps.
        const std::size_t def_size = s.data.size() / syms.size();
        if (def_size < 5 * 4 || s.data.size() % syms.size() != 0) {
            return fail(sec_where(s.index), std::to_string(syms.size()) + " map symbols in " +
                                                std::to_string(s.data.size()) +
                                                " bytes: definitions must be equal and at least 20 bytes");
        }
        for (const Symbol* sym : syms) {
            if (sym->sym.st_value % def_size != 0 || sym->sym.st_value + def_size > s.data.size()) {
                return fail("map '" + sym->name + "'", "its definition at offset " + std::to_string(sym->sym.st_value) +
                                                           " is not one of the " + std::to_string(def_size) +
                                                           "-byte slots of " + sec_where(s.index));
            }
            ByteReader r(s.data.subspan(sym->sym.st_value, def_size), name_);
            vm::MapSpec m;
            uint32_t type = 0;
            r.u32(type);
            r.u32(m.key_size);
            r.u32(m.value_size);
            r.u32(m.max_entries);
            r.u32(m.flags);
            m.type = static_cast<vm::MapType>(type);
            m.name = sym->name;
            m.origin = vm::MapOrigin::LegacyMaps;
            if (def_size > 20) {
                m.notes.push_back("legacy definition of " + std::to_string(def_size) +
                                  " bytes: fields after map_flags (inner_map_idx, numa_node, ...) ignored");
            }
            map_at_[{s.index, sym->sym.st_value}] = obj_.maps.size();
            obj_.maps.push_back(std::move(m));
        }
        return Unit{};
    }

    // A `__uint(name, N)` member: a pointer to an array of N elements.
    Expected<uint32_t> btf_uint(const Btf& btf, uint32_t type, const std::string& where) const {
        Expected<uint32_t> ptr = btf.resolve(type);
        if (!ptr || btf.type(*ptr).kind != BtfKind::Ptr) {
            return fail(where, "is not declared with __uint() (a pointer to an array)");
        }
        Expected<uint32_t> arr = btf.resolve(btf.type(*ptr).ref);
        if (!arr || btf.type(*arr).kind != BtfKind::Array) {
            return fail(where, "is not declared with __uint() (a pointer to an array)");
        }
        return btf.type(*arr).array_nelems;
    }

    // Reads one map definition struct (the type of a `.maps` variable, or of an inner map).
    Expected<vm::MapSpec> btf_map_def(const Btf& btf, uint32_t struct_id, const std::string& name,
                                      uint32_t depth) const {
        const std::string where = "map '" + name + "'";
        Expected<uint32_t> sid = btf.resolve(struct_id);
        if (!sid || btf.type(*sid).kind != BtfKind::Struct) {
            return fail(where, "its BTF type is not a struct");
        }
        vm::MapSpec m;
        m.name = name;
        m.origin = vm::MapOrigin::BtfMaps;
        std::optional<uint32_t> key_size;
        std::optional<uint32_t> value_size;
        for (const BtfMember& member : btf.type(*sid).members) {
            const std::string mw = where + ": field '" + member.name + "'";
            if (member.name == "type" || member.name == "max_entries" || member.name == "map_flags" ||
                member.name == "key_size" || member.name == "value_size" || member.name == "pinning" ||
                member.name == "map_extra" || member.name == "numa_node") {
                Expected<uint32_t> v = btf_uint(btf, member.type, mw);
                if (!v) {
                    return v.error();
                }
                if (member.name == "type") {
                    m.type = static_cast<vm::MapType>(*v);
                } else if (member.name == "max_entries") {
                    m.max_entries = *v;
                } else if (member.name == "map_flags") {
                    m.flags = *v;
                } else if (member.name == "key_size") {
                    key_size = *v;
                } else if (member.name == "value_size") {
                    value_size = *v;
                } else if (member.name == "pinning") {
                    if (*v != 0) {
                        m.notes.push_back("pinning ignored: bpfvm maps live in the process");
                    }
                } else {
                    m.notes.push_back(member.name + " ignored");
                }
            } else if (member.name == "key" || member.name == "value") {
                Expected<uint32_t> ptr = btf.resolve(member.type);
                if (!ptr || btf.type(*ptr).kind != BtfKind::Ptr) {
                    return fail(mw, "is not declared with __type() (a pointer to the type)");
                }
                Expected<uint64_t> size = btf.size_of(btf.type(*ptr).ref);
                if (!size) {
                    return fail(mw, size.error().what);
                }
                if (*size > UINT32_MAX) {
                    return fail(mw, "size " + std::to_string(*size) + " is absurd");
                }
                (member.name == "key" ? key_size : value_size) = static_cast<uint32_t>(*size);
                (member.name == "key" ? m.btf_key_type : m.btf_value_type) = btf.type(*ptr).ref;
            } else if (member.name == "values") {
                // map-in-map: `__array(values, struct inner)` = an array of pointers to the inner def.
                Expected<uint32_t> arr = btf.resolve(member.type);
                if (!arr || btf.type(*arr).kind != BtfKind::Array) {
                    return fail(mw, "is not declared with __array()");
                }
                Expected<uint32_t> ptr = btf.resolve(btf.type(*arr).array_elem);
                if (!ptr || btf.type(*ptr).kind != BtfKind::Ptr) {
                    return fail(mw, "elements are not pointers to a map definition");
                }
                Expected<uint32_t> pointee = btf.resolve(btf.type(*ptr).ref);
                if (pointee && btf.type(*pointee).kind == BtfKind::FuncProto) {
                    continue;  // prog_array: `values` lists programs, there is no inner map
                }
                if (depth > 0) {
                    return fail(mw, "maps nested more than one level deep are not supported");
                }
                Expected<vm::MapSpec> inner = btf_map_def(btf, btf.type(*ptr).ref, name + ".inner", depth + 1);
                if (!inner) {
                    return inner.error();
                }
                m.inner.push_back(std::move(*inner));
            } else {
                m.notes.push_back("unknown field '" + member.name + "' ignored");
            }
        }
        if (key_size) {
            m.key_size = *key_size;
        }
        if (value_size) {
            m.value_size = *value_size;
        }
        if (m.type == vm::MapType::ProgArray) {  // values are program fds, as libbpf sizes them
            m.key_size = m.key_size == 0 ? 4 : m.key_size;
            m.value_size = m.value_size == 0 ? 4 : m.value_size;
        }
        if ((m.type == vm::MapType::ArrayOfMaps || m.type == vm::MapType::HashOfMaps)) {
            if (m.inner.empty()) {
                return fail(where, "a map of maps needs a 'values' field describing the inner map");
            }
            m.value_size = 4;  // the kernel's view: a map fd
        }
        return m;
    }

    Expected<Unit> read_btf_maps(const Section& s) {
        if (!obj_.btf) {
            return fail(sec_where(s.index), "BTF-defined maps need a .BTF section, and there is none");
        }
        const Btf& btf = *obj_.btf;
        std::optional<uint32_t> sec = btf.find(BtfKind::Datasec, ".maps");
        if (!sec) {
            return fail(sec_where(s.index), "the BTF has no DATASEC '.maps' describing it");
        }
        for (const BtfMember& entry : btf.type(*sec).members) {
            const BtfType& var = btf.type(entry.type);
            if (var.kind != BtfKind::Var) {
                return fail(sec_where(s.index),
                            "DATASEC entry of type " + std::to_string(entry.type) + " is not a variable");
            }
            Expected<vm::MapSpec> m = btf_map_def(btf, var.ref, var.name, 0);
            if (!m) {
                return m.error();
            }
            // The ELF symbol gives the definition's offset (clang may leave DATASEC offsets 0).
            uint64_t offset = entry.offset;
            for (const Symbol* sym : symbols_in(s.index)) {
                if (sym->name == var.name) {
                    offset = sym->sym.st_value;
                }
            }
            if (offset >= s.hdr.sh_size) {
                return fail("map '" + var.name + "'", "its definition lies outside " + sec_where(s.index));
            }
            map_at_[{s.index, offset}] = obj_.maps.size();
            obj_.maps.push_back(std::move(*m));
        }
        // map-in-map initial values: R_BPF_64_ABS64 relocations inside a map's `values` array.
        auto it = relocs_.find(s.index);
        if (it != relocs_.end()) {
            for (const Reloc& r : it->second) {
                const Symbol& target = symbols_[r.symbol];
                // The outer map is the one whose definition starts at or before the offset.
                const vm::MapSpec* outer = nullptr;
                uint64_t outer_offset = 0;
                std::size_t outer_index = 0;
                for (const auto& [key, index] : map_at_) {
                    if (key.first == s.index && key.second <= r.offset && key.second >= outer_offset) {
                        outer = &obj_.maps[index];
                        outer_offset = key.second;
                        outer_index = index;
                    }
                }
                if (outer == nullptr || (outer->inner.empty() && outer->type != vm::MapType::ProgArray)) {
                    return fail(sec_where(s.index), "relocation #" + std::to_string(r.index) + " against '" +
                                                        target.name +
                                                        "' is not inside a map-of-maps or prog_array definition");
                }
                // Slots of `values` are 8-byte pointers.
                const uint32_t slot = static_cast<uint32_t>((r.offset - outer_offset - values_offset(outer_index)) / 8);
                obj_.maps[outer_index].initial_slots.emplace_back(slot, target.name);
                obj_.relocations.push_back({s.name, r.offset, r.type, target.name,
                                            "slot " + std::to_string(slot) + " of map '" + outer->name + "'"});
            }
        }
        return Unit{};
    }

    // Byte offset of the `values` member in the BTF definition of the map at maps[index].
    uint64_t values_offset(std::size_t index) const {
        const Btf& btf = *obj_.btf;
        const BtfType& sec = btf.type(*btf.find(BtfKind::Datasec, ".maps"));
        for (const BtfMember& entry : sec.members) {
            const BtfType& var = btf.type(entry.type);
            if (var.name != obj_.maps[index].name) {
                continue;
            }
            Expected<uint32_t> sid = btf.resolve(var.ref);
            if (!sid) {
                return 0;
            }
            for (const BtfMember& m : btf.type(*sid).members) {
                if (m.name == "values") {
                    return m.offset / 8;
                }
            }
        }
        return 0;
    }

    // ---- programs ------------------------------------------------------------------------

    Expected<Unit> find_functions() {
        for (const Section& s : sections_) {
            if (!s.exec || s.data.empty()) {
                continue;
            }
            const uint32_t n = static_cast<uint32_t>(s.data.size() / 8);
            std::vector<Func> in_section;
            for (const Symbol& sym : symbols_) {
                if (sym.sym.st_shndx != s.index || sym.type() != STT_FUNC) {
                    continue;
                }
                if (sym.sym.st_value % 8 != 0 || sym.sym.st_size % 8 != 0 || sym.sym.st_size == 0 ||
                    sym.sym.st_value / 8 > n || sym.sym.st_size / 8 > n - sym.sym.st_value / 8) {
                    return fail(sec_where(s.index) + ": function '" + sym.name + "'",
                                "its " + std::to_string(sym.sym.st_size) + " bytes at offset " +
                                    std::to_string(sym.sym.st_value) + " are not whole instructions inside the " +
                                    std::to_string(s.data.size()) + "-byte section");
                }
                in_section.push_back(Func{s.index, static_cast<uint32_t>(sym.sym.st_value / 8),
                                          static_cast<uint32_t>((sym.sym.st_value + sym.sym.st_size) / 8), sym.name,
                                          sym.bind() == STB_GLOBAL || sym.bind() == STB_WEAK});
            }
            if (in_section.empty()) {
                // Old objects: no function symbols, the whole section is one program.
                in_section.push_back(Func{s.index, 0, n, s.name, s.name != ".text"});
            }
            std::sort(in_section.begin(), in_section.end(),
                      [](const Func& a, const Func& b) { return a.start < b.start; });
            for (std::size_t i = 1; i < in_section.size(); ++i) {
                if (in_section[i].start < in_section[i - 1].end) {
                    return fail(sec_where(s.index),
                                "functions '" + in_section[i - 1].name + "' and '" + in_section[i].name + "' overlap");
                }
            }
            funcs_.insert(funcs_.end(), in_section.begin(), in_section.end());
        }
        return Unit{};
    }

    // Every instruction of every function decodes, used or not (unknown opcodes, broken lddw).
    Expected<Unit> decode_all_code() {
        for (const Func& f : funcs_) {
            const Section& sec = sections_[f.section];
            for (uint32_t idx = f.start; idx < f.end; ++idx) {
                const vm::RawInsn insn = vm::unpack(sec.data.data() + 8 * idx);
                const bool two = insn.opcode == 0x18 && idx + 1 < f.end;
                const vm::RawInsn next = two ? vm::unpack(sec.data.data() + 8 * (idx + 1)) : vm::RawInsn{};
                Expected<vm::Instruction> d = vm::decode_one(insn, two ? &next : nullptr, idx);
                if (!d) {
                    return fail(sec_where(f.section) + ": function '" + f.name + "'", d.error().message());
                }
                idx += two ? 1 : 0;
            }
        }
        return Unit{};
    }

    const Func* func_at(std::size_t section, int64_t insn) const {
        for (const Func& f : funcs_) {
            if (f.section == section && insn >= f.start && insn < f.end) {
                return &f;
            }
        }
        return nullptr;
    }

    const Reloc* reloc_at(std::size_t section, uint64_t offset) const {
        auto it = relocs_.find(section);
        if (it == relocs_.end()) {
            return nullptr;
        }
        auto r = std::lower_bound(it->second.begin(), it->second.end(), offset,
                                  [](const Reloc& a, uint64_t off) { return a.offset < off; });
        return r != it->second.end() && r->offset == offset ? &*r : nullptr;
    }

    Expected<Unit> link_programs() {
        // Programs are the global functions of code sections other than .text. An object whose
        // only code is .text (hand-made test objects) has its global .text functions as programs.
        const bool text_only = std::none_of(funcs_.begin(), funcs_.end(),
                                            [&](const Func& f) { return sections_[f.section].name != ".text"; });
        for (const Func& f : funcs_) {
            const Section& s = sections_[f.section];
            if ((s.name == ".text" && !text_only) || !f.global) {
                continue;  // subprograms
            }
            Expected<ProgramInfo> p = link(f);
            if (!p) {
                return p.error();
            }
            // Every program must be a valid program once linked.
            Expected<vm::Program> valid = vm::Program::from_raw(p->insns);
            if (!valid) {
                // Point at the source line when BTF.ext knows it ("pc 12" -> "... (prog.c:40: x = y;)").
                std::string what = valid.error().message();
                const std::string& where = valid.error().where;
                if (where.rfind("pc ", 0) == 0) {
                    const std::size_t pc = std::strtoul(where.c_str() + 3, nullptr, 10);
                    if (pc < p->lines.size() && p->lines[pc]) {
                        const SourceLocation& loc = *p->lines[pc];
                        std::string text = loc.text;
                        text.erase(0, text.find_first_not_of(" \t"));
                        what += " (" + loc.file + ":" + std::to_string(loc.line) + ": " + text + ")";
                    }
                }
                return fail(sec_where(f.section) + ": program '" + f.name + "'", what);
            }
            obj_.programs.push_back(std::move(*p));
        }
        if (obj_.programs.empty()) {
            return fail("", "no programs: no code section has a global function");
        }
        return Unit{};
    }

    Expected<ProgramInfo> link(const Func& main) {
        ProgramInfo prog;
        prog.name = main.name;
        prog.section = sections_[main.section].name;
        const std::optional<vm::ProgramType> type = vm::program_type_for_section(prog.section);
        prog.type = type.value_or(vm::ProgramType::Unspecified);
        prog.type_known = type.has_value();

        std::vector<const Func*> order{&main};
        std::map<const Func*, uint32_t> base{{&main, 0}};
        uint64_t total = main.end - main.start;
        auto include = [&](const Func* f) -> uint32_t {
            auto it = base.find(f);
            if (it != base.end()) {
                return it->second;
            }
            const auto at = static_cast<uint32_t>(total);
            base[f] = at;
            order.push_back(f);
            total += f->end - f->start;
            return at;
        };
        for (std::size_t k = 0; k < order.size(); ++k) {
            const Func& f = *order[k];
            const Section& sec = sections_[f.section];
            const uint32_t fbase = base[&f];
            prog.functions.push_back(Function{f.name, fbase});
            for (uint32_t idx = f.start; idx < f.end; ++idx) {
                const uint32_t pc = fbase + (idx - f.start);
                vm::RawInsn insn = vm::unpack(sec.data.data() + 8 * idx);
                const std::string at =
                    sec_where(f.section) + ": instruction " + std::to_string(idx) + " (in '" + f.name + "')";
                const Reloc* rel = reloc_at(f.section, uint64_t{idx} * 8);
                const bool is_lddw = insn.opcode == 0x18;
                if (is_lddw && idx + 1 >= f.end) {
                    return fail(at, "lddw needs a second slot, but the function ends");
                }
                vm::RawInsn next = is_lddw ? vm::unpack(sec.data.data() + 8 * (idx + 1)) : vm::RawInsn{};
                if (rel != nullptr) {
                    Expected<Unit> r = apply(*rel, insn, next, pc, at, f, include);
                    if (!r) {
                        return r.error();
                    }
                } else if (insn.opcode == 0x85 && insn.src == 1) {
                    // A call inside the same section, already pc-relative.
                    const int64_t target = int64_t{idx} + 1 + insn.imm;
                    const Func* callee = func_at(f.section, target);
                    if (callee == nullptr) {
                        return fail(at, "call target " + std::to_string(target) + " is not inside a function of " +
                                            sec_where(f.section));
                    }
                    const uint32_t cb = include(callee);
                    insn.imm = static_cast<int32_t>(int64_t{cb} + (target - callee->start) - (int64_t{pc} + 1));
                }
                if (total > vm::kMaxSlots) {
                    return fail(at, "the linked program exceeds " + std::to_string(vm::kMaxSlots) + " instructions");
                }
                prog.insns.resize(std::max<std::size_t>(prog.insns.size(), pc + (is_lddw ? 2 : 1)));
                prog.insns[pc] = insn;
                if (is_lddw) {
                    prog.insns[pc + 1] = next;
                    ++idx;
                }
            }
        }
        prog.insns.resize(total);
        attach_lines(prog, order, base);
        return prog;
    }

    template <typename Include>
    Expected<Unit> apply(const Reloc& rel, vm::RawInsn& insn, vm::RawInsn& next, uint32_t pc, const std::string& at,
                         const Func& f, Include&& include) {
        const Symbol& sym = symbols_[rel.symbol];
        const std::string what = at + ": relocation " + relocation_type_name(rel.type) + " against '" + sym.name + "'";
        const uint16_t shndx = sym.sym.st_shndx;
        RelocationInfo info{sections_[f.section].name, rel.offset, rel.type, sym.name, ""};
        if (insn.opcode == 0x85 && insn.src == 1) {
            if (rel.type != kRelBpf64_32) {
                return fail(what, "a bpf-to-bpf call needs R_BPF_64_32");
            }
            if (shndx == SHN_UNDEF) {
                return fail(what, "calls a function that this object does not define (an extern)");
            }
            if (shndx >= sections_.size() || !sections_[shndx].exec) {
                return fail(what, "the call target is not in a code section");
            }
            const int64_t target = static_cast<int64_t>(sym.sym.st_value / 8) + insn.imm + 1;
            const Func* callee = func_at(shndx, target);
            if (callee == nullptr) {
                return fail(
                    what, "call target " + std::to_string(target) + " is not inside a function of " + sec_where(shndx));
            }
            const uint32_t cb = include(callee);
            insn.imm = static_cast<int32_t>(int64_t{cb} + (target - callee->start) - (int64_t{pc} + 1));
            info.target = "subprogram '" + callee->name + "'";
        } else if (insn.opcode == 0x85 && insn.src == 0) {
            if (shndx == SHN_UNDEF) {
                return fail(what, "calls an extern function (a kfunc); bpfvm has no kernel functions");
            }
            return fail(what, "a relocation on a helper call");
        } else if (insn.opcode == 0x18) {
            if (rel.type != kRelBpf64_64) {
                return fail(what, "an lddw needs R_BPF_64_64");
            }
            if (shndx == SHN_UNDEF) {
                auto k = kconfig_offsets_.find(sym.name);
                if (k == kconfig_offsets_.end() || !kconfig_map_) {
                    return fail(what,
                                "refers to an extern variable that is not a __kconfig value (a __ksym?), "
                                "which bpfvm does not provide");
                }
                const auto extra = static_cast<uint32_t>(insn.imm);  // an offset into the variable
                insn.src = 6;
                insn.imm = static_cast<int32_t>(*kconfig_map_);
                next.imm = static_cast<int32_t>(k->second + extra);
                info.target = "kconfig '" + sym.name + "'";
                obj_.relocations.push_back(std::move(info));
                return Unit{};
            }
            if (shndx >= sections_.size()) {
                return fail(what, "refers to a special section index " + std::to_string(shndx));
            }
            const Section& target = sections_[shndx];
            if (target.exec) {
                // A function pointer (bpf_loop / for_each callbacks): lddw src 4, pc-relative.
                const int64_t tinsn = static_cast<int64_t>(sym.sym.st_value / 8) + insn.imm / 8;
                const Func* callee = func_at(shndx, tinsn);
                if (callee == nullptr) {
                    return fail(what, "the function pointer does not point at a function");
                }
                const uint32_t cb = include(callee);
                insn.src = 4;
                insn.imm = static_cast<int32_t>(int64_t{cb} + (tinsn - callee->start) - (int64_t{pc} + 1));
                next.imm = 0;
                info.target = "function '" + callee->name + "'";
            } else if (auto d = data_map_.find(shndx); d != data_map_.end()) {
                const uint64_t offset = sym.sym.st_value + static_cast<uint32_t>(insn.imm);
                if (offset >= target.hdr.sh_size) {
                    return fail(what, "offset " + std::to_string(offset) + " is outside " + sec_where(shndx));
                }
                insn.src = 6;
                insn.imm = static_cast<int32_t>(d->second);
                next.imm = static_cast<int32_t>(offset);
                info.target = "global data '" + target.name + "' + " + std::to_string(offset);
            } else if (auto m =
                           map_at_.find({shndx, sym.sym.st_value +
                                                    (sym.type() == STT_SECTION ? static_cast<uint32_t>(insn.imm) : 0)});
                       m != map_at_.end()) {
                insn.src = 5;
                insn.imm = static_cast<int32_t>(m->second);
                next.imm = 0;
                info.target = "map '" + obj_.maps[m->second].name + "'";
            } else {
                return fail(what, "does not name a map, global data or a function (it is in " + sec_where(shndx) + ")");
            }
        } else {
            return fail(
                what, "the instruction (opcode 0x" + hex16(insn.opcode).substr(2) + ") is neither an lddw nor a call");
        }
        obj_.relocations.push_back(std::move(info));
        return Unit{};
    }

    void attach_lines(ProgramInfo& prog, const std::vector<const Func*>& order,
                      const std::map<const Func*, uint32_t>& base) {
        if (!obj_.btf_ext) {
            return;
        }
        prog.lines.assign(prog.insns.size(), std::nullopt);
        for (const Func* f : order) {
            auto it = obj_.btf_ext->line_info.find(sections_[f->section].name);
            if (it == obj_.btf_ext->line_info.end()) {
                continue;
            }
            for (const BtfLineInfo& li : it->second) {
                const uint32_t idx = li.insn_offset / 8;
                if (li.insn_offset % 8 != 0 || idx < f->start || idx >= f->end) {
                    continue;
                }
                prog.lines[base.at(f) + (idx - f->start)] = SourceLocation{li.file, li.line_number, li.column, li.line};
            }
        }
    }
};

}  // namespace

const char* relocation_type_name(uint32_t type) {
    switch (type) {
        case kRelBpf64_64:
            return "R_BPF_64_64";
        case kRelBpfAbs64:
            return "R_BPF_64_ABS64";
        case kRelBpfAbs32:
            return "R_BPF_64_ABS32";
        case kRelBpfNodyld32:
            return "R_BPF_64_NODYLD32";
        case kRelBpf64_32:
            return "R_BPF_64_32";
        default:
            return "R_BPF_unknown";
    }
}

Expected<Btf> load_btf_file(const std::string& path) {
    Expected<std::vector<uint8_t>> read = vm::read_file(path);
    if (!read) {
        return read.error();
    }
    std::vector<uint8_t>& bytes = *read;
    if (bytes.size() >= 2 && bytes[0] == 0x9f && bytes[1] == 0xeb) {
        return Btf::parse(bytes, path);  // raw BTF, as /sys/kernel/btf/vmlinux
    }
    if (bytes.size() < 4 || std::memcmp(bytes.data(), ELFMAG, SELFMAG) != 0) {
        return make_error(path, "neither raw BTF nor an ELF file with a .BTF section");
    }
    init_libelf();
    std::unique_ptr<Elf, ElfCloser> elf(elf_memory(reinterpret_cast<char*>(bytes.data()), bytes.size()));
    std::size_t shstrndx = 0;
    if (!elf || elf_getshdrstrndx(elf.get(), &shstrndx) != 0) {
        return make_error(path, "libelf cannot read it" + libelf_reason());
    }
    for (Elf_Scn* scn = elf_nextscn(elf.get(), nullptr); scn != nullptr; scn = elf_nextscn(elf.get(), scn)) {
        GElf_Shdr hdr;
        if (gelf_getshdr(scn, &hdr) == nullptr) {
            break;
        }
        const char* name = elf_strptr(elf.get(), shstrndx, hdr.sh_name);
        if (name == nullptr || std::strcmp(name, ".BTF") != 0) {
            continue;
        }
        if (hdr.sh_offset > bytes.size() || hdr.sh_size > bytes.size() - hdr.sh_offset) {
            return make_error(path, "its .BTF section lies outside the file");
        }
        return Btf::parse(std::span<const uint8_t>(bytes.data() + hdr.sh_offset, hdr.sh_size),
                          path + ": section '.BTF'");
    }
    return make_error(path, "has no .BTF section");
}

const ProgramInfo* Object::find_program(std::string_view n) const {
    for (const ProgramInfo& p : programs) {
        if (p.name == n) {
            return &p;
        }
    }
    return nullptr;
}

Expected<Unit> Object::set_global(std::string_view variable, std::span<const uint8_t> bytes) {
    const std::string where = name + ": global '" + std::string(variable) + "'";
    if (!btf) {
        return make_error(where, "the object has no BTF to find variables in");
    }
    for (vm::MapSpec& m : maps) {
        if (m.origin != vm::MapOrigin::GlobalData) {
            continue;
        }
        const std::optional<uint32_t> sec = btf->find(BtfKind::Datasec, m.name);
        if (!sec) {
            continue;
        }
        for (const BtfMember& entry : btf->type(*sec).members) {
            if (btf->type(entry.type).kind != BtfKind::Var || btf->type(entry.type).name != variable) {
                continue;
            }
            if (bytes.size() != entry.bitfield_size) {
                return make_error(
                    where, "is " + std::to_string(entry.bitfield_size) + " bytes, got " + std::to_string(bytes.size()));
            }
            if (uint64_t{entry.offset} + bytes.size() > m.initial_value.size()) {
                return make_error(where, "lies outside section '" + m.name + "'");
            }
            std::copy(bytes.begin(), bytes.end(), m.initial_value.begin() + entry.offset);
            return Unit{};
        }
    }
    return make_error(where, "no such variable in .data, .rodata or .bss");
}

Expected<Unit> Object::set_global(std::string_view variable, uint64_t value) {
    for (uint32_t size : {1u, 2u, 4u, 8u}) {
        uint8_t bytes[8];
        for (uint32_t b = 0; b < 8; ++b) {
            bytes[b] = static_cast<uint8_t>(value >> (8 * b));
        }
        Expected<Unit> r = set_global(variable, std::span<const uint8_t>(bytes, size));
        if (r || r.error().what.find(" bytes, got ") == std::string::npos) {
            if (r && size < 8 && (value >> (8 * size)) != 0) {
                return make_error(name + ": global '" + std::string(variable) + "'",
                                  std::to_string(value) + " does not fit in its " + std::to_string(size) + " bytes");
            }
            return r;
        }
    }
    return make_error(name + ": global '" + std::string(variable) + "'", "is not a number of 1, 2, 4 or 8 bytes");
}

std::optional<uint32_t> Object::find_map(std::string_view n) const {
    for (std::size_t i = 0; i < maps.size(); ++i) {
        if (maps[i].name == n) {
            return static_cast<uint32_t>(i);
        }
    }
    return std::nullopt;
}

Expected<Object> load_object(std::span<const uint8_t> bytes, const std::string& name, const LoadOptions& options) {
    Expected<Object> obj = Reader(bytes, name, options).run();
    if (obj) {
        obj->name = name;
    }
    return obj;
}

Expected<Object> load_object_file(const std::string& path, const LoadOptions& options) {
    Expected<std::vector<uint8_t>> bytes = vm::read_file(path);
    if (!bytes) {
        return bytes.error();
    }
    return load_object(*bytes, path, options);
}

}  // namespace bpfvm::loader
