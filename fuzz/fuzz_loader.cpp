// Arbitrary bytes as an ELF object: the loader must refuse or load them without crashing,
// hanging or leaking; whatever loads must be valid programs.
#include <cstdint>
#include <cstdlib>

#include "bpfvm/loader/object.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace bpfvm;
    Expected<loader::Object> obj = loader::load_object({data, size}, "fuzz.o");
    if (!obj) {
        (void)obj.error().message();
        return 0;
    }
    for (const loader::ProgramInfo& p : obj->programs) {
        if (!vm::Program::from_raw(p.insns)) {
            std::abort();  // the loader must only hand out valid programs
        }
    }
    return 0;
}
