// The running kernel's bpf() (DESIGN.md, kernel/): the thin layer bpfvm's kernel oracle and the
// benchmarks' kernel column stand on. Raw syscalls: programs are loaded as bpfvm has them
// (instructions with map references already resolved to the kernel's map fds). Whole ELF objects
// go through libbpf instead (kernel/object.hpp).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "bpfvm/vm/expected.hpp"
#include "bpfvm/vm/program.hpp"
#include "bpfvm/vm/specs.hpp"

namespace bpfvm::kernel {

// Whether this process may use bpf(): loading a two-instruction socket filter works. When it
// does not, `reason` says why in one line (not root / no CAP_BPF, bpf() disabled, ...).
struct Availability {
    bool ok = false;
    std::string reason;
};
const Availability& availability();  // probed once

// CPUs the kernel's per-CPU maps have a slot for (/sys/devices/system/cpu/possible).
unsigned possible_cpus();

// A file descriptor, closed on destruction.
class Fd {
public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd();
    Fd(Fd&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
    Fd& operator=(Fd&& other) noexcept;
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    [[nodiscard]] int get() const { return fd_; }
    [[nodiscard]] bool valid() const { return fd_ >= 0; }

private:
    int fd_ = -1;
};

struct MapDefinition {
    vm::MapType type = vm::MapType::Array;
    uint32_t key_size = 4;
    uint32_t value_size = 0;
    uint32_t max_entries = 1;
    uint32_t flags = 0;
    std::string name;  // up to 15 characters reach the kernel
};

Expected<Fd> create_map(const MapDefinition& def);
Expected<Unit> update_map(const Fd& map, std::span<const uint8_t> key, std::span<const uint8_t> value);
Expected<Unit> update_map(int map_fd, std::span<const uint8_t> key, std::span<const uint8_t> value);
// A value of `value_size` bytes (all CPUs' for per-CPU maps: the caller sizes it).
Expected<std::vector<uint8_t>> lookup_map(const Fd& map, std::span<const uint8_t> key, uint32_t value_size);
Expected<std::vector<uint8_t>> lookup_map(int map_fd, std::span<const uint8_t> key, uint32_t value_size);
// The key after `key` (the first one for an empty span), or nothing at the end.
Expected<std::optional<std::vector<uint8_t>>> next_key(int map_fd, std::span<const uint8_t> key, uint32_t key_size);
// BPF_MAP_FREEZE: no more writes from user space. A frozen map created with BPF_F_RDONLY_PROG
// (0x80) is constant to the kernel's verifier: loads from it at known offsets give known values.
Expected<Unit> freeze_map(const Fd& map);

// The last `count` lines of a verifier log, joined by "; ": where it stopped and why. The
// state dumps and statistics the verifier prints after its message are left out, as are the
// "libbpf: " prefixes and the frame libbpf puts around a log it relays.
std::string verifier_message(const std::string& log, std::size_t count);

// A program the kernel accepted, and what its verifier said about it.
struct Loaded {
    Fd fd;
    std::string log;
};

struct LoadOptions {
    std::string license = "GPL";
    uint32_t prog_flags = 0;       // BPF_F_SLEEPABLE (16) for syscall programs, ...
    uint32_t expected_attach = 0;  // expected_attach_type
    // 1: when the program is refused, the verifier's log says why (Loaded::log of an accepted
    // program has its statistics: BPF_LOG_STATS, 4); 0: no log.
    uint32_t log_level = 1;
};

// Loads `insns` (lddw src 1 = a map fd in imm) as `type`. When the verifier refuses, the error
// carries the last lines of its log.
Expected<Loaded> load_program(vm::ProgramType type, std::span<const vm::RawInsn> insns,
                              const LoadOptions& options = {});

// BPF_PROG_TEST_RUN. retval is the low 32 bits of r0; duration_ns is the kernel's mean per run.
struct TestRun {
    uint32_t retval = 0;
    uint32_t duration_ns = 0;
    std::vector<uint8_t> data_out;
    std::vector<uint8_t> ctx_out;
    std::vector<uint8_t> ctx_in_after;  // the context as the run left it (syscall runs copy it back there)
};
struct TestRunInput {
    std::span<const uint8_t> data;
    std::span<const uint8_t> ctx;
    uint32_t repeat = 1;
    // Room for the packet and the context after the run; 0 asks for none (raw tracepoint and
    // syscall runs refuse a data_out, raw tracepoints a ctx_out too).
    uint32_t data_out_size = 0;
    uint32_t ctx_out_size = 0;
    uint32_t flags = 0;
    uint32_t cpu = 0;
};
// An error carries the errno: EINVAL is the kernel refusing the input for this program type.
struct TestRunError {
    int err = 0;
    std::string message;
};
std::variant<TestRun, TestRunError> test_run_raw(int program_fd, const TestRunInput& input);
Expected<TestRun> test_run(const Fd& program, const TestRunInput& input);

}  // namespace bpfvm::kernel
