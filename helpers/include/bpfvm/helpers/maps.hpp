// Maps with the kernel's semantics (DESIGN.md, decision 5): key and value sizes, max_entries,
// BPF_ANY / BPF_NOEXIST / BPF_EXIST, and negative errno returns.
//
// Storage is preallocated when a map is created (as the kernel does by default), so every value
// has a stable address for the map's lifetime and a map's values form one memory region that
// checked programs may touch. A mutex per map serialises updates and deletions; programs read
// values through pointers without it, as in the kernel. The embedder's read() copies a value
// under the mutex, so it never sees a half-written update.
#pragma once

#include <cstdint>
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
inline constexpr int kEEXIST = 17;
inline constexpr int kEINVAL = 22;
inline constexpr int kENOSPC = 28;
inline constexpr int kEFAULT = 14;

class Map {
public:
    explicit Map(vm::MapSpec spec) : spec_(std::move(spec)) {}
    virtual ~Map() = default;
    Map(const Map&) = delete;
    Map& operator=(const Map&) = delete;

    [[nodiscard]] const vm::MapSpec& spec() const { return spec_; }

    // The program's view (helpers): a pointer to the value in the map's storage, or null.
    virtual void* lookup(const void* key) = 0;
    // 0 or a negative errno.
    virtual int update(const void* key, const void* value, uint64_t flags) = 0;
    virtual int erase(const void* key) = 0;
    // The key after `key` (the first key if key is null or absent): 0, or -ENOENT at the end.
    virtual int next_key(const void* key, void* next) = 0;

    // The memory checked programs may read (and, unless read-only, write): every value.
    [[nodiscard]] virtual vm::Region region() const = 0;

    // The embedder's view: copy a value out (0 or -ENOENT), consistently with concurrent updates.
    int read(const void* key, void* value_out);
    // Every (key, value) pair, in next_key order.
    std::vector<std::pair<std::vector<uint8_t>, std::vector<uint8_t>>> entries();

protected:
    vm::MapSpec spec_;
    std::mutex mutex_;
};

// Creates a map of any type the runtime supports; a precise error for the others.
Expected<std::unique_ptr<Map>> create_map(const vm::MapSpec& spec);

}  // namespace bpfvm::helpers
