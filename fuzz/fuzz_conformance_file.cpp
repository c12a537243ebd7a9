// Arbitrary bytes as a conformance test file: parse, assemble, validate, run checked.
#include <cstdint>
#include <string_view>

#include "bpfvm/vm/conformance_file.hpp"
#include "bpfvm/vm/interpreter.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace bpfvm;
    using namespace bpfvm::vm;
    Expected<ConformanceTest> t =
        parse_conformance(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
    if (!t || !t->runnable()) {
        return 0;
    }
    Expected<std::vector<RawInsn>> raw = t->instructions();
    if (!raw) {
        return 0;
    }
    Expected<Program> program = Program::from_raw(*raw);
    if (!program) {
        return 0;
    }
    Expected<Interpreter> interp = Interpreter::create(*program, {});
    if (!interp) {
        return 0;
    }
    std::vector<uint8_t> mem = t->mem;
    (void)interp->run_buffer(mem, RunOptions{Mode::Checked, 20'000});
    return 0;
}
