// Programs with no kernel program type of their own, run in the kernel as the subprogram of an
// XDP program (private to kernel/): the input in a one-slot array map whose value the subprogram
// gets in r1 (its length in r2), r0 stored in a second map, and the program's own maps created
// from bpfvm's view of them (vm::MapSpec).
#pragma once

#include <string>
#include <vector>

#include "bpfvm/kernel/diff.hpp"
#include "bpfvm/vm/specs.hpp"

namespace bpfvm::kernel {

class WrappedKernelProgram : public Subject {
public:
    // `insns` refer to maps by index into `maps` (lddw src 5 and 6, as bpfvm's loader makes them).
    WrappedKernelProgram(std::vector<vm::RawInsn> insns, std::vector<vm::MapSpec> maps, std::string name = "kernel");
    [[nodiscard]] const std::string& name() const override { return name_; }
    [[nodiscard]] Outcome run(const DiffInput& input, uint32_t time_repeat) const override;

private:
    std::vector<vm::RawInsn> insns_;
    std::vector<vm::MapSpec> maps_;
    std::string name_;
};

}  // namespace bpfvm::kernel
