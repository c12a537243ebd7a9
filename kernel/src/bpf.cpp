#include "bpfvm/kernel/bpf.hpp"

#include <linux/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

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

// The last lines of a verifier log, joined by "; ": where it stopped and why.
std::string log_tail(const std::string& log, std::size_t count) {
    std::vector<std::string> lines;
    std::size_t start = 0;
    while (start < log.size()) {
        std::size_t end = log.find('\n', start);
        end = end == std::string::npos ? log.size() : end;
        if (end > start) {
            lines.push_back(log.substr(start, end - start));
        }
        start = end + 1;
    }
    std::string out;
    for (std::size_t i = lines.size() > count ? lines.size() - count : 0; i < lines.size(); ++i) {
        out += (out.empty() ? "" : "; ") + lines[i];
    }
    return out;
}

}  // namespace

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

Expected<Unit> update_map(const Fd& map, std::span<const uint8_t> key, std::span<const uint8_t> value) {
    union bpf_attr attr;
    std::memset(&attr, 0, sizeof attr);
    attr.map_fd = static_cast<uint32_t>(map.get());
    attr.key = ptr(key.data());
    attr.value = ptr(value.data());
    attr.flags = BPF_ANY;
    if (sys_bpf(BPF_MAP_UPDATE_ELEM, &attr) != 0) {
        return make_error("kernel map", "BPF_MAP_UPDATE_ELEM failed: " + errno_text(errno));
    }
    return Unit{};
}

Expected<std::vector<uint8_t>> lookup_map(const Fd& map, std::span<const uint8_t> key, uint32_t value_size) {
    std::vector<uint8_t> value(value_size);
    union bpf_attr attr;
    std::memset(&attr, 0, sizeof attr);
    attr.map_fd = static_cast<uint32_t>(map.get());
    attr.key = ptr(key.data());
    attr.value = ptr(value.data());
    if (sys_bpf(BPF_MAP_LOOKUP_ELEM, &attr) != 0) {
        return make_error("kernel map", "BPF_MAP_LOOKUP_ELEM failed: " + errno_text(errno));
    }
    return value;
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

Expected<Loaded> load_program(vm::ProgramType type, std::span<const vm::RawInsn> insns, const std::string& license) {
    std::vector<uint64_t> slots;
    slots.reserve(insns.size());
    for (const vm::RawInsn& i : insns) {
        slots.push_back(vm::to_u64(i));
    }
    std::string log(1 << 20, '\0');
    union bpf_attr attr;
    std::memset(&attr, 0, sizeof attr);
    attr.prog_type = static_cast<uint32_t>(type);
    attr.insns = ptr(slots.data());
    attr.insn_cnt = static_cast<uint32_t>(slots.size());
    attr.license = ptr(license.c_str());
    attr.log_buf = ptr(log.data());
    attr.log_size = static_cast<uint32_t>(log.size());
    attr.log_level = 1;
    long fd = sys_bpf(BPF_PROG_LOAD, &attr);
    if (fd < 0 && errno == ENOSPC) {
        // The log did not fit: load again without it (the verdict is what matters).
        attr.log_buf = 0;
        attr.log_size = 0;
        attr.log_level = 0;
        fd = sys_bpf(BPF_PROG_LOAD, &attr);
    }
    log.resize(std::strlen(log.c_str()));
    if (fd < 0) {
        const int err = errno;
        const std::string tail = log_tail(log, 2);
        return make_error("kernel", "BPF_PROG_LOAD refused: " + errno_text(err) + (tail.empty() ? "" : ": " + tail));
    }
    return Loaded{Fd(static_cast<int>(fd)), std::move(log)};
}

Expected<TestRun> test_run(const Fd& program, const TestRunInput& input) {
    TestRun out;
    out.data_out.resize(input.data_out_size != 0 ? input.data_out_size : input.data.size() + 256);
    out.ctx_out.resize(input.ctx_out_size);
    union bpf_attr attr;
    std::memset(&attr, 0, sizeof attr);
    attr.test.prog_fd = static_cast<uint32_t>(program.get());
    attr.test.data_in = ptr(input.data.data());
    attr.test.data_size_in = static_cast<uint32_t>(input.data.size());
    attr.test.data_out = ptr(out.data_out.data());
    attr.test.data_size_out = static_cast<uint32_t>(out.data_out.size());
    if (!input.ctx.empty()) {
        attr.test.ctx_in = ptr(input.ctx.data());
        attr.test.ctx_size_in = static_cast<uint32_t>(input.ctx.size());
    }
    if (!out.ctx_out.empty()) {
        attr.test.ctx_out = ptr(out.ctx_out.data());
        attr.test.ctx_size_out = static_cast<uint32_t>(out.ctx_out.size());
    }
    attr.test.repeat = input.repeat;
    if (sys_bpf(BPF_PROG_TEST_RUN, &attr) != 0) {
        return make_error("kernel", "BPF_PROG_TEST_RUN failed: " + errno_text(errno));
    }
    out.retval = attr.test.retval;
    out.duration_ns = attr.test.duration;
    out.data_out.resize(attr.test.data_size_out);
    out.ctx_out.resize(std::min<std::size_t>(out.ctx_out.size(), attr.test.ctx_size_out));
    return out;
}

}  // namespace bpfvm::kernel
