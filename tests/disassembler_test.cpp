// The llvm syntax of the disassembler against llvm-objdump-19 itself: every line objdump prints
// for clang-compiled code and for one instance of every table row must read the same when our
// disassembler decodes objdump's own bytes.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>

#include "bpfvm/vm/assembler.hpp"
#include "test_support.hpp"

namespace bpfvm::vm {
namespace {

namespace fs = std::filesystem;

std::string run_command(const std::string& cmd) {
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    if (p == nullptr) {
        return out;
    }
    char buf[4096];
    std::size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) {
        out.append(buf, n);
    }
    pclose(p);
    return out;
}

struct ObjdumpLine {
    std::size_t pc;
    std::vector<uint8_t> bytes;
    std::string text;
};

// Lines like "      12:\t18 01 00 ...\tr1 = 0x7 ll" or "...\tif r1 > 0x7 goto -0x3 <LBB0_2>".
std::vector<ObjdumpLine> objdump(const std::string& object, const std::string& flags) {
    const std::string out = run_command(std::string(BPFVM_LLVM_OBJDUMP) + " -d " + flags + " '" + object + "' 2>&1");
    std::vector<ObjdumpLine> lines;
    static const std::regex re(R"(^\s*(\d+):\t([0-9a-f ]+)\t(.*)$)");
    std::size_t start = 0;
    while (start < out.size()) {
        std::size_t end = out.find('\n', start);
        if (end == std::string::npos) {
            end = out.size();
        }
        const std::string line = out.substr(start, end - start);
        start = end + 1;
        std::smatch m;
        if (!std::regex_match(line, m, re)) {
            continue;
        }
        ObjdumpLine l;
        l.pc = std::stoul(m[1]);
        for (std::size_t i = 0; i + 1 < static_cast<std::size_t>(m[2].length()); i += 3) {
            l.bytes.push_back(static_cast<uint8_t>(std::stoul(m[2].str().substr(i, 2), nullptr, 16)));
        }
        l.text = m[3];
        static const std::regex symbol(R"( <[^<>]*>$)");  // objdump's symbolic jump target
        l.text = std::regex_replace(l.text, symbol, "");
        lines.push_back(std::move(l));
    }
    return lines;
}

// Decodes objdump's bytes with our decoder and compares our llvm-syntax text with what plain
// `llvm-objdump -d` prints. Plain objdump cannot decode the 32-bit atomics other than add (it
// prints <unknown>, or `+=` for fetch-add); for those the reference is `--mcpu=v4`, which
// names 32-bit registers w0-w10.
unsigned compare_with_objdump(const std::string& object) {
    const std::vector<ObjdumpLine> plain = objdump(object, "");
    const std::vector<ObjdumpLine> v4 = objdump(object, "--mcpu=v4");
    EXPECT_EQ(plain.size(), v4.size()) << object;
    unsigned compared = 0;
    for (std::size_t i = 0; i < plain.size() && i < v4.size(); ++i) {
        const bool atomic32 = !plain[i].bytes.empty() && plain[i].bytes[0] == 0xc3;
        const ObjdumpLine& l = atomic32 ? v4[i] : plain[i];
        if (l.bytes.size() != 8 && l.bytes.size() != 16) {
            ADD_FAILURE() << object << ": unexpected line " << l.text;
            continue;
        }
        const RawInsn first = unpack(l.bytes.data());
        const RawInsn second = l.bytes.size() == 16 ? unpack(l.bytes.data() + 8) : RawInsn{};
        Expected<Instruction> insn = decode_one(first, l.bytes.size() == 16 ? &second : nullptr, l.pc);
        if (!insn) {
            ADD_FAILURE() << object << " pc " << l.pc << ": objdump shows '" << l.text
                          << "' but we refuse it: " << insn.error().message();
            continue;
        }
        EXPECT_EQ(format_instruction(*insn, Syntax::Llvm), l.text) << object << " pc " << l.pc;
        ++compared;
    }
    return compared;
}

bool have_tools() {
    return fs::exists(BPFVM_LLVM_OBJDUMP) && fs::exists(BPFVM_CLANG_BPF);
}

TEST(Disassembler, MatchesLlvmObjdumpOnClangCompiledPrograms) {
    if (!have_tools()) {
        GTEST_SKIP() << "llvm-objdump-19 or clang-19 not found (apt-get install clang-19 llvm-19)";
    }
    unsigned objects = 0;
    unsigned lines = 0;
    for (const auto& e : fs::directory_iterator(BPFVM_TEST_PROGS_DIR)) {
        if (e.path().extension() == ".o") {
            lines += compare_with_objdump(e.path().string());
            ++objects;
        }
    }
    EXPECT_GE(objects, 2u);
    EXPECT_GT(lines, 50u);
}

TEST(Disassembler, MatchesLlvmObjdumpOnEveryTableRow) {
    if (!have_tools()) {
        GTEST_SKIP() << "llvm-objdump-19 or clang-19 not found (apt-get install clang-19 llvm-19)";
    }
    // One instance of every row, as .quad data that clang assembles into .text untouched.
    std::string source = ".text\n";
    unsigned rows = 0;
    for (const OpInfo& row : kOpTable) {
        const FormFields f = fields_of(row.form);
        RawInsn raw{row.opcode, static_cast<uint8_t>(f.uses_dst ? 1 : 0), static_cast<uint8_t>(f.uses_src ? 2 : 0),
                    static_cast<int16_t>(f.uses_off ? -8 : 0), f.uses_imm ? -7 : 0};
        if (row.form == Form::Callx) {
            raw.dst = 3;
        }
        raw = with_selector(raw, row);
        char line[64];
        std::snprintf(line, sizeof line, ".quad 0x%016llx\n", static_cast<unsigned long long>(to_u64(raw)));
        source += line;
        if (row.form == Form::LoadImm64) {
            std::snprintf(line, sizeof line, ".quad 0x%016llx\n",
                          static_cast<unsigned long long>(to_u64(RawInsn{0, 0, 0, 0, 0x11223344})));
            source += line;
        }
        ++rows;
    }
    const fs::path dir = fs::temp_directory_path() / ("bpfvm_disasm_" + std::to_string(getpid()));
    fs::create_directories(dir);
    { std::ofstream(dir / "rows.s") << source; }
    const std::string obj = (dir / "rows.o").string();
    const std::string err = run_command(std::string(BPFVM_CLANG_BPF) + " -target bpf -c '" + (dir / "rows.s").string() +
                                        "' -o '" + obj + "' 2>&1");
    ASSERT_TRUE(fs::exists(obj)) << err;
    EXPECT_EQ(compare_with_objdump(obj), rows);
    fs::remove_all(dir);
}

}  // namespace
}  // namespace bpfvm::vm
