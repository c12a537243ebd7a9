// The kernel as oracle (DESIGN.md, kernel/): the same program and input run in the running
// kernel and on bpfvm's engines, and everything observable compared. A `Subject` is one side — the
// kernel, or one bpfvm engine — that runs a program on an input and reports an Outcome; diff()
// runs them all and lists the differences.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bpfvm/helpers/test_run.hpp"
#include "bpfvm/jit/engine.hpp"
#include "bpfvm/kernel/object.hpp"
#include "bpfvm/kernel/outcome.hpp"
#include "bpfvm/loader/object.hpp"
#include "bpfvm/vm/program.hpp"

namespace bpfvm::kernel {

struct DiffInput {
    std::string name;  // "ipv4-tcp", a file name, ...
    helpers::TestInput input;
};

class Subject {
public:
    virtual ~Subject() = default;
    [[nodiscard]] virtual const std::string& name() const = 0;
    // One run on `input` (fresh maps), then `time_repeat` timed runs when > 0.
    [[nodiscard]] virtual Outcome run(const DiffInput& input, uint32_t time_repeat) const = 0;
};

// ---- programs of an ELF object -------------------------------------------------------------

// A program of an object, in the kernel (libbpf) — or, for a program of no kernel type (plain
// memory: r1 = the input, r2 its length), in the kernel as the subprogram of an XDP program that
// finds its input in a map (see RawKernelProgram), with the object's maps created from bpfvm's
// view of them.
std::unique_ptr<Subject> kernel_program(std::shared_ptr<const KernelObject> object, std::span<const uint8_t> bytes,
                                        const std::string& file, const std::string& program);

// The same program on a bpfvm engine: loaded by bpfvm's loader (CO-RE against the running
// kernel's BTF, its __kconfig values), linked against a fresh runtime each run, and test-run as
// the kernel would (helpers/test_run.hpp).
Expected<std::unique_ptr<Subject>> bpfvm_program(std::span<const uint8_t> bytes, const std::string& file,
                                                 const std::string& program, jit::Engine engine);

// bpfvm's loader options that match how libbpf loads an object into this kernel.
loader::LoadOptions kernel_like_load_options();

// ---- raw programs (bytecode, assembly, conformance tests) -----------------------------------

// The conformance contract (r1 = a writable copy of the input, or 0 when it is empty; r2 = its
// length; all 64 bits of r0) in the kernel: the program as the subprogram of an XDP program that
// looks the input up in a one-slot array map, calls it, and stores r0 in a second map. The
// outcome's packet is the input as the program left it.
std::unique_ptr<Subject> kernel_raw_program(const vm::Program& program);
// The same contract on a bpfvm engine (no helpers but the conformance suite's helper 5).
Expected<std::unique_ptr<Subject>> bpfvm_raw_program(const vm::Program& program, jit::Engine engine);

// ---- comparing ---------------------------------------------------------------------------------

struct DiffResult {
    DiffInput input;
    std::vector<std::pair<std::string, Outcome>> outcomes;        // the kernel's first
    std::vector<std::pair<std::string, Difference>> differences;  // (subject, difference)
    enum class Verdict : uint8_t { Agree, Differ, Refused } verdict = Verdict::Agree;
};

DiffResult diff(const Subject& kernel, const std::vector<const Subject*>& others, const DiffInput& input,
                uint32_t time_repeat);

// The inputs a program of `type` gets when none are given: for packet programs, well-formed
// IPv4 and IPv6 TCP and UDP, a VLAN-tagged one, truncated ones, a jumbo frame and one too short
// for the kernel; for syscall programs a few contexts; for raw tracepoints a few argument arrays;
// for plain-memory programs a few buffers.
std::vector<DiffInput> default_inputs(vm::ProgramType type);

}  // namespace bpfvm::kernel
