// The bpfvm command: parses flags, calls the library, prints. Exit status: 0 ok, 1 the program
// trapped or a test failed, 2 bad arguments or unreadable/malformed input.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "bpfvm/helpers/context.hpp"
#include "bpfvm/helpers/linked_object.hpp"
#include "bpfvm/helpers/runtime.hpp"
#include "bpfvm/helpers/test_run.hpp"
#include "bpfvm/jit/jit.hpp"
#include "bpfvm/vm/assembler.hpp"
#include "bpfvm/vm/conformance_file.hpp"
#include "bpfvm/vm/interpreter.hpp"
#include "diff.hpp"
#include "inputs.hpp"
#include "objects.hpp"

namespace {

using namespace bpfvm;
using namespace bpfvm::vm;
namespace fs = std::filesystem;

// A user error: one line on stderr, exit status 2.
struct UsageError {
    std::string message;
};

[[noreturn]] void fail(const std::string& message) {
    throw UsageError{message};
}

// The value, or exit with the error (prefixed with `context` unless it already names it).
template <typename T>
T must(Expected<T> e, const std::string& context = "") {
    if (!e) {
        fail(context.empty() ? e.error().message() : context + ": " + e.error().message());
    }
    return std::move(e).value();
}

std::string json_escape(const std::string& s) {
    std::string out;
    for (char c : s) {
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out += c;
                }
        }
    }
    return out;
}

// ---- asm / disasm ------------------------------------------------------------------------------

int cmd_asm(const std::string& input, const std::string& output) {
    const cli::LoadedProgram loaded = must(cli::load_program(input));
    const std::vector<uint8_t> bytes = loaded.program.bytes();
    std::ofstream out(output, std::ios::binary);
    if (!out) {
        fail(output + ": cannot open for writing");
    }
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (!out) {
        fail(output + ": write failed");
    }
    return 0;
}

int cmd_disasm(const std::string& input, const std::string& syntax, const std::string& program,
               const loader::LoadOptions& options) {
    const Syntax sx = syntax == "llvm" ? Syntax::Llvm : Syntax::Conformance;
    const cli::LoadedProgram loaded = must(cli::load_program(input, program, options));
    if (!loaded.object) {
        std::cout << disassemble(loaded.program, sx);
        return 0;
    }
    // An object: every program (or the one asked for), with source lines and map names.
    const loader::Object& obj = *loaded.object;
    for (std::size_t i = 0; i < obj.programs.size(); ++i) {
        if (!program.empty() && i != loaded.program_index) {
            continue;
        }
        const loader::ProgramInfo& p = obj.programs[i];
        const Program prog = must(Program::from_raw(p.insns), input + ": program '" + p.name + "'");
        std::cout << (i == 0 || !program.empty() ? "" : "\n") << "Disassembly of program '" << p.name << "' (section '"
                  << p.section << "', " << to_string(p.type) << "):\n";
        std::cout << disassemble(prog, sx, cli::annotations_for(obj, p));
    }
    return 0;
}

int cmd_jit_dump(const std::string& input, const std::string& program, const loader::LoadOptions& options,
                 jit::JitOptions jo) {
    const cli::LoadedProgram loaded = must(cli::load_program(input, program, options));
    jo.keep_listing = true;
    std::unique_ptr<jit::JitProgram> code;
    if (loaded.object) {
        const loader::ProgramInfo& p = loaded.object->programs[loaded.program_index];
        std::vector<helpers::ProgramSource> sources{{p.name, p.type, p.insns}};
        const auto linked = must(helpers::LinkedObject::create(loaded.object->maps, sources), input);
        must(linked->program(p.name), input);
        code = must(jit::JitProgram::compile(*linked->linked_program(p.name), linked->runtime().helpers(), jo), input);
        std::printf("; program '%s' (section '%s')\n", p.name.c_str(), p.section.c_str());
    } else {
        code = must(jit::JitProgram::compile(loaded.program, cli::default_helpers(), jo), input);
    }
    std::printf("%s; %zu bytes of code (%s%s)\n", code->listing().c_str(), code->code_bytes(),
                jo.checked ? "checked" : "verified mode", jo.blind_constants ? ", constants blinded" : "");
    return 0;
}

int cmd_inspect(const std::string& input, bool maps_only, const loader::LoadOptions& options) {
    const std::vector<uint8_t> bytes = must(cli::read_bytes(input));
    if (!cli::is_elf(bytes)) {
        fail(input + ": not an ELF object");
    }
    const loader::Object obj = must(loader::load_object(bytes, input, options));
    std::cout << (maps_only ? cli::describe_maps(obj) : cli::describe_object(obj));
    return 0;
}

// ---- run ---------------------------------------------------------------------------------------

std::string hex_bytes(const uint8_t* p, std::size_t n) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    out.reserve(2 * n);
    for (std::size_t i = 0; i < n; ++i) {
        out += digits[p[i] >> 4];
        out += digits[p[i] & 15];
    }
    return out;
}

// {"map": {"key hex": "value hex", ...}, ...}; global-data maps are left out.
std::string maps_json(helpers::Runtime& rt) {
    std::string out = "{";
    bool first_map = true;
    for (std::size_t i = 0; i < rt.map_count(); ++i) {
        helpers::Map& m = rt.map(i);
        if (m.spec().origin == MapOrigin::GlobalData) {
            continue;
        }
        out += std::string(first_map ? "" : ", ") + "\"" + json_escape(m.spec().name) + "\": {";
        first_map = false;
        bool first = true;
        for (const auto& [k, v] : m.entries()) {
            out += std::string(first ? "" : ", ") + "\"" + hex_bytes(k.data(), k.size()) + "\": \"" +
                   hex_bytes(v.data(), v.size()) + "\"";
            first = false;
        }
        out += "}";
    }
    return out + "}";
}

// Ring buffer records and perf event samples, as hex, per map; consuming them empties the maps.
std::vector<std::pair<std::string, std::vector<std::string>>> drain_events(helpers::Runtime& rt) {
    std::vector<std::pair<std::string, std::vector<std::string>>> out;
    for (std::size_t i = 0; i < rt.map_count(); ++i) {
        helpers::Map& m = rt.map(i);
        std::vector<std::string> records;
        if (auto* rb = dynamic_cast<helpers::RingBuffer*>(&m)) {
            for (const auto& r : rb->consume()) {
                records.push_back(hex_bytes(r.data(), r.size()));
            }
        } else if (auto* pe = dynamic_cast<helpers::PerfEventArray*>(&m)) {
            for (const auto& [cpu, r] : pe->consume()) {
                records.push_back(hex_bytes(r.data(), r.size()));
            }
        } else {
            continue;
        }
        out.emplace_back(m.spec().name, std::move(records));
    }
    return out;
}

std::string events_json(const std::vector<std::pair<std::string, std::vector<std::string>>>& events) {
    std::string out = "{";
    for (std::size_t i = 0; i < events.size(); ++i) {
        out += std::string(i == 0 ? "" : ", ") + "\"" + json_escape(events[i].first) + "\": [";
        for (std::size_t j = 0; j < events[i].second.size(); ++j) {
            out += std::string(j == 0 ? "" : ", ") + "\"" + events[i].second[j] + "\"";
        }
        out += "]";
    }
    return out + "}";
}

// --btf / --kernel-btf / --kconfig, for the subcommands that load objects.
struct LoaderArgs {
    std::string btf;
    bool kernel_btf = false;
    std::vector<std::string> kconfig;

    void add_to(CLI::App* cmd) {
        CLI::Option* b =
            cmd->add_option("--btf", btf, "CO-RE: resolve relocations against this BTF (raw or an ELF's .BTF)");
        CLI::Option* k = cmd->add_flag("--kernel-btf", kernel_btf, "CO-RE: resolve against /sys/kernel/btf/vmlinux");
        b->excludes(k);
        cmd->add_option("--kconfig", kconfig, "Value of an extern __kconfig variable: NAME=NUMBER (repeatable)");
    }
    [[nodiscard]] loader::LoadOptions options() const;
};

struct RunArgs {
    LoaderArgs loader;
    std::vector<std::string> globals;  // --set NAME=NUMBER
    std::string engine = "interp-checked";
    std::string program;
    std::string mem_file;
    std::string packet_file;
    std::string ctx_file;
    uint64_t repeat = 0;
    uint64_t budget = 100'000'000;
    bool json = false;
    bool blind = false;
};

loader::LoadOptions LoaderArgs::options() const {
    return must(cli::load_options(btf, kernel_btf, kconfig));
}

int cmd_run(const std::string& input, const RunArgs& a) {
    cli::LoadedProgram loaded = must(cli::load_program(input, a.program, a.loader.options()));
    for (const std::string& kv : a.globals) {
        const Expected<std::pair<std::string, uint64_t>> set = cli::parse_assignment(kv, "--set");
        if (!loaded.object || !set) {
            fail("--set: '" + kv + "' must be NAME=NUMBER, for an ELF object");
        }
        must(loaded.object->set_global(set->first, set->second));
    }
    std::vector<uint8_t> mem = loaded.mem;
    for (const std::string* file : {&a.mem_file, &a.ctx_file, &a.packet_file}) {  // --packet wins over --ctx
        if (!file->empty()) {
            mem = must(cli::read_bytes(*file));
        }
    }
    // An object's program runs against a runtime holding its maps and the kernel helpers, with
    // the object's other programs linked too (tail calls reach them).
    std::unique_ptr<helpers::LinkedObject> linked;
    helpers::Runtime* runtime = nullptr;
    ProgramType program_type = ProgramType::Unspecified;
    // Programs of a type the kernel test-runs get their input as BPF_PROG_TEST_RUN gives it
    // (helpers/test_run.hpp): the packet, and the context (--ctx) where the type takes one.
    bool test_run = false;
    helpers::TestInput test_input;
    std::vector<uint8_t> ctx_out;  // the context after the run (__sk_buff; a syscall's context)
    // The engine asked for, and the checked engine of the same kind that runs first.
    const jit::Engine engine = *jit::engine_from_string(a.engine);
    const jit::Engine first_engine = jit::is_jit(engine) ? jit::Engine::JitChecked : jit::Engine::InterpChecked;
    std::optional<jit::Executable> exe;
    std::optional<jit::Executable> first;
    jit::JitOptions jo;
    jo.blind_constants = a.blind;
    if (loaded.object) {
        std::vector<helpers::ProgramSource> sources;
        for (const loader::ProgramInfo& p : loaded.object->programs) {
            sources.push_back({p.name, p.type, p.insns});
        }
        linked = must(helpers::LinkedObject::create(loaded.object->maps, sources), input);
        const loader::ProgramInfo& p = loaded.object->programs[loaded.program_index];
        const vm::Program& linked_program = *linked->linked_program(p.name);
        exe.emplace(must(jit::Executable::create(linked_program, linked->runtime().helpers(), engine, jo), input));
        first.emplace(
            must(jit::Executable::create(linked_program, linked->runtime().helpers(), first_engine, jo), input));
        runtime = &linked->runtime();
        program_type = p.type;
        test_run = helpers::has_test_run(p.type);
        const bool packets = p.type != ProgramType::Syscall && p.type != ProgramType::RawTracepoint;
        if (test_run && packets) {
            if (a.packet_file.empty() && a.mem_file.empty()) {
                fail(input + ": a " + std::string(to_string(p.type)) + " program needs --packet" +
                     (p.type == ProgramType::Xdp ? "" : " (--ctx sets __sk_buff fields)"));
            }
            test_input.data = must(cli::read_bytes(a.packet_file.empty() ? a.mem_file : a.packet_file));
            if (!a.ctx_file.empty()) {
                test_input.ctx = must(cli::read_bytes(a.ctx_file));
            }
        } else if (test_run) {
            test_input.ctx = mem;
            test_input.repeat = 0;
        }
    } else {
        exe.emplace(must(jit::Executable::create(loaded.program, cli::default_helpers(), engine, jo), input));
        first.emplace(must(jit::Executable::create(loaded.program, cli::default_helpers(), first_engine, jo), input));
    }
    // The first run is a checked engine's; the repeated runs are the engine asked for.
    auto execute = [&](const RunInput& in, bool first_run) { return (first_run ? *first : *exe).run(in, a.budget); };
    // A program of no test-run type: r1 = the buffer (its only region), r2 = its length.
    auto raw_input = [&](std::vector<uint8_t>& buf, std::vector<Region>& regions) {
        if (!buf.empty()) {
            regions.push_back(Region::of(std::span<uint8_t>(buf), "input"));
        }
        RunInput in;
        in.r1 = buf.empty() ? 0 : reinterpret_cast<uintptr_t>(buf.data());
        in.r2 = buf.size();
        in.packet = buf;
        if (runtime) {
            runtime->prepare(in, regions, program_type);
        } else {
            in.regions = regions;
        }
        return in;
    };
    auto run_once = [&](std::vector<uint8_t>& buf, bool first_run) {
        if (test_run) {
            auto out = helpers::test_run(*runtime, program_type, test_input,
                                         [&](const RunInput& in) { return execute(in, first_run); });
            if (auto* refused = std::get_if<helpers::InputRefusal>(&out)) {
                fail(input + ": the kernel refuses this input (" + std::string(std::strerror(refused->err)) +
                     "): " + refused->reason);
            }
            auto& done = std::get<helpers::TestOutput>(out);
            buf = program_type == ProgramType::Syscall || program_type == ProgramType::RawTracepoint
                      ? std::vector<uint8_t>{}
                      : std::move(done.data_out);
            ctx_out = std::move(done.ctx_out);
            return done.result;
        }
        std::vector<Region> regions;
        return execute(raw_input(buf, regions), first_run);
    };

    // Until the verifier exists, an unchecked engine runs a program only after a checked run of
    // the same input finished without a trap, so an unsafe program cannot crash the command.
    // What "packet out" is compared with: the packet as a run that changed nothing returns it (a
    // socket filter's comes back with a cleared Ethernet header); syscall and raw tracepoint runs
    // have no packet, and a syscall's context may come back changed ("ctx out").
    const bool no_packet = program_type == ProgramType::Syscall || program_type == ProgramType::RawTracepoint;
    if (test_run && !no_packet) {
        mem = test_input.data;
        if (program_type == ProgramType::SocketFilter) {
            std::fill(mem.begin(), mem.begin() + std::min<std::ptrdiff_t>(14, static_cast<std::ptrdiff_t>(mem.size())),
                      0);
        }
    } else if (test_run) {
        mem.clear();
    }
    std::vector<uint8_t> work = mem;
    RunResult result = run_once(work, true);
    const std::vector<uint8_t> after_first = work;
    const std::vector<uint8_t> first_ctx_out = ctx_out;
    const std::vector<std::pair<std::string, std::vector<std::string>>> events =
        runtime != nullptr ? drain_events(*runtime) : std::vector<std::pair<std::string, std::vector<std::string>>>{};
    // What the first run left, before timed runs change the maps again.
    const std::string maps_after_first = runtime && a.json ? maps_json(*runtime) : std::string();
    const std::vector<std::string> trace_after_first = runtime ? runtime->trace_lines() : std::vector<std::string>{};
    double ns_per_run = 0;
    if (result.ok() && a.repeat > 0) {
        // Timed as the kernel times a test run with a repeat: the program runs again and again on
        // the input as the last run left it, and only the runs are timed, not the input's set-up.
        RunResult timed;
        if (test_run && !no_packet) {
            test_input.repeat = static_cast<uint32_t>(std::min<uint64_t>(a.repeat, UINT32_MAX));
            auto out = helpers::test_run(*runtime, program_type, test_input,
                                         [&](const RunInput& in) { return execute(in, false); });
            auto& done = std::get<helpers::TestOutput>(out);  // (the same input was accepted above)
            timed = done.result;
            ns_per_run = done.ns_per_run;
        } else if (test_run) {
            // (the kernel takes no repeat for these: each run is a test run of its own)
            const auto start = std::chrono::steady_clock::now();
            for (uint64_t i = 0; i < a.repeat && timed.ok(); ++i) {
                timed = run_once(work, false);
            }
            const auto end = std::chrono::steady_clock::now();
            ns_per_run = std::chrono::duration<double, std::nano>(end - start).count() / static_cast<double>(a.repeat);
        } else {
            std::vector<Region> regions;
            const RunInput in = raw_input(work, regions);
            const auto start = std::chrono::steady_clock::now();
            for (uint64_t i = 0; i < a.repeat && timed.ok(); ++i) {
                timed = execute(in, false);
            }
            const auto end = std::chrono::steady_clock::now();
            ns_per_run = std::chrono::duration<double, std::nano>(end - start).count() / static_cast<double>(a.repeat);
        }
        if (!timed.ok()) {
            result = timed;  // (a later run may trap where the first did not: a map changed)
        }
    }
    if (!result.ok()) {
        if (a.json) {
            std::printf("{\"trap\": \"%s\", \"pc\": %u, \"message\": \"%s\"}\n",
                        std::string(to_string(result.trap->kind)).c_str(), result.trap->pc,
                        json_escape(result.trap->message()).c_str());
        } else {
            std::fprintf(stderr, "bpfvm: %s: trap: %s\n", input.c_str(), result.trap->message().c_str());
        }
        return 1;
    }
    if (a.json) {
        if (runtime) {
            std::printf("{\"retval\": %llu, \"packet_out\": \"%s\", \"maps\": %s, \"events\": %s, \"trace\": [",
                        static_cast<unsigned long long>(result.r0),
                        hex_bytes(after_first.data(), after_first.size()).c_str(), maps_after_first.c_str(),
                        events_json(events).c_str());
            const std::vector<std::string>& lines = trace_after_first;
            for (std::size_t i = 0; i < lines.size(); ++i) {
                std::printf("%s\"%s\"", i == 0 ? "" : ", ", json_escape(lines[i]).c_str());
            }
            std::printf("]");
            if (!first_ctx_out.empty()) {
                std::printf(", \"ctx_out\": \"%s\"", hex_bytes(first_ctx_out.data(), first_ctx_out.size()).c_str());
            }
        } else {
            std::printf("{\"r0\": %llu", static_cast<unsigned long long>(result.r0));
        }
        if (a.repeat > 0) {
            std::printf(", \"ns_per_run\": %.2f", ns_per_run);
        }
        std::printf("}\n");
        return 0;
    }
    std::printf("0x%llx\n", static_cast<unsigned long long>(result.r0));
    if (runtime) {
        if (after_first != mem) {
            std::printf("packet out: %s\n", hex_bytes(after_first.data(), after_first.size()).c_str());
        }
        if (program_type == ProgramType::Syscall && first_ctx_out != test_input.ctx) {
            std::printf("ctx out: %s\n", hex_bytes(first_ctx_out.data(), first_ctx_out.size()).c_str());
        }
        for (const std::string& line : trace_after_first) {
            std::printf("trace: %s\n", line.c_str());
        }
        for (const auto& [map, records] : events) {
            for (const std::string& r : records) {
                std::printf("event %s: %s\n", map.c_str(), r.c_str());
            }
        }
    }
    if (a.repeat > 0) {
        std::printf("%.2f ns per run (%s, mean of %llu runs)\n", ns_per_run, a.engine.c_str(),
                    static_cast<unsigned long long>(a.repeat));
    }
    return 0;
}

// ---- conformance -------------------------------------------------------------------------------

int cmd_conformance(const std::vector<std::string>& paths, const std::string& engine) {
    std::vector<fs::path> files;
    for (const std::string& p : paths) {
        std::error_code ec;
        if (fs::is_directory(p, ec)) {
            std::vector<fs::path> found;
            for (const auto& e : fs::directory_iterator(p, ec)) {
                if (e.path().extension() == ".data") {
                    found.push_back(e.path());
                }
            }
            std::sort(found.begin(), found.end());
            files.insert(files.end(), found.begin(), found.end());
        } else if (fs::is_regular_file(p, ec)) {
            files.emplace_back(p);
        } else {
            fail(p + ": no such file or folder");
        }
    }
    std::vector<jit::Engine> engines;
    if (engine == "all") {
        engines = jit::available_engines();
    } else {
        engines.push_back(*jit::engine_from_string(engine));
    }
    const HelperTable helpers = cli::default_helpers();
    unsigned passed = 0;
    unsigned failed = 0;
    unsigned skipped = 0;
    for (const fs::path& file : files) {
        const std::string name = file.string();
        for (jit::Engine e : engines) {
            const std::string mode_name(jit::to_string(e));
            const cli::ConformanceOutcome o = cli::run_conformance_file(name, helpers, e);
            switch (o.status) {
                case cli::ConformanceOutcome::Status::Pass:
                    ++passed;
                    break;
                case cli::ConformanceOutcome::Status::Skip:
                    ++skipped;
                    std::printf("SKIP %s [%s]: %s\n", name.c_str(), mode_name.c_str(), o.detail.c_str());
                    break;
                case cli::ConformanceOutcome::Status::Fail:
                    ++failed;
                    std::printf("FAIL %s [%s]: %s\n", name.c_str(), mode_name.c_str(), o.detail.c_str());
                    break;
            }
        }
    }
    std::printf("%u passed, %u failed, %u skipped\n", passed, failed, skipped);
    return failed == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"bpfvm: a userspace eBPF virtual machine"};
    app.require_subcommand(1);
    app.set_help_all_flag("--help-all", "Print help for every subcommand");

    std::string input;
    std::string output;
    std::string syntax = "conformance";
    std::string engine = "interp-checked";
    std::vector<std::string> paths;

    const std::string file_help =
        "Program: raw bytecode (.bin, 8-byte little-endian slots), assembly (.s/.asm) or a conformance test (.data)";

    CLI::App* asm_cmd = app.add_subcommand("asm", "Assemble a program into raw bytecode");
    asm_cmd->add_option("FILE", input, "Assembly text (.s/.asm) or a conformance test (.data)")->required();
    asm_cmd->add_option("-o,--output", output, "Where to write the bytecode")->required();

    std::string program;
    CLI::App* disasm_cmd = app.add_subcommand("disasm", "Disassemble a program, or the programs of an ELF object");
    disasm_cmd->add_option("FILE", input, file_help + ", or an ELF object (.o)")->required();
    disasm_cmd->add_option("--program", program, "For an object: only this program");
    LoaderArgs disasm_loader;
    disasm_loader.add_to(disasm_cmd);
    disasm_cmd->add_option("--syntax", syntax, "conformance (re-assemblable) or llvm (like llvm-objdump -d)")
        ->check(CLI::IsMember({"conformance", "llvm"}));

    RunArgs run_args;
    CLI::App* run_cmd = app.add_subcommand("run", "Run a program and print r0");
    run_cmd->add_option("FILE", input, file_help + ", or an ELF object (.o)")->required();
    run_cmd->add_option("--program", run_args.program, "For an object: the program to run (default: the first)");
    run_cmd
        ->add_option("--engine", run_args.engine,
                     "interp-checked, interp, jit-checked or jit; interp and jit (no run-time checks) run "
                     "after one checked run of the same kind")
        ->check(CLI::IsMember({"interp", "interp-checked", "jit", "jit-checked"}));
    CLI::Option* mem_opt =
        run_cmd->add_option("--mem", run_args.mem_file, "Input buffer: r1 points to a copy of it, r2 holds its length");
    CLI::Option* packet_opt = run_cmd->add_option("--packet", run_args.packet_file, "The packet to run on");
    CLI::Option* ctx_opt = run_cmd->add_option("--ctx", run_args.ctx_file, "The context (syscall programs: a buffer)");
    mem_opt->excludes(packet_opt)->excludes(ctx_opt);
    run_cmd->add_option("--repeat", run_args.repeat, "Run N times and print the mean ns per run")
        ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 40));
    run_cmd->add_option("--budget", run_args.budget,
                        "Instruction budget of checked runs (0 = no limit), charged ahead at function entries and loop "
                        "headers for the longest path to the next");
    run_cmd->add_flag("--json", run_args.json, "Print one JSON object");
    run_cmd->add_flag("--blind-constants", run_args.blind, "JIT engines: blind the immediates in the code");
    run_args.loader.add_to(run_cmd);
    run_cmd->add_option("--set", run_args.globals,
                        "For an object: set a global (.rodata configuration, .data, .bss) NAME=NUMBER before linking");

    CLI::App* inspect_cmd = app.add_subcommand("inspect", "Show an ELF object's programs, maps, relocations and BTF");
    inspect_cmd->add_option("OBJ", input, "An eBPF ELF object (clang -target bpf)")->required();
    LoaderArgs inspect_loader;
    inspect_loader.add_to(inspect_cmd);
    CLI::App* maps_cmd = app.add_subcommand("maps", "List the maps an ELF object declares");
    maps_cmd->add_option("OBJ", input, "An eBPF ELF object (clang -target bpf)")->required();

    std::string jit_program;
    CLI::App* jit_cmd =
        app.add_subcommand("jit-dump", "Print the native code the JIT makes, with the eBPF interleaved");
    jit_cmd->add_option("FILE", input, file_help + ", or an ELF object (.o)")->required();
    jit_cmd->add_option("--program", jit_program, "For an object: the program (default: the first)");
    jit::JitOptions jit_dump_options;
    jit_cmd->add_flag("--checked", jit_dump_options.checked, "The code of checked mode (run-time checks)");
    jit_cmd->add_flag("--blind-constants", jit_dump_options.blind_constants, "Blind the immediates");
    LoaderArgs jit_loader;
    jit_loader.add_to(jit_cmd);

    cli::DiffArgs diff_args;
    CLI::App* diff_cmd =
        app.add_subcommand("diff", "Run a program in the kernel (BPF_PROG_TEST_RUN) and on bpfvm, and compare");
    CLI::Option* diff_file = diff_cmd->add_option("FILE", diff_args.file, file_help + ", or an ELF object (.o)");
    CLI::Option* diff_corpus = diff_cmd->add_option(
        "--corpus", diff_args.corpus,
        "A folder: every object (with its <name>.*.pkt / .ctx inputs, or the default ones) and raw program in it");
    diff_file->excludes(diff_corpus);
    diff_cmd->add_option("--program", diff_args.program, "For an object: only this program (default: all)");
    diff_cmd->add_option("--packet", diff_args.packet_files,
                         "A packet to run on (repeatable; default: a set of packets)");
    diff_cmd->add_option("--ctx", diff_args.ctx_files,
                         "The context: __sk_buff / xdp_md fields for every packet, or one syscall context or raw "
                         "tracepoint argument array per --ctx");
    diff_cmd->add_option("--engine", diff_args.engine, "The bpfvm engines to compare: all, or one of them")
        ->check(CLI::IsMember({"all", "interp", "interp-checked", "jit", "jit-checked"}));
    diff_cmd->add_option("--repeat", diff_args.repeat, "Also time N runs on every side (ns per run)")
        ->check(CLI::Range(uint32_t{1}, uint32_t{1} << 24));
    diff_cmd->add_flag("--json", diff_args.json, "Print the results as one JSON object");

    CLI::App* conf_cmd = app.add_subcommand("conformance", "Run bpf_conformance test files");
    conf_cmd->add_option("PATH", paths, "Test files, or folders of .data files")->required();
    conf_cmd->add_option("--engine", engine, "interp-checked, interp, jit-checked, jit or all")
        ->check(CLI::IsMember({"interp", "interp-checked", "jit", "jit-checked", "all"}));

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::string what = e.what();
        std::fprintf(stderr, "bpfvm: %s (see --help)\n", what.c_str());
        return 2;
    }

    try {
        if (*asm_cmd) {
            return cmd_asm(input, output);
        }
        if (*disasm_cmd) {
            return cmd_disasm(input, syntax, program, disasm_loader.options());
        }
        if (*run_cmd) {
            return cmd_run(input, run_args);
        }
        if (*jit_cmd) {
            return cmd_jit_dump(input, jit_program, jit_loader.options(), jit_dump_options);
        }
        if (*inspect_cmd) {
            return cmd_inspect(input, false, inspect_loader.options());
        }
        if (*maps_cmd) {
            return cmd_inspect(input, true, {});
        }
        if (*conf_cmd) {
            return cmd_conformance(paths, engine);
        }
        if (*diff_cmd) {
            if (diff_args.file.empty() && diff_args.corpus.empty()) {
                fail("diff: give FILE or --corpus DIR");
            }
            return must(cli::cmd_diff(diff_args));
        }
    } catch (const UsageError& e) {
        std::fprintf(stderr, "bpfvm: %s\n", e.message.c_str());
        return 2;
    }
    return 2;
}
