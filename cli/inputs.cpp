#include "inputs.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "bpfvm/vm/assembler.hpp"
#include "bpfvm/vm/conformance_file.hpp"
#include "bpfvm/vm/files.hpp"

namespace bpfvm::cli {

namespace {

std::string extension(const std::string& path) {
    return std::filesystem::path(path).extension().string();
}

uint64_t unwind(uint64_t r1, uint64_t, uint64_t, uint64_t, uint64_t, vm::CallContext*) {
    return r1;
}

}  // namespace

Expected<std::vector<uint8_t>> read_bytes(const std::string& path) {
    return vm::read_file(path);
}

bool is_elf(const std::vector<uint8_t>& bytes) {
    return bytes.size() >= 4 && bytes[0] == 0x7f && bytes[1] == 'E' && bytes[2] == 'L' && bytes[3] == 'F';
}

Expected<std::pair<std::string, uint64_t>> parse_assignment(const std::string& text, const std::string& option) {
    const std::size_t eq = text.find('=');
    const std::string value = eq == std::string::npos ? "" : text.substr(eq + 1);
    char* end = nullptr;
    errno = 0;
    const unsigned long long v = value.empty() ? 0 : std::strtoull(value.c_str(), &end, 0);
    if (eq == std::string::npos || eq == 0 || value.empty() || *end != '\0' || errno != 0) {
        return make_error(option, "'" + text + "' is not NAME=NUMBER");
    }
    return std::make_pair(text.substr(0, eq), uint64_t{v});
}

Expected<loader::LoadOptions> load_options(const std::string& btf_file, bool kernel_btf,
                                           const std::vector<std::string>& kconfig) {
    loader::LoadOptions options;
    const std::string btf_path = kernel_btf ? std::string("/sys/kernel/btf/vmlinux") : btf_file;
    if (!btf_path.empty()) {
        Expected<loader::Btf> btf = loader::load_btf_file(btf_path);
        if (!btf) {
            return btf.error();
        }
        options.target_btf = std::make_shared<const loader::Btf>(std::move(*btf));
    }
    for (const std::string& kv : kconfig) {
        Expected<std::pair<std::string, uint64_t>> a = parse_assignment(kv, "--kconfig");
        if (!a) {
            return a.error();
        }
        options.kconfig[a->first] = a->second;
    }
    return options;
}

Expected<LoadedProgram> load_program(const std::string& path, const std::string& program_name,
                                     const loader::LoadOptions& options) {
    Expected<std::vector<uint8_t>> bytes = read_bytes(path);
    if (!bytes) {
        return bytes.error();
    }
    if (is_elf(*bytes)) {
        Expected<loader::Object> obj = loader::load_object(*bytes, path, options);
        if (!obj) {
            return obj.error();
        }
        std::size_t index = 0;
        if (!program_name.empty()) {
            std::string names;
            for (index = 0; index < obj->programs.size(); ++index) {
                if (obj->programs[index].name == program_name) {
                    break;
                }
                names += (names.empty() ? "" : ", ") + obj->programs[index].name;
            }
            if (index == obj->programs.size()) {
                return make_error(path, "no program '" + program_name + "' (programs: " + names + ")");
            }
        }
        Expected<vm::Program> p = vm::Program::from_raw(obj->programs[index].insns);
        if (!p) {
            return make_error(path + ": program '" + obj->programs[index].name + "'", p.error().message());
        }
        LoadedProgram loaded{std::move(*p), {}, std::move(*obj), index};
        return loaded;
    }
    if (!program_name.empty()) {
        return make_error(path, "--program applies to ELF objects; this is not one");
    }
    const std::string ext = extension(path);
    const std::string_view text(reinterpret_cast<const char*>(bytes->data()), bytes->size());
    std::vector<vm::RawInsn> raw;
    std::vector<uint8_t> mem;
    if (ext == ".s" || ext == ".asm") {
        Expected<std::vector<vm::RawInsn>> r = vm::assemble(text, path);
        if (!r) {
            return r.error();
        }
        if (r->empty()) {
            return make_error(path, "no instructions");
        }
        raw = std::move(*r);
    } else if (ext == ".data") {
        Expected<vm::ConformanceTest> t = vm::parse_conformance(text, path);
        if (!t) {
            return t.error();
        }
        Expected<std::vector<vm::RawInsn>> r = t->instructions();
        if (!r) {
            return r.error();
        }
        raw = std::move(*r);
        mem = t->mem;
    } else {
        Expected<vm::Program> p = vm::Program::from_bytes(*bytes);
        if (!p) {
            return make_error(p.error().where.empty() ? path : path + ": " + p.error().where, p.error().what);
        }
        return LoadedProgram{std::move(*p), {}, std::nullopt, 0};
    }
    Expected<vm::Program> p = vm::Program::from_raw(std::move(raw));
    if (!p) {
        return make_error(p.error().where.empty() ? path : path + ": " + p.error().where, p.error().what);
    }
    return LoadedProgram{std::move(*p), std::move(mem), std::nullopt, 0};
}

vm::Annotations annotations_for(const loader::Object& object, const loader::ProgramInfo& program) {
    vm::Annotations a;
    a.before.resize(program.insns.size());
    a.comment.resize(program.insns.size());
    for (const loader::Function& f : program.functions) {
        if (f.pc < a.before.size()) {
            a.before[f.pc] = "<" + f.name + ">:";
        }
    }
    std::string last;
    for (std::size_t pc = 0; pc < program.lines.size(); ++pc) {
        const auto& line = program.lines[pc];
        if (!line) {
            continue;
        }
        std::string text = "; " + line->text;
        while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) {
            text.pop_back();
        }
        const std::string where = line->file + ":" + std::to_string(line->line);
        if (where + text == last) {
            continue;
        }
        last = where + text;
        std::string& b = a.before[pc];
        b += (b.empty() ? "" : "\n") + text;
    }
    for (std::size_t pc = 0; pc < program.insns.size(); ++pc) {
        const vm::RawInsn& insn = program.insns[pc];
        if (insn.opcode != 0x18 || pc + 1 >= program.insns.size()) {
            continue;
        }
        const auto index = static_cast<std::size_t>(insn.imm);
        if ((insn.src == 5 || insn.src == 6) && index < object.maps.size()) {
            a.comment[pc] = (insn.src == 5 ? "map '" : "&map '") + object.maps[index].name + "'" +
                            (insn.src == 6 ? " + " + std::to_string(program.insns[pc + 1].imm) : "");
        } else if (insn.src == 4) {
            for (const loader::Function& f : program.functions) {
                if (static_cast<int64_t>(f.pc) == static_cast<int64_t>(pc) + 1 + insn.imm) {
                    a.comment[pc] = "function '" + f.name + "'";
                }
            }
        }
        ++pc;
    }
    return a;
}

vm::HelperTable default_helpers() {
    vm::HelperTable t;
    (void)t.add(5, "unwind", unwind);
    return t;
}

ConformanceOutcome run_conformance_file(const std::string& path, const vm::HelperTable& helpers, jit::Engine engine) {
    using S = ConformanceOutcome::Status;
    Expected<std::vector<uint8_t>> bytes = read_bytes(path);
    if (!bytes) {
        return {S::Fail, bytes.error().message()};
    }
    const std::string_view text(reinterpret_cast<const char*>(bytes->data()), bytes->size());
    Expected<vm::ConformanceTest> t = vm::parse_conformance(text, path);
    if (!t) {
        return {S::Fail, t.error().message()};
    }
    if (!t->runnable()) {
        return {S::Skip, "no program or no expected result"};
    }
    auto refuse = [&](const Error& e) -> ConformanceOutcome {
        if (t->error) {
            return e.message().find(*t->error) != std::string::npos
                       ? ConformanceOutcome{S::Pass, ""}
                       : ConformanceOutcome{S::Fail, "expected error '" + *t->error + "', got '" + e.message() + "'"};
        }
        return {S::Fail, e.message()};
    };
    Expected<std::vector<vm::RawInsn>> raw = t->instructions();
    if (!raw) {
        return refuse(raw.error());
    }
    Expected<vm::Program> program = vm::Program::from_raw(std::move(*raw));
    if (!program) {
        return refuse(program.error());
    }
    Expected<jit::Executable> exe = jit::Executable::create(*program, helpers, engine);
    if (!exe) {
        return refuse(exe.error());
    }
    std::vector<uint8_t> mem = t->mem;
    const vm::RunResult r = exe->run_buffer(mem, 100'000'000);
    if (!r.ok()) {
        return {S::Fail, "trap: " + r.trap->message()};
    }
    if (!t->result) {
        return {S::Fail, "expected error '" + t->error.value_or("") + "', but the program ran"};
    }
    if (r.r0 != *t->result) {
        char buf[96];
        std::snprintf(buf, sizeof buf, "expected 0x%llx, got 0x%llx", static_cast<unsigned long long>(*t->result),
                      static_cast<unsigned long long>(r.r0));
        return {S::Fail, buf};
    }
    return {S::Pass, ""};
}

}  // namespace bpfvm::cli
