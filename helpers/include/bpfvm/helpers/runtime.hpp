// The runtime a loaded program is linked against: its maps, the kernel helpers bound to them,
// and the output helpers produce. One Runtime per object; many threads may run programs linked
// against it at once.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "bpfvm/helpers/maps.hpp"
#include "bpfvm/vm/helpers.hpp"
#include "bpfvm/vm/interpreter.hpp"
#include "bpfvm/vm/program.hpp"

namespace bpfvm::helpers {

struct RuntimeOptions {
    // Where bpf_trace_printk lines go (without their trailing newline). Default: kept in the
    // runtime, read with trace_lines().
    std::function<void(std::string_view)> trace_sink;
    // How many of the latest lines are kept without a sink (the kernel's trace buffer is a ring
    // too): a program printing in a loop cannot exhaust the host's memory.
    std::size_t trace_capacity = 4096;
    // What bpf_get_current_pid_tgid / uid_gid / comm report; the host's when unset.
    std::optional<uint64_t> pid_tgid;
    std::optional<uint64_t> uid_gid;
    std::optional<std::string> comm;
    // Slots of per-CPU maps (see maps.hpp).
    unsigned cpus = 4;
};

class Runtime {
public:
    // Creates every map (maps[i] serves lddw references to map index i).
    static Expected<std::unique_ptr<Runtime>> create(const std::vector<vm::MapSpec>& maps, RuntimeOptions options = {});

    // Resolves a loaded program's map references (lddw src 5 and 6) to this runtime's maps and
    // validates it. Helper calls are checked against helpers(): an id nobody registered is an
    // error here, not a trap later.
    // For a program type with a context model (XDP, ...), context accesses are rewritten first.
    [[nodiscard]] Expected<vm::Program> link(std::span<const vm::RawInsn> insns,
                                             vm::ProgramType type = vm::ProgramType::Unspecified) const;

    // The kernel helpers this runtime provides; the embedder may add its own before linking.
    [[nodiscard]] const vm::HelperTable& helpers() const { return helpers_; }
    vm::HelperTable& helpers() { return helpers_; }

    // Memory checked programs may touch besides their input: every map's values.
    [[nodiscard]] std::span<const vm::Region> regions() const { return regions_; }

    [[nodiscard]] std::size_t map_count() const { return maps_.size(); }
    [[nodiscard]] Map& map(std::size_t index) const { return *maps_[index]; }
    [[nodiscard]] Map* find_map(std::string_view name) const;
    // True if `handle` is one of this runtime's maps (helpers check the pointers programs pass).
    [[nodiscard]] Map* map_from_handle(uint64_t handle) const;

    // Puts a program into a prog_array slot for bpf_tail_call (null clears it). The interpreter
    // must outlive the runtime's use of it.
    Expected<Unit> set_tail_call_target(std::string_view prog_array, uint32_t slot, const vm::Interpreter* program,
                                        uint32_t id = 1);

    // The interface bpf_redirect last named (ifindex, flags), if any.
    [[nodiscard]] std::optional<std::pair<uint32_t, uint64_t>> last_redirect() const;
    void record_redirect(uint32_t ifindex, uint64_t flags);

    // bpf_trace_printk output kept when no sink was given: the latest trace_capacity lines, and
    // how many older ones were dropped to keep to it.
    [[nodiscard]] std::vector<std::string> trace_lines() const;
    [[nodiscard]] uint64_t trace_lines_dropped() const;
    void trace(std::string_view line);

    [[nodiscard]] const RuntimeOptions& options() const { return options_; }

    // Fills RunInput::runtime and appends this runtime's regions to `regions` (which the caller
    // keeps alive for the run).
    void prepare(vm::RunInput& input, std::vector<vm::Region>& regions,
                 vm::ProgramType type = vm::ProgramType::Unspecified) const;

private:
    Runtime() = default;
    std::vector<std::unique_ptr<Map>> maps_;
    std::vector<vm::Region> regions_;
    vm::HelperTable helpers_;
    RuntimeOptions options_;
    mutable std::mutex trace_mutex_;
    std::deque<std::string> trace_lines_;
    uint64_t trace_dropped_ = 0;
    std::optional<std::pair<uint32_t, uint64_t>> redirect_;
};

// Registers the kernel helpers bpfvm implements into `table` (ids from uapi/linux/bpf.h).
void add_kernel_helpers(vm::HelperTable& table);

}  // namespace bpfvm::helpers
