// CO-RE relocation of one instruction (private to loader/).
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "bpfvm/loader/btf.hpp"
#include "bpfvm/vm/program.hpp"

namespace bpfvm::loader {

// Recomputes the relocated value against `target` and patches the instruction in `code` (the
// section's bytes). `where` names the section for errors.
Expected<Unit> apply_core_relocation(const Btf& local, const Btf& target, const BtfCoreRelo& relo,
                                     std::span<uint8_t> code, const std::string& where);

}  // namespace bpfvm::loader
