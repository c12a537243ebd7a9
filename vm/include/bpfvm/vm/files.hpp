// Reading a whole file: programs, objects, BTF, packets. One implementation, so every command
// and loader reports a missing file, a folder or a failed read the same way.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bpfvm/vm/expected.hpp"

namespace bpfvm::vm {

// The bytes of the file at `path` (files whose size stat cannot tell, as in /sys, included).
Expected<std::vector<uint8_t>> read_file(const std::string& path);

}  // namespace bpfvm::vm
