#include "bpfvm/kernel/object.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/utsname.h>
#include <zlib.h>

#include <chrono>
#include <cstdarg>
#include <cstring>
#include <set>

#include "bpfvm/kernel/bpf.hpp"
#include "kernel_maps.hpp"

namespace bpfvm::kernel {

namespace {

// libbpf's messages go here (warnings and the verifier logs it prints on a failed load), not to
// stderr: they become part of the error or the verdict.
thread_local std::string t_libbpf_log;

int capture_libbpf(enum libbpf_print_level level, const char* format, va_list args) {
    if (level == LIBBPF_DEBUG) {
        return 0;
    }
    va_list again;
    va_copy(again, args);
    const int n = std::vsnprintf(nullptr, 0, format, args);  // (a verifier log is long)
    if (n > 0) {
        const std::size_t at = t_libbpf_log.size();
        t_libbpf_log.resize(at + static_cast<std::size_t>(n) + 1);
        std::vsnprintf(t_libbpf_log.data() + at, static_cast<std::size_t>(n) + 1, format, again);
        t_libbpf_log.resize(at + static_cast<std::size_t>(n));
    }
    va_end(again);
    return n;
}

void install_printer() {
    static const bool installed = [] {
        libbpf_set_print(capture_libbpf);
        return true;
    }();
    (void)installed;
}

// The verifier's summary ("processed 42 insns ...") from a BPF_LOG_STATS log.
std::string stats_line(const std::string& log) {
    const std::size_t at = log.rfind("processed ");
    if (at == std::string::npos) {
        return "";
    }
    const std::size_t end = log.find('\n', at);
    return log.substr(at, end == std::string::npos ? std::string::npos : end - at);
}

struct ObjectCloser {
    void operator()(bpf_object* o) const { bpf_object__close(o); }
};
using ObjectPtr = std::unique_ptr<bpf_object, ObjectCloser>;

Expected<ObjectPtr> open_object(const std::vector<uint8_t>& bytes, const std::string& name) {
    install_printer();
    t_libbpf_log.clear();
    // A short object name keeps libbpf's global data maps ("k.rodata") within the kernel's 15
    // characters, so their names say which section they hold.
    LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = "k");
    bpf_object* obj = bpf_object__open_mem(bytes.data(), bytes.size(), &opts);
    if (obj == nullptr) {
        return make_error(name, "libbpf cannot open the object: " + verifier_message(t_libbpf_log, 2));
    }
    return ObjectPtr(obj);
}

vm::ProgramType type_of(const bpf_program* p) {
    return static_cast<vm::ProgramType>(bpf_program__type(p));
}

}  // namespace

std::string loader_map_name(const std::string& libbpf_name) {
    const std::size_t dot = libbpf_name.find('.');
    return dot != std::string::npos && dot > 0 ? libbpf_name.substr(dot) : libbpf_name;
}

const std::map<std::string, uint64_t>& running_kconfig() {
    static const std::map<std::string, uint64_t> values = [] {
        std::map<std::string, uint64_t> v;
        utsname u{};
        if (uname(&u) == 0) {
            unsigned a = 0, b = 0, c = 0;
            if (std::sscanf(u.release, "%u.%u.%u", &a, &b, &c) >= 2) {
                v["LINUX_KERNEL_VERSION"] = (a << 16) + (b << 8) + std::min(c, 255u);
            }
        }
        gzFile f = gzopen("/proc/config.gz", "rb");
        if (f != nullptr) {
            char line[1024];
            while (gzgets(f, line, sizeof line) != nullptr) {
                if (std::strncmp(line, "CONFIG_", 7) != 0) {
                    continue;
                }
                char* eq = std::strchr(line, '=');
                if (eq == nullptr) {
                    continue;
                }
                *eq = 0;
                std::string value = eq + 1;
                while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) {
                    value.pop_back();
                }
                if (value == "y") {
                    v[line] = 1;
                } else if (value == "m") {
                    v[line] = 2;
                } else if (!value.empty() && value[0] != '"') {
                    char* end = nullptr;
                    const unsigned long long n = std::strtoull(value.c_str(), &end, 0);
                    if (end != nullptr && *end == 0) {
                        v[line] = n;
                    }
                }
            }
            gzclose(f);
        }
        return v;
    }();
    return values;
}

Expected<std::unique_ptr<KernelObject>> KernelObject::open(std::span<const uint8_t> bytes, const std::string& name) {
    std::unique_ptr<KernelObject> k(new KernelObject());
    k->bytes_.assign(bytes.begin(), bytes.end());
    k->name_ = name;
    Expected<ObjectPtr> obj = open_object(k->bytes_, name);
    if (!obj) {
        return obj.error();
    }
    bpf_program* p;
    bpf_object__for_each_program(p, obj->get()) {
        k->verdicts_.push_back({bpf_program__name(p), bpf_program__section_name(p), type_of(p), false, ""});
    }
    if (!availability().ok) {
        for (Verdict& v : k->verdicts_) {
            v.log = availability().reason;
        }
        return k;
    }
    // All together, as a deployment loads them. A program the verifier refuses stops the load:
    // record it (libbpf prints the verifier's log then), leave it out, and load the rest again.
    // A failure that names no program (a map, a prog_array slot) leaves the undecided programs
    // to be tried each alone.
    std::set<std::string> refused;
    bool loaded = false;
    for (std::size_t attempt = 0; attempt <= k->verdicts_.size() && !loaded; ++attempt) {
        Expected<ObjectPtr> all = open_object(k->bytes_, name);
        if (!all) {
            break;
        }
        bpf_object__for_each_program(p, all->get()) {
            (void)bpf_program__set_autoload(p, refused.count(bpf_program__name(p)) == 0);
        }
        t_libbpf_log.clear();
        if (bpf_object__load(all->get()) == 0) {
            loaded = true;
            break;
        }
        std::string failed;
        const std::size_t at = t_libbpf_log.find("': failed to load");
        if (at != std::string::npos) {
            const std::size_t open_quote = t_libbpf_log.rfind("prog '", at);
            if (open_quote != std::string::npos) {
                failed = t_libbpf_log.substr(open_quote + 6, at - open_quote - 6);
            }
        }
        Verdict* v = nullptr;
        for (Verdict& x : k->verdicts_) {
            v = x.program == failed ? &x : v;
        }
        if (v == nullptr || refused.count(failed) != 0) {
            break;
        }
        refused.insert(failed);
        v->log = verifier_message(t_libbpf_log, 3);
    }
    if (loaded) {
        // Once more with each program's statistics (BPF_LOG_STATS).
        Expected<ObjectPtr> all = open_object(k->bytes_, name);
        std::vector<std::vector<char>> logs;
        if (all) {
            bpf_object__for_each_program(p, all->get()) {
                logs.emplace_back(4096, 0);
                const bool on = refused.count(bpf_program__name(p)) == 0;
                (void)bpf_program__set_autoload(p, on);
                (void)bpf_program__set_log_buf(p, logs.back().data(), logs.back().size());
                (void)bpf_program__set_log_level(p, 4);
            }
            (void)bpf_object__load(all->get());
        }
        for (std::size_t i = 0; i < k->verdicts_.size(); ++i) {
            Verdict& v = k->verdicts_[i];
            if (refused.count(v.program) != 0) {
                continue;
            }
            v.accepted = true;
            const std::string stats = i < logs.size() ? stats_line(std::string(logs[i].data())) : std::string();
            v.log = "accepted" + (stats.empty() ? std::string() : ": " + stats);
        }
        return k;
    }
    for (Verdict& v : k->verdicts_) {
        if (refused.count(v.program) != 0) {
            continue;
        }
        Expected<ObjectPtr> one = open_object(k->bytes_, name);
        if (!one) {
            v.log = one.error().message();
            continue;
        }
        bpf_object__for_each_program(p, one->get()) {
            (void)bpf_program__set_autoload(p, v.program == bpf_program__name(p));
        }
        t_libbpf_log.clear();
        const int err = bpf_object__load(one->get());
        v.accepted = err == 0;
        v.log = err == 0 ? "accepted" : verifier_message(t_libbpf_log, 3);
    }
    return k;
}

KernelObject::~KernelObject() = default;

const Verdict* KernelObject::verdict(const std::string& program) const {
    for (const Verdict& v : verdicts_) {
        if (v.program == program) {
            return &v;
        }
    }
    return nullptr;
}

Outcome KernelObject::run(const std::string& program, const helpers::TestInput& input, uint32_t time_repeat) const {
    Outcome out;
    const Verdict* v = verdict(program);
    if (!availability().ok) {
        out.status = Outcome::Status::Unavailable;
        out.reason = availability().reason;
        return out;
    }
    if (v == nullptr || !v->accepted) {
        out.status = Outcome::Status::ProgramRefused;
        out.reason = v == nullptr ? "no program '" + program + "'" : v->log;
        out.verifier = "refused: " + out.reason;
        return out;
    }
    out.verifier = v->log;
    Expected<ObjectPtr> obj = open_object(bytes_, name_);
    if (!obj) {
        out.status = Outcome::Status::ProgramRefused;
        out.reason = obj.error().message();
        return out;
    }
    bpf_program* p;
    bpf_object__for_each_program(p, obj->get()) {
        const Verdict* pv = verdict(bpf_program__name(p));
        (void)bpf_program__set_autoload(p, pv != nullptr && pv->accepted);
    }
    t_libbpf_log.clear();
    if (bpf_object__load(obj->get()) != 0) {
        out.status = Outcome::Status::ProgramRefused;
        out.reason = "the object's accepted programs did not load together: " + verifier_message(t_libbpf_log, 2);
        return out;
    }
    bpf_program* prog = bpf_object__find_program_by_name(obj->get(), program.c_str());
    const vm::ProgramType type = type_of(prog);
    std::vector<KernelMap> maps;
    bpf_map* m;
    bpf_object__for_each_map(m, obj->get()) {
        maps.push_back({loader_map_name(bpf_map__name(m)), static_cast<vm::MapType>(bpf_map__type(m)),
                        bpf_map__key_size(m), bpf_map__value_size(m), bpf_map__fd(m)});
    }
    MapWatch watch(maps);
    const bool packets = type != vm::ProgramType::Syscall && type != vm::ProgramType::RawTracepoint;
    TestRunInput t;
    t.data = input.data;
    t.ctx = input.ctx;
    t.repeat = packets ? 1 : 0;
    t.data_out_size = packets ? static_cast<uint32_t>(input.data.size() + 65536) : 0;
    const bool skb =
        type == vm::ProgramType::SchedCls || type == vm::ProgramType::SchedAct || type == vm::ProgramType::SocketFilter;
    t.ctx_out_size = skb ? 192 : type == vm::ProgramType::Xdp && !input.ctx.empty() ? 24 : 0;
    const int fd = bpf_program__fd(prog);
    auto result = on_cpu0([&] { return test_run_raw(fd, t); });
    if (auto* e = std::get_if<TestRunError>(&result)) {
        out.status = Outcome::Status::InputRefused;
        out.err = e->err;
        out.reason = e->message;
        return out;
    }
    TestRun& r = std::get<TestRun>(result);
    out.retval = r.retval;
    out.has_data = packets;
    out.data_out = std::move(r.data_out);
    out.has_ctx = skb || type == vm::ProgramType::Syscall || (type == vm::ProgramType::Xdp && !input.ctx.empty());
    out.ctx_out = type == vm::ProgramType::Syscall ? std::move(r.ctx_in_after) : std::move(r.ctx_out);
    out.maps = watch.dump();
    if (time_repeat > 0) {
        if (packets) {
            t.repeat = time_repeat;
            t.data_out_size = 0;
            t.ctx_out_size = 0;
            auto timed = on_cpu0([&] { return test_run_raw(fd, t); });
            if (auto* tr = std::get_if<TestRun>(&timed)) {
                out.ns_per_run = tr->duration_ns;
            }
        } else {
            double total = 0;
            for (uint32_t i = 0; i < time_repeat; ++i) {
                auto timed = on_cpu0([&] { return test_run_raw(fd, t); });
                if (auto* tr = std::get_if<TestRun>(&timed)) {
                    total += tr->duration_ns;
                }
            }
            out.ns_per_run = total / time_repeat;
        }
    }
    return out;
}

}  // namespace bpfvm::kernel
