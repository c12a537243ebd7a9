// `bpfvm diff`: the kernel as oracle (kernel/diff.hpp), one object or file or a whole folder.
#pragma once

#include <string>
#include <vector>

#include "bpfvm/vm/expected.hpp"

namespace bpfvm::cli {

struct DiffArgs {
    std::string file;    // an ELF object, or a raw program (.bin, .s, .data)
    std::string corpus;  // or a folder of them
    std::string program;
    std::vector<std::string> packet_files;
    std::vector<std::string> ctx_files;
    std::string engine = "all";
    uint32_t repeat = 0;
    bool json = false;
};

// 0 when everything agrees (programs the kernel refuses are counted, not compared), 1 when
// anything differs.
Expected<int> cmd_diff(const DiffArgs& args);

}  // namespace bpfvm::cli
