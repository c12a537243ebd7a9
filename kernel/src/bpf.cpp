#include "bpfvm/kernel/bpf.hpp"

#include <linux/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

namespace bpfvm::kernel {

namespace {

long sys_bpf(int cmd, union bpf_attr* attr) {
    return syscall(__NR_bpf, cmd, attr, sizeof *attr);
}

std::string errno_text(int err) {
    return std::string(std::strerror(err)) + " (errno " + std::to_string(err) + ")";
}

uint64_t ptr(const void* p) {
    return reinterpret_cast<uintptr_t>(p);
}

}  // namespace

std::string verifier_message(const std::string& log, std::size_t count) {
    std::string body = log;
    const std::string begin_mark = "-- BEGIN PROG LOAD LOG --";
    const std::size_t begin = body.find(begin_mark);
    const std::size_t end = body.find("-- END PROG LOAD LOG --");
    if (begin != std::string::npos && end != std::string::npos && end > begin) {
        body = body.substr(begin + begin_mark.size(), end - begin - begin_mark.size());
    }
    std::vector<std::string> lines;
    std::size_t start = 0;
    while (start < body.size()) {
        std::size_t e = body.find('\n', start);
        e = e == std::string::npos ? body.size() : e;
        std::string line = body.substr(start, e - start);
        if (line.rfind("libbpf: ", 0) == 0) {
            line = line.substr(8);
        }
        // (the verifier's state dumps and statistics after its message say less than it)
        const bool noise = line.rfind("cur state:", 0) == 0 || line.rfind("old state:", 0) == 0 ||
                           line.rfind("verification time", 0) == 0 || line.rfind("stack depth", 0) == 0 ||
                           line.rfind("processed ", 0) == 0;
        if (!line.empty() && !noise) {
            lines.push_back(line);
        }
        start = e + 1;
    }
    std::string out;
    for (std::size_t i = lines.size() > count ? lines.size() - count : 0; i < lines.size(); ++i) {
        out += (out.empty() ? "" : "; ") + lines[i];
    }
    return out;
}

Fd::~Fd() {
    if (fd_ >= 0) {
        close(fd_);
    }
}

Fd& Fd::operator=(Fd&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) {
            close(fd_);
        }
        fd_ = other.fd_;
        other.fd_ = -1;
    }
    return *this;
}

const Availability& availability() {
    static const Availability probed = [] {
        const vm::RawInsn prog[] = {{0xb7, 0, 0, 0, 0}, {0x95, 0, 0, 0, 0}};
        Expected<Loaded> loaded = load_program(vm::ProgramType::SocketFilter, prog);
        if (loaded) {
            return Availability{true, ""};
        }
        return Availability{false, "bpf() is not available here: " + loaded.error().message() +
                                       (geteuid() != 0 ? " (not running as root)" : "")};
    }();
    return probed;
}

unsigned possible_cpus() {
    static const unsigned count = [] {
        // "0-3" or "0,2-5": the highest CPU number plus one.
        std::FILE* f = std::fopen("/sys/devices/system/cpu/possible", "r");
        unsigned highest = 0;
        if (f != nullptr) {
            char buf[256] = {};
            const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
            std::fclose(f);
            buf[n] = 0;
            unsigned value = 0;
            bool digits = false;
            for (const char* p = buf; *p != 0; ++p) {
                if (*p >= '0' && *p <= '9') {
                    value = value * 10 + static_cast<unsigned>(*p - '0');
                    digits = true;
                } else {
                    if (digits) {
                        highest = std::max(highest, value);
                    }
                    value = 0;
                    digits = false;
                }
            }
            if (digits) {
                highest = std::max(highest, value);
            }
        }
        return highest + 1;
    }();
    return count;
}

Expected<Fd> create_map(const MapDefinition& def) {
    union bpf_attr attr;
    std::memset(&attr, 0, sizeof attr);
    attr.map_type = static_cast<uint32_t>(def.type);
    attr.key_size = def.key_size;
    attr.value_size = def.value_size;
    attr.max_entries = def.max_entries;
    attr.map_flags = def.flags;
    std::strncpy(attr.map_name, def.name.c_str(), sizeof attr.map_name - 1);
    const long fd = sys_bpf(BPF_MAP_CREATE, &attr);
    if (fd < 0) {
        return make_error("kernel map '" + def.name + "'", "BPF_MAP_CREATE failed: " + errno_text(errno));
    }
    return Fd(static_cast<int>(fd));
}

Expected<Unit> update_map(int map_fd, std::span<const uint8_t> key, std::span<const uint8_t> value) {
    union bpf_attr attr;
    std::memset(&attr, 0, sizeof attr);
    attr.map_fd = static_cast<uint32_t>(map_fd);
    attr.key = ptr(key.data());
    attr.value = ptr(value.data());
    attr.flags = BPF_ANY;
    if (sys_bpf(BPF_MAP_UPDATE_ELEM, &attr) != 0) {
        return make_error("kernel map", "BPF_MAP_UPDATE_ELEM failed: " + errno_text(errno));
    }
    return Unit{};
}

Expected<Unit> update_map(const Fd& map, std::span<const uint8_t> key, std::span<const uint8_t> value) {
    return update_map(map.get(), key, value);
}

Expected<std::vector<uint8_t>> lookup_map(int map_fd, std::span<const uint8_t> key, uint32_t value_size) {
    std::vector<uint8_t> value(value_size);
    union bpf_attr attr;
    std::memset(&attr, 0, sizeof attr);
    attr.map_fd = static_cast<uint32_t>(map_fd);
    attr.key = ptr(key.data());
    attr.value = ptr(value.data());
    if (sys_bpf(BPF_MAP_LOOKUP_ELEM, &attr) != 0) {
        return make_error("kernel map", "BPF_MAP_LOOKUP_ELEM failed: " + errno_text(errno));
    }
    return value;
}

Expected<std::vector<uint8_t>> lookup_map(const Fd& map, std::span<const uint8_t> key, uint32_t value_size) {
    return lookup_map(map.get(), key, value_size);
}

Expected<std::optional<std::vector<uint8_t>>> next_key(int map_fd, std::span<const uint8_t> key, uint32_t key_size) {
    std::vector<uint8_t> next(key_size);
    union bpf_attr attr;
    std::memset(&attr, 0, sizeof attr);
    attr.map_fd = static_cast<uint32_t>(map_fd);
    attr.key = key.empty() ? 0 : ptr(key.data());
    attr.next_key = ptr(next.data());
    if (sys_bpf(BPF_MAP_GET_NEXT_KEY, &attr) != 0) {
        if (errno == ENOENT) {
            return std::optional<std::vector<uint8_t>>{};
        }
        return make_error("kernel map", "BPF_MAP_GET_NEXT_KEY failed: " + errno_text(errno));
    }
    return std::optional<std::vector<uint8_t>>{std::move(next)};
}

Expected<Unit> freeze_map(const Fd& map) {
    union bpf_attr attr;
    std::memset(&attr, 0, sizeof attr);
    attr.map_fd = static_cast<uint32_t>(map.get());
    if (sys_bpf(BPF_MAP_FREEZE, &attr) != 0) {
        return make_error("kernel map", "BPF_MAP_FREEZE failed: " + errno_text(errno));
    }
    return Unit{};
}

Expected<Loaded> load_program(vm::ProgramType type, std::span<const vm::RawInsn> insns, const LoadOptions& options) {
    std::vector<uint64_t> slots;
    slots.reserve(insns.size());
    for (const vm::RawInsn& i : insns) {
        slots.push_back(vm::to_u64(i));
    }
    auto attempt = [&](uint32_t log_level, std::string& log, bool verdict) {
        log.assign(log_level != 0 ? std::size_t{1} << 20 : 1, '\0');
        union bpf_attr attr;
        std::memset(&attr, 0, sizeof attr);
        attr.prog_type = static_cast<uint32_t>(type);
        attr.insns = ptr(slots.data());
        attr.insn_cnt = static_cast<uint32_t>(slots.size());
        attr.license = ptr(options.license.c_str());
        attr.prog_flags = options.prog_flags;
        attr.expected_attach_type = options.expected_attach;
        if (log_level != 0) {
            attr.log_buf = ptr(log.data());
            attr.log_size = static_cast<uint32_t>(log.size());
            attr.log_level = log_level;
        }
        long fd = sys_bpf(BPF_PROG_LOAD, &attr);
        if (fd < 0 && errno == ENOSPC && log_level != 0 && verdict) {
            // The log did not fit: load again without it (the verdict is what matters). (The
            // kernel keeps a log's end when it overflows: an explanation is still there.)
            attr.log_buf = 0;
            attr.log_size = 0;
            attr.log_level = 0;
            fd = sys_bpf(BPF_PROG_LOAD, &attr);
        }
        log.resize(std::strlen(log.c_str()));
        return fd;
    };
    // A full log (level 1) costs the verifier a line per instruction it walks, up to a million:
    // the program is loaded with statistics only, and again with the full log only to say why
    // it was refused.
    constexpr uint32_t kLogStats = 4;
    std::string log;
    long fd = attempt(options.log_level == 0 ? 0 : kLogStats, log, true);
    int err = errno;
    if (fd < 0 && options.log_level != 0 && options.log_level != kLogStats) {
        std::string full;
        const long again = attempt(options.log_level, full, false);
        if (again >= 0) {
            close(static_cast<int>(again));  // (accepted the second time: the first verdict stands)
        } else if (!full.empty()) {
            log = std::move(full);
        }
    }
    if (fd < 0) {
        const std::string tail = verifier_message(log, 3);
        return make_error("BPF_PROG_LOAD", "refused: " + errno_text(err) + (tail.empty() ? "" : ": " + tail));
    }
    return Loaded{Fd(static_cast<int>(fd)), std::move(log)};
}

std::variant<TestRun, TestRunError> test_run_raw(int program_fd, const TestRunInput& input) {
    TestRun out;
    out.data_out.resize(input.data_out_size);
    out.ctx_out.resize(input.ctx_out_size);
    union bpf_attr attr;
    std::memset(&attr, 0, sizeof attr);
    attr.test.prog_fd = static_cast<uint32_t>(program_fd);
    if (!input.data.empty()) {
        attr.test.data_in = ptr(input.data.data());
        attr.test.data_size_in = static_cast<uint32_t>(input.data.size());
    }
    if (!out.data_out.empty()) {
        attr.test.data_out = ptr(out.data_out.data());
        attr.test.data_size_out = static_cast<uint32_t>(out.data_out.size());
    }
    out.ctx_in_after.assign(input.ctx.begin(), input.ctx.end());  // (the kernel may write it)
    if (!out.ctx_in_after.empty()) {
        attr.test.ctx_in = ptr(out.ctx_in_after.data());
        attr.test.ctx_size_in = static_cast<uint32_t>(out.ctx_in_after.size());
    }
    if (!out.ctx_out.empty()) {
        attr.test.ctx_out = ptr(out.ctx_out.data());
        attr.test.ctx_size_out = static_cast<uint32_t>(out.ctx_out.size());
    }
    attr.test.repeat = input.repeat;
    attr.test.flags = input.flags;
    attr.test.cpu = input.cpu;
    if (sys_bpf(BPF_PROG_TEST_RUN, &attr) != 0) {
        const int err = errno;
        return TestRunError{err, "BPF_PROG_TEST_RUN failed: " + errno_text(err)};
    }
    out.retval = attr.test.retval;
    out.duration_ns = attr.test.duration;
    out.data_out.resize(std::min<std::size_t>(out.data_out.size(), attr.test.data_size_out));
    out.ctx_out.resize(std::min<std::size_t>(out.ctx_out.size(), attr.test.ctx_size_out));
    return out;
}

Expected<TestRun> test_run(const Fd& program, const TestRunInput& input) {
    auto r = test_run_raw(program.get(), input);
    if (auto* e = std::get_if<TestRunError>(&r)) {
        return make_error("kernel", e->message);
    }
    return std::get<TestRun>(std::move(r));
}

}  // namespace bpfvm::kernel
