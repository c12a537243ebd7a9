// Memory regions a program may touch, and traps (DESIGN.md, decision 3).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace bpfvm::vm {

// A host address range [begin, begin + size) a program may access in checked mode.
struct Region {
    uintptr_t begin = 0;
    std::size_t size = 0;
    bool writable = false;
    const char* name = "";  // static string, for trap messages ("stack", "input", "rodata", ...)

    static Region of(std::span<uint8_t> bytes, const char* name) {
        return {reinterpret_cast<uintptr_t>(bytes.data()), bytes.size(), true, name};
    }
    static Region of(std::span<const uint8_t> bytes, const char* name) {
        return {reinterpret_cast<uintptr_t>(bytes.data()), bytes.size(), false, name};
    }
    [[nodiscard]] bool contains(uintptr_t addr, std::size_t len) const {
        return addr >= begin && len <= size && addr - begin <= size - len;
    }
};

enum class TrapKind : uint8_t {
    OutOfBounds,        // load or store outside every region
    ReadOnly,           // store into a read-only region
    Misaligned,         // atomic operation on an address not aligned to its width
    UnknownHelper,      // call to a helper id nobody registered
    BadCallxTarget,     // callx with a register that holds no registered helper id
    UnsupportedCall,    // call to a kernel function by BTF id
    CallDepthExceeded,  // more than kMaxCallFrames nested bpf-to-bpf calls
    BudgetExhausted,    // the instruction budget ran out
    HelperFault,        // a helper reported a fault it could not turn into a return value
};

std::string_view to_string(TrapKind kind);

// Why a run stopped early: what happened, at which instruction, and where in memory.
struct Trap {
    TrapKind kind{};
    uint32_t pc = 0;
    uint64_t address = 0;  // faulting address; helper or callx id; budget for BudgetExhausted
    uint32_t size = 0;     // access width in bytes, for memory traps
    bool write = false;    // for memory traps
    std::string detail;    // helper name or fault text, where there is one

    [[nodiscard]] std::string message() const;
};

}  // namespace bpfvm::vm
