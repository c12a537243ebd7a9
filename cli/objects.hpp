// Printing what an ELF object holds (bpfvm inspect / bpfvm maps).
#pragma once

#include <string>

#include "bpfvm/loader/object.hpp"

namespace bpfvm::cli {

std::string describe_maps(const loader::Object& object);
std::string describe_object(const loader::Object& object);

}  // namespace bpfvm::cli
