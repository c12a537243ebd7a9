// An ELF object loaded into the running kernel by libbpf, the way real deployments load it (maps
// created from their definitions, global data initialised and .rodata frozen, BTF, CO-RE against
// the running kernel, __kconfig from its configuration), and its programs test-run there.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "bpfvm/helpers/test_run.hpp"
#include "bpfvm/kernel/outcome.hpp"
#include "bpfvm/vm/expected.hpp"
#include "bpfvm/vm/specs.hpp"

namespace bpfvm::kernel {

// What the kernel's verifier said of one program.
struct Verdict {
    std::string program;
    std::string section;
    vm::ProgramType type = vm::ProgramType::Unspecified;
    bool accepted = false;
    // Accepted: the verifier's statistics ("processed 42 insns ..."). Refused: the last lines of
    // its log, or why the program never reached it.
    std::string log;
};

class KernelObject {
public:
    // Opens `bytes` with libbpf and records each program's verdict: all of them loaded together,
    // or, when that fails, each alone (to tell which the verifier refuses and why).
    static Expected<std::unique_ptr<KernelObject>> open(std::span<const uint8_t> bytes, const std::string& name);
    ~KernelObject();
    KernelObject(const KernelObject&) = delete;
    KernelObject& operator=(const KernelObject&) = delete;

    [[nodiscard]] const std::vector<Verdict>& verdicts() const { return verdicts_; }
    [[nodiscard]] const Verdict* verdict(const std::string& program) const;

    // Loads a fresh copy (fresh maps) with every accepted program, test-runs `program` once on
    // `input` pinned to CPU 0, and reads back the return value, the packet, the context and every
    // map. With `time_repeat` > 0 it then times that many runs (BPF_PROG_TEST_RUN's repeat; a
    // type that takes no repeat is timed one run at a time).
    [[nodiscard]] Outcome run(const std::string& program, const helpers::TestInput& input, uint32_t time_repeat) const;

private:
    KernelObject() = default;
    std::vector<uint8_t> bytes_;
    std::string name_;
    std::vector<Verdict> verdicts_;
};

// The running kernel's __kconfig values, as libbpf gives them to programs: LINUX_KERNEL_VERSION
// from uname, and every CONFIG_ option of /proc/config.gz (y = 1, m = 2, numbers as they are;
// strings are left out).
const std::map<std::string, uint64_t>& running_kconfig();

// A map's name as bpfvm's loader gives it: libbpf names global data "<object>.<section>".
std::string loader_map_name(const std::string& libbpf_name);

}  // namespace bpfvm::kernel
