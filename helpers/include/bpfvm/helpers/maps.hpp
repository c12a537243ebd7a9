// Maps with the kernel's semantics (DESIGN.md, decision 5): key and value sizes, max_entries,
// BPF_ANY / BPF_NOEXIST / BPF_EXIST, and negative errno returns.
//
// Storage is preallocated when a map is created (as the kernel does by default), so every value
// has a stable address for the map's lifetime and a map's values form one memory region that
// checked programs may touch. A mutex per map serialises updates and deletions; programs read
// values through pointers without it, as in the kernel. The embedder's read() copies a value
// under the mutex, so it never sees a half-written update.
//
// Per-CPU maps: a "CPU" is a slot given to each thread that runs a program, in the order threads
// first ask (MapOptions::cpus slots; threads beyond that share slots round-robin). A program sees
// its own slot; the embedder reads and writes all slots at once, value after value, each rounded
// up to 8 bytes, as the kernel's syscall interface does.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "bpfvm/vm/expected.hpp"
#include "bpfvm/vm/memory.hpp"
#include "bpfvm/vm/specs.hpp"

namespace bpfvm::helpers {

// Update flags (uapi/linux/bpf.h).
inline constexpr uint64_t kAny = 0;
inline constexpr uint64_t kNoExist = 1;
inline constexpr uint64_t kExist = 2;

// Kernel errno values, returned negated.
inline constexpr int kENOENT = 2;
inline constexpr int kE2BIG = 7;
inline constexpr int kEFAULT = 14;
inline constexpr int kEBUSY = 16;
inline constexpr int kEEXIST = 17;
inline constexpr int kEINVAL = 22;
inline constexpr int kENOSPC = 28;
inline constexpr int kENOTSUPP = 524;

struct MapOptions {
    unsigned cpus = 4;  // slots of per-CPU maps
};

// The slot of the calling thread among `cpus` (see the header comment).
unsigned current_cpu(unsigned cpus);

class Map {
public:
    explicit Map(vm::MapSpec spec) : spec_(std::move(spec)) {}
    virtual ~Map() = default;
    Map(const Map&) = delete;
    Map& operator=(const Map&) = delete;

    [[nodiscard]] const vm::MapSpec& spec() const { return spec_; }

    // ---- the program's view (what helpers call) --------------------------------------------
    // A pointer to the value (this CPU's, for per-CPU maps), or null. Maps of maps return the
    // inner map's handle.
    virtual void* lookup(const void* key) = 0;
    // 0 or a negative errno. Per-CPU maps update this CPU's value.
    virtual int update(const void* key, const void* value, uint64_t flags) = 0;
    virtual int erase(const void* key) = 0;
    // The key after `key` (the first key if key is null or absent): 0, or -ENOENT at the end.
    virtual int next_key(const void* key, void* next) = 0;
    // Queue, stack and bloom filter operations; -EINVAL (or -ENOTSUPP) elsewhere.
    virtual int push(const void* value, uint64_t flags);
    virtual int pop(void* value_out);
    virtual int peek(void* value_out);

    // The memory checked programs may read (and, unless read-only, write).
    [[nodiscard]] virtual vm::Region region() const = 0;

    // ---- the embedder's view ---------------------------------------------------------------
    // Bytes of a value as the embedder reads and writes it (all CPUs for per-CPU maps).
    [[nodiscard]] virtual std::size_t user_value_size() const { return spec_.value_size; }
    // Copy a value out (0 or -ENOENT), consistently with concurrent updates.
    virtual int read(const void* key, void* value_out);
    // Write a value (all CPUs for per-CPU maps): 0 or a negative errno.
    virtual int write(const void* key, const void* value, uint64_t flags) { return update(key, value, flags); }
    // Every (key, value) pair, in next_key order.
    std::vector<std::pair<std::vector<uint8_t>, std::vector<uint8_t>>> entries();

protected:
    vm::MapSpec spec_;
    std::mutex mutex_;
};

// A ring buffer (BPF_MAP_TYPE_RINGBUF): records reserved and submitted by programs, consumed in
// order by the embedder.
class RingBuffer : public Map {
public:
    using Map::Map;
    // Programs: reserve a record (null when there is no room), then submit or discard it.
    virtual void* reserve(uint64_t size) = 0;
    // True if `data` is a reserved record of this ring buffer; commits or drops it.
    virtual bool submit(const void* data, bool discard) = 0;
    virtual int output(const void* data, uint64_t size) = 0;
    // BPF_RB_AVAIL_DATA (0), BPF_RB_RING_SIZE (1), BPF_RB_CONS_POS (2), BPF_RB_PROD_POS (3).
    virtual uint64_t query(uint64_t what) = 0;
    // The embedder: every committed record, in order; discarded ones are skipped.
    virtual std::vector<std::vector<uint8_t>> consume() = 0;
};

// A perf event array: samples from bpf_perf_event_output, per CPU index, consumed in order, as a
// perf buffer delivers them (zero-padded so that with their 4-byte size they fill 8-byte words).
class PerfEventArray : public Map {
public:
    using Map::Map;
    virtual int output(uint64_t cpu, const void* data, uint64_t size) = 0;
    virtual std::vector<std::pair<uint32_t, std::vector<uint8_t>>> consume() = 0;
};

// Maps whose values are other things: inner maps (array_of_maps, hash_of_maps) or programs
// (prog_array). Slots hold opaque handles the runtime gives them.
class HandleMap : public Map {
public:
    using Map::Map;
    // The embedder sets or clears a slot (handle 0 clears); `id` is what read() reports for it
    // (the kernel reports map or program ids). 0 or a negative errno.
    virtual int set_handle(const void* key, uint64_t handle, uint32_t id) = 0;
    // The handle in a slot, or 0.
    virtual uint64_t handle(const void* key) = 0;
};

// Creates a map of any type the runtime supports; a precise error for the others.
Expected<std::unique_ptr<Map>> create_map(const vm::MapSpec& spec, const MapOptions& options = {});

}  // namespace bpfvm::helpers
