// The bpfvm command end to end: outputs, exit statuses, and one clear line for bad input.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "bpfvm/jit/engine.hpp"
#include "test_support.hpp"

namespace bpfvm {
namespace {

namespace fs = std::filesystem;

struct Outcome {
    int status;
    std::string out;
    std::string err;
};

class Cli : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() / ("bpfvm_cli_" + std::to_string(getpid()));
        fs::create_directories(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }

    std::string path(const std::string& name) const { return (dir_ / name).string(); }

    std::string write(const std::string& name, const std::string& content) const {
        std::ofstream(path(name), std::ios::binary) << content;
        return path(name);
    }

    Outcome run(const std::string& args) const {
        const std::string err_file = path("stderr.txt");
        const std::string cmd = std::string(BPFVM_CLI) + " " + args + " 2>'" + err_file + "' </dev/null";
        Outcome o;
        FILE* p = popen(cmd.c_str(), "r");
        char buf[4096];
        std::size_t n;
        while ((n = fread(buf, 1, sizeof buf, p)) > 0) {
            o.out.append(buf, n);
        }
        const int st = pclose(p);
        o.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        o.err = test::read_file(err_file);
        return o;
    }

    static std::string conformance(const std::string& file) { return std::string(BPFVM_CONFORMANCE_DIR) + "/" + file; }

    fs::path dir_;
};

TEST_F(Cli, RunPrintsR0InHex) {
    const Outcome o = run("run " + conformance("prime.data"));
    EXPECT_EQ(o.status, 0) << o.err;
    EXPECT_EQ(o.out, "0x1\n");
}

TEST_F(Cli, RunJsonPrintsOneObject) {
    const Outcome o = run("run " + conformance("mem-len.data") + " --json");
    EXPECT_EQ(o.status, 0) << o.err;
    EXPECT_EQ(o.out, "{\"r0\": 8}\n");
    const Outcome timed = run("run " + conformance("mem-len.data") + " --json --repeat 10 --engine interp");
    EXPECT_EQ(timed.out.rfind("{\"r0\": 8, \"ns_per_run\": ", 0), 0u) << timed.out;
}

TEST_F(Cli, RunAssemblyAndRawBytecodeWithMemFile) {
    const std::string s = write("p.s", "ldxw %r0, [%r1+4]\nexit\n");
    const std::string mem = write("m.bin", std::string("\x01\x00\x00\x00\x2a\x00\x00\x00", 8));
    Outcome o = run("run " + s + " --mem " + mem);
    EXPECT_EQ(o.status, 0) << o.err;
    EXPECT_EQ(o.out, "0x2a\n");
    o = run("asm " + s + " -o " + path("p.bin"));
    EXPECT_EQ(o.status, 0) << o.err;
    EXPECT_EQ(fs::file_size(path("p.bin")), 16u);
    o = run("run " + path("p.bin") + " --mem " + mem);
    EXPECT_EQ(o.out, "0x2a\n");
    o = run("disasm " + path("p.bin"));
    EXPECT_EQ(o.out, "ldxw %r0, [%r1+4]\nexit\n");
    o = run("disasm " + path("p.bin") + " --syntax llvm");
    EXPECT_EQ(o.out,
              "       0:\t61 10 04 00 00 00 00 00\tr0 = *(u32 *)(r1 + 0x4)\n"
              "       1:\t95 00 00 00 00 00 00 00\texit\n");
}

TEST_F(Cli, TrapExitsWithStatus1AndNamesPcAndAddress) {
    const std::string s = write("oob.s", "ldxdw %r0, [%r1+64]\nexit\n");
    Outcome o = run("run " + s);
    EXPECT_EQ(o.status, 1);
    EXPECT_NE(o.err.find("trap: pc 0: out-of-bounds 8-byte load from 0x40"), std::string::npos) << o.err;
    o = run("run " + s + " --json");
    EXPECT_EQ(o.status, 1);
    EXPECT_EQ(o.out.rfind("{\"trap\": \"out-of-bounds\", \"pc\": 0, ", 0), 0u) << o.out;
}

TEST_F(Cli, BudgetStopsALoopingProgram) {
    const std::string s = write("loop.s", "l: ja l\n");
    for (const char* engine : {"interp", "jit-checked", "jit"}) {
        const Outcome o = run("run " + s + " --budget 5000 --engine " + engine);
        EXPECT_EQ(o.status, 1) << engine;
        EXPECT_EQ(o.err, "bpfvm: " + s + ": trap: pc 0: instruction budget of 5000 exhausted\n") << engine;
    }
}

TEST_F(Cli, CheckedJitTrapsOnAHostileProgram) {
    const Outcome o = run("run " + std::string(BPFVM_SOURCE_DIR) + "/examples/hostile.s --engine jit-checked");
    EXPECT_EQ(o.status, 1);
    EXPECT_NE(o.err.find("trap: pc 2: out-of-bounds 8-byte load from 0x7fffdeadbeef"), std::string::npos) << o.err;
}

TEST_F(Cli, ConformanceSummarisesAndFailsOnMismatch) {
    Outcome o = run("conformance " + conformance("add.data") + " " + conformance("lddw.data") + " --engine all");
    EXPECT_EQ(o.status, 0);
    EXPECT_EQ(o.out, std::to_string(2 * jit::available_engines().size()) + " passed, 0 failed, 0 skipped\n");
    const std::string wrong = write("wrong.data", "-- asm\nmov %r0, 1\nexit\n-- result\n0x2\n");
    const std::string empty = write("skip.data", "-- asm\nmov %r0, 1\nexit\n");
    o = run("conformance " + wrong + " " + empty);
    EXPECT_EQ(o.status, 1);
    EXPECT_NE(o.out.find("FAIL " + wrong + " [interp-checked]: expected 0x2, got 0x1"), std::string::npos) << o.out;
    EXPECT_NE(o.out.find("0 passed, 1 failed, 1 skipped\n"), std::string::npos) << o.out;
}

TEST_F(Cli, BadInputGivesOneLineAndStatus2) {
    const std::string bad_asm = write("bad.s", "mov %r0, 1\nfrob\n");
    const std::string odd = write("odd.bin", "1234567");
    const std::string invalid = write("invalid.bin", std::string("\xb7\x00\x00\x00\x00\x00\x00\x00", 8));
    struct Case {
        std::string args;
        std::string message;
    };
    const Case cases[] = {
        {"run " + bad_asm, "bpfvm: " + bad_asm + ":2:1: unknown instruction 'frob'\n"},
        {"run " + odd, "bpfvm: " + odd + ": program is 7 bytes, not a multiple of the 8-byte instruction size\n"},
        {"run " + invalid,
         "bpfvm: " + invalid + ": pc 0: the program can fall off its end (last instruction is mov, not exit or ja)\n"},
        {"run " + path("missing.bin"), "bpfvm: " + path("missing.bin") + ": cannot read: No such file or directory\n"},
        {"run " + dir_.string(), "bpfvm: " + dir_.string() + ": is a folder, not a file\n"},
        {"run " + conformance("add.data") + " --engine jet",
         "bpfvm: --engine: jet not in {interp,interp-checked,jit,jit-checked} (see --help)\n"},
        {"run " + conformance("add.data") + " --repeat x", ""},
        {"disasm", "bpfvm: FILE is required (see --help)\n"},
        {"", "bpfvm: A subcommand is required (see --help)\n"},
        {"conformance " + path("nothing"), "bpfvm: " + path("nothing") + ": no such file or folder\n"},
        {"asm " + bad_asm + " -o " + path("x.bin"), "bpfvm: " + bad_asm + ":2:1: unknown instruction 'frob'\n"},
    };
    for (const Case& c : cases) {
        const Outcome o = run(c.args);
        EXPECT_EQ(o.status, 2) << c.args;
        EXPECT_TRUE(o.out.empty()) << c.args << ": " << o.out;
        if (!c.message.empty()) {
            EXPECT_EQ(o.err, c.message) << c.args;
        } else {
            EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << c.args << ": " << o.err;
        }
    }
}

std::string prog(const char* name) {
    return std::string(BPFVM_TEST_PROGS_DIR) + "/" + name;
}

TEST_F(Cli, RunsAnXdpObjectOnAPacketAndReportsPacketAndMaps) {
    const std::string pkt = write("udp.pkt", std::string("\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\x08\x00"
                                                         "\x45\x00\x00\x1c\x00\x01\x00\x00\x40\x11\x00\x00"
                                                         "\x0a\x00\x00\x01\x0a\x00\x00\x02"
                                                         "\x30\x39\x00\x35\x00\x08\x00\x00",
                                                         42));
    const Outcome o = run("run " + prog("xdp_rewrite.v4.o") + " --packet " + pkt + " --json");
    EXPECT_EQ(o.status, 0) << o.err;
    EXPECT_EQ(
        o.out,
        "{\"retval\": 3, \"packet_out\": "
        "\"66778899aabb00112233445508004500001c000100003f1101000a0000010a0000023039003500080000\", "
        "\"maps\": {\"proto_counts\": {\"00000000\": \"0100000000000000\", \"01000000\": \"0000000000000000\", "
        "\"02000000\": \"0000000000000000\", \"03000000\": \"0000000000000000\"}}, \"events\": {}, \"trace\": []}\n");
}

TEST_F(Cli, RunsTailCallsAndPrintsRingBufferEvents) {
    Outcome o = run("run " + prog("maps_tour.v3.o") + " --program tail_first");
    EXPECT_EQ(o.out, "0x2a\n") << o.err;
    const std::string ctx = write("ctx.bin", std::string("\x05\x00\x00\x00", 4));
    o = run("run " + prog("maps_tour.v3.o") + " --program ringbuf_events --ctx " + ctx);
    EXPECT_EQ(o.out, "0x0\nevent events: 05000000aaaa0000\nevent events: 06000000\n") << o.err;
    o = run("run " + prog("maps_tour.v3.o") + " --program nope");
    EXPECT_EQ(o.status, 2);
    EXPECT_NE(o.err.find("no program 'nope' (programs: tail_loop, tail_second, lpm_route"), std::string::npos) << o.err;
}

TEST_F(Cli, InspectsAndDisassemblesObjects) {
    Outcome o = run("maps " + prog("flow_counter.v3.o"));
    EXPECT_EQ(o.status, 0) << o.err;
    EXPECT_EQ(o.out.rfind("flows                    hash             key 8    value 8      max_entries 16 ", 0), 0u)
        << o.out;
    o = run("inspect " + prog("flow_counter.v3.o"));
    EXPECT_NE(o.out.find("count_flow               section .text"), std::string::npos) << o.out;
    EXPECT_NE(o.out.find("R_BPF_64_64     flows                -> map 'flows'"), std::string::npos) << o.out;
    o = run("disasm " + prog("flow_counter.v3.o") + " --syntax llvm");
    EXPECT_NE(o.out.find("; map 'flows'"), std::string::npos) << o.out;
    EXPECT_NE(o.out.find("; u64 count_flow(const u32 *record, u64 len) {"), std::string::npos) << o.out;
    o = run("inspect " + write("junk.o",
                               "\x7f"
                               "ELF garbage"));
    EXPECT_EQ(o.status, 2);
    EXPECT_EQ(o.err, "bpfvm: " + path("junk.o") + ": not an ELF object: 12 bytes is shorter than an ELF header\n");
}

TEST_F(Cli, TheExampleFirewallDropsTelnetAndTakesItsPortFromRodata) {
    const std::string eth_ip = std::string(
        "\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\x08\x00"
        "\x45\x00\x00\x28\x00\x01\x00\x00\x40\x06\x00\x00\x0a\x00\x00\x01"
        "\x0a\x00\x00\x02\x30\x39",
        36);
    const std::string rest(16, '\0');
    const std::string telnet = write("telnet.pkt", eth_ip + std::string("\x00\x17", 2) + rest);
    const std::string web = write("web.pkt", eth_ip + std::string("\x00\x50", 2) + rest);
    const std::string fw = std::string(BPFVM_EXAMPLES_DIR) + "/xdp_firewall.o";
    Outcome o = run("run " + fw + " --packet " + telnet);
    EXPECT_EQ(o.out, "0x1\ntrace: drop tcp port 23\n") << o.err;  // XDP_DROP
    o = run("run " + fw + " --packet " + web);
    EXPECT_EQ(o.out, "0x2\n") << o.err;  // XDP_PASS
    o = run("run " + fw + " --packet " + web + " --set always_blocked=80");
    EXPECT_EQ(o.out, "0x1\ntrace: drop tcp port 80\n") << o.err;
    // IPv6 / UDP to port 23: dropped too.
    const std::string v6 =
        write("v6.pkt", std::string("\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\x86\xdd"
                                    "\x60\x00\x00\x00\x00\x08\x11\x40",
                                    22) +
                            std::string(32, '\x01') + std::string("\x30\x39\x00\x17\x00\x08\x00\x00", 8));
    o = run("run " + fw + " --packet " + v6 + " --json");
    EXPECT_NE(o.out.find("\"retval\": 1,"), std::string::npos) << o.out << o.err;
    EXPECT_NE(o.out.find("\"01000000\": \"00000000000000000100000000000000\""), std::string::npos) << o.out;
    EXPECT_NE(o.out.find("\"trace\": [\"drop udp port 23\"]"), std::string::npos) << o.out;
    // The socket filter example logs the IPv4 packet to its ring buffer.
    o = run("run " + std::string(BPFVM_EXAMPLES_DIR) + "/packet_log.o --packet " + web);
    EXPECT_EQ(o.out, "0x28\nevent events: 0a0000010a0000022800000006000000\n") << o.err;  // len: 54 - 14
    o = run("run " + fw + " --packet " + web + " --set nosuch=1");
    EXPECT_EQ(o.status, 2);
    EXPECT_EQ(o.err, "bpfvm: " + fw + ": global 'nosuch': no such variable in .data, .rodata or .bss\n");
}

TEST_F(Cli, EverySubcommandHasHelp) {
    for (const char* sub : {"asm", "disasm", "run", "conformance", "inspect", "maps"}) {
        const Outcome o = run(std::string(sub) + " --help");
        EXPECT_EQ(o.status, 0) << sub;
        EXPECT_NE(o.out.find("Usage:"), std::string::npos) << sub << ": " << o.out;
    }
}

}  // namespace
}  // namespace bpfvm

namespace bpfvm {
namespace {

// `bpfvm diff` needs bpf(); where it is unavailable these skip with the reason.
class CliDiff : public Cli {
protected:
    void SetUp() override {
        Cli::SetUp();
        const Outcome probe = run("diff " + conformance("add.data") + " --engine interp");
        if (probe.status == 2 && probe.err.find("bpf() is not available") != std::string::npos) {
            GTEST_SKIP() << probe.err;
        }
    }
    static std::string prog(const std::string& name) { return std::string(BPFVM_TEST_PROGS_DIR) + "/" + name; }
};

TEST_F(CliDiff, PrintsATableAndTheCountsAndExitsZeroWhenAllAgree) {
    const Outcome o = run("diff " + conformance("mem-len.data"));
    EXPECT_EQ(o.status, 0) << o.err;
    EXPECT_NE(o.out.find("mem-len.data (raw program) on mem: agree"), std::string::npos) << o.out;
    // The kernel and every engine, side by side; "=" where an engine agrees with the kernel.
    EXPECT_NE(o.out.find("kernel "), std::string::npos) << o.out;
    for (jit::Engine e : jit::available_engines()) {
        EXPECT_NE(o.out.find(std::string(jit::to_string(e)) + " "), std::string::npos) << o.out;
    }
    EXPECT_NE(o.out.find("retval  0x8 "), std::string::npos) << o.out;
    EXPECT_NE(o.out.find("1 agree, 0 differ, 0 refused by the kernel\n"), std::string::npos) << o.out;
}

TEST_F(CliDiff, ReportsProgramsTheKernelRefuses) {
    const Outcome o = run("diff " + conformance("lsh64-imm-high.data") + " --engine jit");
    EXPECT_EQ(o.status, 0) << o.err;
    EXPECT_NE(o.out.find("refused by the kernel"), std::string::npos) << o.out;
    EXPECT_NE(o.out.find("invalid shift"), std::string::npos) << o.out;  // the verifier's words
    EXPECT_NE(o.out.find("0 agree, 0 differ, 1 refused by the kernel"), std::string::npos) << o.out;
}

TEST_F(CliDiff, ObjectsRunOnGivenPacketsOrTheDefaultSetAndJsonCarriesEverything) {
    // An IPv4 header claiming 20 bytes of packet in a 30-byte frame: xdp_swap takes it for short.
    const std::string pkt = std::string(12, '\0') + std::string("\x08\x00\x45\x00\x00\x14", 6) + std::string(12, '\0');
    const std::string packet = write("short-ipv4.pkt", pkt);
    Outcome o = run("diff " + prog("xdp_rewrite.v3.o") + " --program xdp_swap --packet " + packet + " --json");
    EXPECT_EQ(o.status, 0) << o.err;
    EXPECT_NE(o.out.find("\"program\": \"xdp_swap\""), std::string::npos) << o.out;
    EXPECT_NE(o.out.find("\"input\": \"short-ipv4.pkt\""), std::string::npos) << o.out;
    EXPECT_NE(o.out.find("\"kernel_verifier\": \"accepted: processed"), std::string::npos) << o.out;
    EXPECT_NE(o.out.find("\"kernel\": {\"status\": \"ran\", \"retval\": 1, \"retval_bits\": 32"), std::string::npos)
        << o.out;
    EXPECT_NE(o.out.find("\"agree\": 1, \"differ\": 0, \"refused_by_kernel\": 0"), std::string::npos) << o.out;
    // No packets given: the default set, the kernel's input rules included (10 bytes: refused by both).
    o = run("diff " + prog("xdp_rewrite.v3.o") + " --program xdp_swap --engine interp");
    EXPECT_EQ(o.status, 0) << o.err;
    EXPECT_NE(o.out.find("on jumbo-ipv4-udp: agree"), std::string::npos) << o.out;
    EXPECT_NE(o.out.find("on too-short: agree"), std::string::npos) << o.out;
    EXPECT_NE(o.out.find("9 agree, 0 differ, 0 refused by the kernel"), std::string::npos) << o.out;
}

TEST_F(CliDiff, ACorpusRunsEveryObjectWithTheInputsBesideIt) {
    const fs::path corpus = dir_ / "corpus";
    fs::create_directories(corpus);
    fs::copy_file(prog("xdp_rewrite.v3.o"), corpus / "rewrite.o");
    fs::copy_file(conformance("add.data"), corpus / "add.data");
    fs::copy_file(conformance("callx.data"), corpus / "callx.data");
    std::ofstream(corpus / "rewrite.vlan.pkt", std::ios::binary)
        << std::string(12, '\0') + std::string("\x81\x00\x00\x64\x08\x00", 6) + std::string(40, '\x01');
    const Outcome o = run("diff --corpus " + corpus.string() + " --engine interp-checked");
    EXPECT_EQ(o.status, 0) << o.err << o.out;
    // add.data, callx.data (refused: no callx in the kernel), and rewrite.o's three programs on its one packet.
    EXPECT_NE(o.out.find("rewrite.vlan.pkt"), std::string::npos) << o.out;
    EXPECT_NE(o.out.find("4 agree, 0 differ, 1 refused by the kernel\n"), std::string::npos) << o.out;

    // A file that is no program is counted apart, named with the reason, and fails the run.
    std::ofstream(corpus / "odd.bin", std::ios::binary) << "1234567";
    const Outcome bad = run("diff --corpus " + corpus.string() + " --engine interp-checked");
    EXPECT_EQ(bad.status, 1) << bad.err << bad.out;
    EXPECT_NE(bad.out.find("odd.bin"), std::string::npos) << bad.out;
    EXPECT_NE(bad.out.find("not a multiple of the 8-byte instruction size"), std::string::npos) << bad.out;
    EXPECT_NE(bad.out.find("4 agree, 0 differ, 1 refused by the kernel, 1 unreadable\n"), std::string::npos)
        << bad.out;
}

TEST_F(CliDiff, BadArgumentsGetOneLine) {
    Outcome o = run("diff");
    EXPECT_EQ(o.status, 2);
    EXPECT_EQ(o.err, "bpfvm: diff: give FILE or --corpus DIR\n");
    o = run("diff " + prog("xdp_rewrite.v3.o") + " --program nope");
    EXPECT_EQ(o.status, 2);
    EXPECT_NE(o.err.find("no program 'nope'"), std::string::npos) << o.err;
    o = run("diff " + prog("maps_tour.v3.o") + " --program lpm_route --packet " + write("p", "x"));
    EXPECT_EQ(o.status, 2);
    EXPECT_NE(o.err.find("a syscall program takes --ctx, not --packet"), std::string::npos) << o.err;
}

}  // namespace
}  // namespace bpfvm
