// What one run of a program produced, in a form both sides of the oracle fill in — the kernel's
// BPF_PROG_TEST_RUN and every bpfvm engine — and compare: the return value, the packet and the
// context after the run, and the contents of every map.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "bpfvm/vm/specs.hpp"

namespace bpfvm::kernel {

// A map's contents after a run, in a form that does not depend on where it came from.
struct MapDump {
    std::string name;  // as bpfvm's loader names it (".rodata", ".data.x", "flows")
    vm::MapType type = vm::MapType::Unspecified;
    // (key, value) pairs, sorted by key. Per-CPU maps: one value per CPU, each rounded up to
    // 8 bytes, in CPU order (runs are pinned to CPU 0 on both sides).
    std::vector<std::pair<std::vector<uint8_t>, std::vector<uint8_t>>> entries;
    // Queues and stacks: the elements in pop order; ring buffers and perf event arrays: the
    // records, in order.
    std::vector<std::vector<uint8_t>> records;
    // Set when the contents are not compared (a bloom filter cannot be listed; slots holding
    // program or map ids and perf events are compared by key only): why.
    std::string partial;
};

struct Outcome {
    enum class Status : uint8_t {
        Ran,             // the program ran to its exit
        Trapped,         // a bpfvm engine stopped it (`reason`)
        InputRefused,    // the test run refused the input (`reason`, `err`)
        ProgramRefused,  // the program was not loaded (the kernel's verifier refused it: `reason`)
        Unavailable,     // the side could not run at all (bpf() unavailable, ...)
    };
    Status status = Status::Ran;
    std::string reason;
    int err = 0;
    uint64_t retval = 0;
    bool retval_is_64_bits = false;  // false: only the low 32 bits are known (a test run's retval)
    bool has_data = false;           // data_out was returned
    std::vector<uint8_t> data_out;
    bool has_ctx = false;
    std::vector<uint8_t> ctx_out;
    std::vector<MapDump> maps;
    double ns_per_run = 0;  // 0 when not timed
    // The kernel's side: what its verifier said ("accepted: processed 12 insns ...", or why it
    // refused), ready to be compared with bpfvm's own verifier.
    std::string verifier;
};

std::string_view to_string(Outcome::Status s);

// One difference between the kernel's outcome and another's: what differs and both values.
struct Difference {
    std::string what;  // "retval", "packet", "packet length", "ctx", "map 'flows'", "status"
    std::string kernel;
    std::string other;
};

// Everything observable that differs (empty when they agree). A refusal by the kernel's verifier
// is not compared (there is nothing to compare with); a refused input must be refused alike.
std::vector<Difference> compare(const Outcome& kernel, const Outcome& other);

std::string hex(std::span<const uint8_t> bytes);

}  // namespace bpfvm::kernel
