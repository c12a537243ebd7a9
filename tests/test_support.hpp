// Shared by the test files: file reading and the helpers the conformance contract expects.
#pragma once

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "bpfvm/vm/helpers.hpp"

namespace bpfvm::test {

inline std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw std::runtime_error("cannot read " + path);
    }
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// Helper 5 as uBPF's test runner defines it ("unwind"): returns its first argument.
inline uint64_t unwind_helper(uint64_t r1, uint64_t, uint64_t, uint64_t, uint64_t, vm::CallContext*) {
    return r1;
}

// The prototype of a test helper that runs its first argument as a callback (callbacks run only
// through helpers that declare a function argument: vm::may_run_callbacks).
inline const vm::HelperPrototype kTakesAFunction{
    vm::RetKind::Integer,
    {vm::ArgKind::Function, vm::ArgKind::Anything, vm::ArgKind::Anything, vm::ArgKind::Anything,
     vm::ArgKind::Anything}};

inline vm::HelperTable conformance_helpers() {
    vm::HelperTable t;
    (void)t.add(5, "unwind", unwind_helper);
    return t;
}

}  // namespace bpfvm::test
