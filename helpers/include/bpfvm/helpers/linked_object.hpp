// Every program of an object linked against one runtime, with prog_array slots wired to the
// programs the object names in them: what an embedder runs.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bpfvm/helpers/runtime.hpp"
#include "bpfvm/vm/interpreter.hpp"

namespace bpfvm::helpers {

// Program types whose context is plain memory the caller provides: r1 = a buffer (syscall
// programs), the argument array (raw tracepoints), or the conformance contract (.text programs).
bool uses_raw_memory(vm::ProgramType type);

struct ProgramSource {
    std::string name;
    vm::ProgramType type = vm::ProgramType::Unspecified;
    std::vector<vm::RawInsn> insns;  // as the loader produced them (map references by index)
};

class LinkedObject {
public:
    // Creates the runtime and links every program. A program that cannot be linked (an
    // unsupported context or helper) is kept as an error that program() reports; the others run.
    static Expected<std::unique_ptr<LinkedObject>> create(const std::vector<vm::MapSpec>& maps,
                                                          const std::vector<ProgramSource>& programs,
                                                          RuntimeOptions options = {});

    [[nodiscard]] Runtime& runtime() const { return *runtime_; }
    [[nodiscard]] Expected<const vm::Interpreter*> program(const std::string& name) const;
    // The linked program itself (map references resolved, context accesses rewritten), for other
    // engines (the JIT) to compile.
    [[nodiscard]] const vm::Program* linked_program(const std::string& name) const;
    [[nodiscard]] vm::ProgramType type(const std::string& name) const;

private:
    std::unique_ptr<Runtime> runtime_;
    std::map<std::string, std::unique_ptr<vm::Interpreter>> programs_;
    std::map<std::string, vm::Program> linked_;
    std::map<std::string, Error> failures_;
    std::map<std::string, vm::ProgramType> types_;
};

}  // namespace bpfvm::helpers
