// eBPF stacks for the engines: each thread keeps one block of kMaxCallFrames * 512 bytes per
// nesting level (a helper may run another program), so a program never runs on memory that holds
// host data. Engines zero each frame as they enter it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "bpfvm/vm/program.hpp"

namespace bpfvm::vm {

inline constexpr std::size_t kStackBytes = std::size_t{kStackFrameBytes} * kMaxCallFrames;

class StackLease {
public:
    StackLease();
    ~StackLease();
    StackLease(const StackLease&) = delete;
    StackLease& operator=(const StackLease&) = delete;

    [[nodiscard]] uint8_t* bytes() const { return bytes_; }
    [[nodiscard]] uintptr_t top() const { return reinterpret_cast<uintptr_t>(bytes_) + kStackBytes; }

private:
    uint8_t* bytes_;
};

}  // namespace bpfvm::vm
