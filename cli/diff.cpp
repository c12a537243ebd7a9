#include "diff.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "bpfvm/kernel/bpf.hpp"
#include "bpfvm/kernel/diff.hpp"
#include "bpfvm/kernel/object.hpp"
#include "inputs.hpp"

namespace bpfvm::cli {

namespace {

using kernel::DiffResult;
using kernel::Outcome;

std::string json_string(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else {
            out += c;
        }
    }
    return out + "\"";
}

uint32_t fnv(const std::vector<uint8_t>& b) {
    uint32_t h = 2166136261u;
    for (uint8_t x : b) {
        h = (h ^ x) * 16777619u;
    }
    return h;
}

std::string pad(std::string s, std::size_t w) {
    if (s.size() < w) {
        s.append(w - s.size(), ' ');
    }
    return s;
}

// One subject's cell for an aspect of the outcome, and whether it differs from the kernel's.
std::string cell(const std::string& aspect, const Outcome& o) {
    char buf[64];
    if (aspect == "status") {
        return std::string(kernel::to_string(o.status));
    }
    if (o.status != Outcome::Status::Ran) {
        return "-";
    }
    if (aspect == "retval") {
        std::snprintf(buf, sizeof buf, "0x%llx",
                      static_cast<unsigned long long>(o.retval_is_64_bits ? o.retval : o.retval & 0xffffffffu));
        return buf;
    }
    if (aspect == "packet") {
        if (!o.has_data) {
            return "-";
        }
        std::snprintf(buf, sizeof buf, "%zu B #%08x", o.data_out.size(), fnv(o.data_out));
        return buf;
    }
    if (aspect == "ctx") {
        if (!o.has_ctx) {
            return "-";
        }
        std::snprintf(buf, sizeof buf, "%zu B #%08x", o.ctx_out.size(), fnv(o.ctx_out));
        return buf;
    }
    if (aspect == "maps") {
        std::size_t entries = 0;
        for (const kernel::MapDump& m : o.maps) {
            entries += m.entries.size() + m.records.size();
        }
        std::snprintf(buf, sizeof buf, "%zu maps, %zu items", o.maps.size(), entries);
        return buf;
    }
    if (aspect == "ns/run") {
        if (o.ns_per_run <= 0) {
            return "-";
        }
        std::snprintf(buf, sizeof buf, "%.1f", o.ns_per_run);
        return buf;
    }
    return "?";
}

bool aspect_differs(const DiffResult& d, const std::string& subject, const std::string& aspect) {
    for (const auto& [s, diff] : d.differences) {
        if (s != subject) {
            continue;
        }
        const std::string& w = diff.what;
        if ((aspect == "status" && (w == "status" || w == "errno")) ||
            (aspect == "retval" && w.rfind("retval", 0) == 0) || (aspect == "packet" && w.rfind("packet", 0) == 0) ||
            (aspect == "ctx" && w.rfind("ctx", 0) == 0) || (aspect == "maps" && w.rfind("map", 0) == 0)) {
            return true;
        }
    }
    return false;
}

const char* verdict_word(DiffResult::Verdict v) {
    switch (v) {
        case DiffResult::Verdict::Agree:
            return "agree";
        case DiffResult::Verdict::Differ:
            return "DIFFER";
        case DiffResult::Verdict::Refused:
            return "refused by the kernel";
    }
    return "?";
}

void print_table(const std::string& title, const DiffResult& d) {
    const Outcome& k = d.outcomes.front().second;
    std::printf("%s on %s: %s\n", title.c_str(), d.input.name.c_str(), verdict_word(d.verdict));
    if (d.verdict == DiffResult::Verdict::Refused) {
        std::printf("  kernel: %s\n", k.reason.c_str());
        return;
    }
    constexpr std::size_t kWidth = 22;
    std::string head = pad("", 8);
    for (const auto& [name, o] : d.outcomes) {
        head += pad(name, kWidth);
    }
    std::printf("  %s\n", head.c_str());
    for (const char* aspect : {"status", "retval", "packet", "ctx", "maps", "ns/run"}) {
        std::string line = pad(aspect, 8);
        const std::string kc = cell(aspect, k);
        for (std::size_t i = 0; i < d.outcomes.size(); ++i) {
            const auto& [name, o] = d.outcomes[i];
            std::string c = cell(aspect, o);
            if (i > 0 && std::string(aspect) != "ns/run") {
                c = aspect_differs(d, name, aspect) ? c + " *" : (c == kc ? "=" : c);
            }
            line += pad(c, kWidth);
        }
        std::printf("  %s\n", line.c_str());
    }
    if (k.status != Outcome::Status::Ran && !k.reason.empty()) {
        std::printf("  kernel: %s\n", k.reason.c_str());
    }
    for (const auto& [name, o] : d.outcomes) {
        if (name != "kernel" && o.status != Outcome::Status::Ran && !o.reason.empty()) {
            std::printf("  %s: %s\n", name.c_str(), o.reason.c_str());
        }
    }
    for (const auto& [subject, diff] : d.differences) {
        std::printf("  * %s: %s: kernel %s, %s %s\n", subject.c_str(), diff.what.c_str(), diff.kernel.c_str(),
                    subject.c_str(), diff.other.c_str());
    }
}

std::string outcome_json(const Outcome& o) {
    std::string s = "{\"status\": " + json_string(std::string(kernel::to_string(o.status)));
    if (!o.reason.empty()) {
        s += ", \"reason\": " + json_string(o.reason);
    }
    if (o.status == Outcome::Status::InputRefused) {
        s += ", \"errno\": " + std::to_string(o.err);
    }
    if (o.status == Outcome::Status::Ran) {
        s += ", \"retval\": " + std::to_string(o.retval_is_64_bits ? o.retval : o.retval & 0xffffffffu);
        s += std::string(", \"retval_bits\": ") + (o.retval_is_64_bits ? "64" : "32");
        if (o.has_data) {
            s += ", \"packet_out\": " + json_string(kernel::hex(o.data_out));
        }
        if (o.has_ctx) {
            s += ", \"ctx_out\": " + json_string(kernel::hex(o.ctx_out));
        }
        s += ", \"maps\": {";
        for (std::size_t i = 0; i < o.maps.size(); ++i) {
            const kernel::MapDump& m = o.maps[i];
            s += (i ? ", " : "") + json_string(m.name) + ": {\"entries\": {";
            for (std::size_t j = 0; j < m.entries.size(); ++j) {
                s += (j ? ", " : "") + json_string(kernel::hex(m.entries[j].first)) + ": " +
                     json_string(kernel::hex(m.entries[j].second));
            }
            s += "}, \"records\": [";
            for (std::size_t j = 0; j < m.records.size(); ++j) {
                s += (j ? ", " : "") + json_string(kernel::hex(m.records[j]));
            }
            s += "]";
            if (!m.partial.empty()) {
                s += ", \"partial\": " + json_string(m.partial);
            }
            s += "}";
        }
        s += "}";
    }
    if (o.ns_per_run > 0) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.2f", o.ns_per_run);
        s += std::string(", \"ns_per_run\": ") + buf;
    }
    return s + "}";
}

std::string result_json(const std::string& file, const std::string& program, const std::string& type,
                        const std::string& verdict_log, const DiffResult& d) {
    std::string s = "{\"file\": " + json_string(file) + ", \"program\": " + json_string(program) +
                    ", \"type\": " + json_string(type) + ", \"input\": " + json_string(d.input.name) +
                    ", \"verdict\": " + json_string(verdict_word(d.verdict)) +
                    ", \"kernel_verifier\": " + json_string(verdict_log) + ", \"outcomes\": {";
    for (std::size_t i = 0; i < d.outcomes.size(); ++i) {
        s += (i ? ", " : "") + json_string(d.outcomes[i].first) + ": " + outcome_json(d.outcomes[i].second);
    }
    s += "}, \"differences\": [";
    for (std::size_t i = 0; i < d.differences.size(); ++i) {
        const auto& [subject, diff] = d.differences[i];
        s += std::string(i ? ", " : "") + "{\"engine\": " + json_string(subject) +
             ", \"what\": " + json_string(diff.what) + ", \"kernel\": " + json_string(diff.kernel) +
             ", \"engine_value\": " + json_string(diff.other) + "}";
    }
    return s + "]}";
}

struct Totals {
    unsigned agree = 0, differ = 0, refused = 0;
    unsigned unreadable = 0;  // corpus files bpfvm cannot read as a program or object
    std::vector<std::string> json;
};

std::vector<jit::Engine> engines_for(const std::string& engine) {
    if (engine == "all") {
        return jit::available_engines();
    }
    return {*jit::engine_from_string(engine)};
}

// Reads the --packet / --ctx files into inputs for a program of `type`: each packet one input
// (with the context, if one, for all); a context alone is one input each.
Expected<std::vector<kernel::DiffInput>> inputs_for(vm::ProgramType type, const DiffArgs& a,
                                                    const std::vector<uint8_t>* conformance_mem) {
    std::vector<kernel::DiffInput> out;
    const bool packets = type == vm::ProgramType::Xdp || type == vm::ProgramType::SchedCls ||
                         type == vm::ProgramType::SchedAct || type == vm::ProgramType::SocketFilter;
    const bool context_only = type == vm::ProgramType::Syscall || type == vm::ProgramType::RawTracepoint;
    std::vector<uint8_t> shared_ctx;
    if (packets && a.ctx_files.size() > 1) {
        return make_error("--ctx", "a packet program takes one --ctx (it sets __sk_buff or xdp_md for every packet)");
    }
    if (packets && a.ctx_files.size() == 1) {
        Expected<std::vector<uint8_t>> c = read_bytes(a.ctx_files[0]);
        if (!c) {
            return c.error();
        }
        shared_ctx = std::move(*c);
    }
    for (const std::string& f : a.packet_files) {
        if (context_only) {
            return make_error(f, "a " + std::string(vm::to_string(type)) + " program takes --ctx, not --packet");
        }
        Expected<std::vector<uint8_t>> b = read_bytes(f);
        if (!b) {
            return b.error();
        }
        out.push_back({std::filesystem::path(f).filename().string(), {std::move(*b), shared_ctx, 1}});
    }
    if (!packets) {
        for (const std::string& f : a.ctx_files) {
            Expected<std::vector<uint8_t>> b = read_bytes(f);
            if (!b) {
                return b.error();
            }
            helpers::TestInput in;
            if (context_only) {
                in.ctx = std::move(*b);
                in.repeat = 0;
            } else {
                in.data = std::move(*b);  // plain memory: the buffer
            }
            out.push_back({std::filesystem::path(f).filename().string(), std::move(in)});
        }
    }
    if (out.empty() && conformance_mem != nullptr) {
        out.push_back({"mem", {*conformance_mem, {}, 1}});
    }
    if (out.empty()) {
        out = kernel::default_inputs(type);
        if (!shared_ctx.empty()) {
            for (auto& in : out) {
                in.input.ctx = shared_ctx;
            }
        }
    }
    return out;
}

void report(const std::string& file, const std::string& program, vm::ProgramType type, const std::string& verdict,
            const DiffResult& d, const DiffArgs& a, Totals& t) {
    (d.verdict == DiffResult::Verdict::Agree    ? t.agree
     : d.verdict == DiffResult::Verdict::Differ ? t.differ
                                                : t.refused)++;
    const std::string base = std::filesystem::path(file).filename().string();
    const std::string title = type == vm::ProgramType::Unspecified
                                  ? base + " (raw program)"
                                  : base + " " + program + " (" + std::string(vm::to_string(type)) + ")";
    if (a.json) {
        t.json.push_back(result_json(file, program, std::string(vm::to_string(type)), verdict, d));
    } else if (a.corpus.empty()) {
        print_table(title, d);
    } else {
        std::printf("%-60s %-16s %s\n", title.c_str(), d.input.name.c_str(), verdict_word(d.verdict));
        for (const auto& [subject, diff] : d.differences) {
            std::printf("  * %s: %s: kernel %s, %s %s\n", subject.c_str(), diff.what.c_str(), diff.kernel.c_str(),
                        subject.c_str(), diff.other.c_str());
        }
    }
}

// Inputs next to an object in a corpus: <stem>.pkt, <stem>.<anything>.pkt (packets) and .ctx.
DiffArgs corpus_inputs(const std::filesystem::path& object, const DiffArgs& a) {
    DiffArgs per = a;
    per.packet_files.clear();
    per.ctx_files.clear();
    const std::string stem = object.stem().string();
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::directory_iterator(object.parent_path())) {
        files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
        const std::string name = f.filename().string();
        if (name.rfind(stem + ".", 0) != 0) {
            continue;
        }
        if (f.extension() == ".pkt") {
            per.packet_files.push_back(f.string());
        } else if (f.extension() == ".ctx") {
            per.ctx_files.push_back(f.string());
        }
    }
    return per;
}

Expected<Unit> diff_file(const std::string& file, const DiffArgs& a, Totals& t) {
    Expected<std::vector<uint8_t>> bytes = read_bytes(file);
    if (!bytes) {
        return bytes.error();
    }
    const std::vector<jit::Engine> engines = engines_for(a.engine);
    if (is_elf(*bytes)) {
        auto whole = [&](const std::string& who, const std::string& why, bool refused) {
            DiffResult d;
            d.input.name = "(object)";
            Outcome o;
            o.status = Outcome::Status::ProgramRefused;
            o.reason = who + ": " + why;
            d.outcomes.emplace_back("kernel", o);
            if (!refused) {
                d.differences.emplace_back("bpfvm", kernel::Difference{"object", "loads", "refused: " + why});
            }
            d.verdict = refused ? DiffResult::Verdict::Refused : DiffResult::Verdict::Differ;
            report(file, "(object)", vm::ProgramType::Unspecified, why, d, a, t);
        };
        Expected<std::unique_ptr<kernel::KernelObject>> k = kernel::KernelObject::open(*bytes, file);
        if (!k) {
            whole("libbpf", k.error().message(), true);
            return Unit{};
        }
        std::shared_ptr<const kernel::KernelObject> ko = std::move(*k);
        Expected<loader::Object> obj = loader::load_object(*bytes, file, kernel::kernel_like_load_options());
        if (!obj) {
            // A difference unless the kernel refuses every program too.
            const bool any = std::any_of(ko->verdicts().begin(), ko->verdicts().end(),
                                         [](const kernel::Verdict& v) { return v.accepted; });
            whole("bpfvm's loader", obj.error().message(), !any);
            return Unit{};
        }
        bool found = false;
        for (const loader::ProgramInfo& p : obj->programs) {
            if (!a.program.empty() && p.name != a.program) {
                continue;
            }
            found = true;
            std::unique_ptr<kernel::Subject> ks = kernel::kernel_program(ko, *bytes, file, p.name);
            std::vector<std::unique_ptr<kernel::Subject>> owned;
            std::vector<const kernel::Subject*> others;
            for (jit::Engine e : engines) {
                Expected<std::unique_ptr<kernel::Subject>> s = kernel::bpfvm_program(*bytes, file, p.name, e);
                if (!s) {
                    return s.error();
                }
                others.push_back(s->get());
                owned.push_back(std::move(*s));
            }
            Expected<std::vector<kernel::DiffInput>> inputs = inputs_for(p.type, a, nullptr);
            if (!inputs) {
                return inputs.error();
            }
            for (const kernel::DiffInput& in : *inputs) {
                const DiffResult d = kernel::diff(*ks, others, in, a.repeat);
                report(file, p.name, p.type, d.outcomes.front().second.verifier, d, a, t);
            }
        }
        if (!found) {
            return make_error(file, "no program '" + a.program + "'");
        }
        return Unit{};
    }
    Expected<LoadedProgram> loaded = load_program(file);
    if (!loaded) {
        return loaded.error();
    }
    std::unique_ptr<kernel::Subject> ks = kernel::kernel_raw_program(loaded->program);
    std::vector<std::unique_ptr<kernel::Subject>> owned;
    std::vector<const kernel::Subject*> others;
    for (jit::Engine e : engines) {
        Expected<std::unique_ptr<kernel::Subject>> s = kernel::bpfvm_raw_program(loaded->program, e);
        if (!s) {
            return s.error();
        }
        others.push_back(s->get());
        owned.push_back(std::move(*s));
    }
    Expected<std::vector<kernel::DiffInput>> inputs = inputs_for(
        vm::ProgramType::Unspecified, a, std::filesystem::path(file).extension() == ".data" ? &loaded->mem : nullptr);
    if (!inputs) {
        return inputs.error();
    }
    for (const kernel::DiffInput& in : *inputs) {
        const DiffResult d = kernel::diff(*ks, others, in, a.repeat);
        report(file, "(program)", vm::ProgramType::Unspecified, d.outcomes.front().second.verifier, d, a, t);
    }
    return Unit{};
}

}  // namespace

Expected<int> cmd_diff(const DiffArgs& a) {
    if (!kernel::availability().ok) {
        return make_error("diff", kernel::availability().reason);
    }
    Totals t;
    if (!a.corpus.empty()) {
        std::vector<std::filesystem::path> files;
        std::error_code ec;
        for (const auto& e : std::filesystem::directory_iterator(a.corpus, ec)) {
            const std::string ext = e.path().extension().string();
            if (ext == ".o" || ext == ".data" || ext == ".s" || ext == ".asm" || ext == ".bin") {
                files.push_back(e.path());
            }
        }
        if (ec) {
            return make_error(a.corpus, "cannot list the folder: " + ec.message());
        }
        std::sort(files.begin(), files.end());
        for (const auto& f : files) {
            const DiffArgs per = f.extension() == ".o" ? corpus_inputs(f, a) : a;
            if (Expected<Unit> r = diff_file(f.string(), per, t); !r) {
                // (bpfvm cannot read the file at all: counted apart, and the exit status is 1)
                if (a.json) {
                    t.json.push_back("{\"file\": " + json_string(f.string()) +
                                     ", \"error\": " + json_string(r.error().message()) + "}");
                } else {
                    std::printf("%-60s error: %s\n", f.filename().string().c_str(), r.error().message().c_str());
                }
                ++t.unreadable;
            }
        }
    } else if (Expected<Unit> r = diff_file(a.file, a, t); !r) {
        return r.error();
    }
    if (a.json) {
        std::printf("{\"results\": [");
        for (std::size_t i = 0; i < t.json.size(); ++i) {
            std::printf("%s%s", i ? ",\n " : "", t.json[i].c_str());
        }
        std::printf("],\n \"agree\": %u, \"differ\": %u, \"refused_by_kernel\": %u, \"unreadable\": %u}\n", t.agree,
                    t.differ, t.refused, t.unreadable);
    } else {
        std::printf("%u agree, %u differ, %u refused by the kernel", t.agree, t.differ, t.refused);
        if (t.unreadable != 0) {
            std::printf(", %u unreadable", t.unreadable);
        }
        std::printf("\n");
    }
    return t.differ == 0 && t.unreadable == 0 ? 0 : 1;
}

}  // namespace bpfvm::cli
