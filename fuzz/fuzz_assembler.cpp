// Arbitrary text as assembly: assemble; for text that assembles to a valid program, the listing
// must assemble back to the same bytes.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "bpfvm/vm/assembler.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace bpfvm;
    using namespace bpfvm::vm;
    Expected<std::vector<RawInsn>> raw = assemble(std::string_view(reinterpret_cast<const char*>(data), size));
    if (!raw) {
        (void)raw.error().message();
        return 0;
    }
    Expected<Program> program = Program::from_raw(*raw);
    if (!program) {
        return 0;
    }
    Expected<std::vector<RawInsn>> again = assemble(disassemble(*program, Syntax::Conformance));
    if (!again || *again != *raw) {
        std::abort();
    }
    return 0;
}
