// prog_array and array_of_maps (index -> handle) and hash_of_maps (key -> handle). A program's
// lookup returns the handle itself (an inner map, for maps of maps); the embedder reads the id
// given with the handle.
#include <cstring>
#include <map>
#include <string>

#include "maps_impl.hpp"

namespace bpfvm::helpers::detail {

namespace {

struct Slot {
    uint64_t handle = 0;
    uint32_t id = 0;
};

class HandleArray final : public HandleMap {
public:
    explicit HandleArray(vm::MapSpec spec) : HandleMap(std::move(spec)), slots_(spec_.max_entries) {}

    void* lookup(const void* key) override {
        const uint32_t i = index(key);
        if (i >= spec_.max_entries || spec_.type == vm::MapType::ProgArray) {
            return nullptr;  // programs do not look up prog_array slots (the kernel refuses it)
        }
        std::lock_guard lock(mutex_);
        return reinterpret_cast<void*>(static_cast<uintptr_t>(slots_[i].handle));
    }
    int update(const void*, const void*, uint64_t) override { return -kEINVAL; }  // not from programs
    int erase(const void* key) override { return set_handle(key, 0, 0); }
    int next_key(const void* key, void* next) override {
        uint32_t n = 0;
        if (key != nullptr && index(key) < spec_.max_entries) {
            if (index(key) + 1 >= spec_.max_entries) {
                return -kENOENT;
            }
            n = index(key) + 1;
        }
        std::memcpy(next, &n, 4);
        return 0;
    }
    int read(const void* key, void* out) override {
        const uint32_t i = index(key);
        std::lock_guard lock(mutex_);
        if (i >= spec_.max_entries || slots_[i].handle == 0) {
            return -kENOENT;
        }
        std::memcpy(out, &slots_[i].id, 4);
        return 0;
    }
    [[nodiscard]] vm::Region region() const override { return {}; }

    int set_handle(const void* key, uint64_t handle, uint32_t id) override {
        const uint32_t i = index(key);
        if (i >= spec_.max_entries) {
            return -kE2BIG;
        }
        std::lock_guard lock(mutex_);
        slots_[i] = Slot{handle, id};
        return 0;
    }
    uint64_t handle(const void* key) override {
        const uint32_t i = index(key);
        std::lock_guard lock(mutex_);
        return i < spec_.max_entries ? slots_[i].handle : 0;
    }

private:
    static uint32_t index(const void* key) {
        uint32_t i;
        std::memcpy(&i, key, 4);
        return i;
    }
    std::vector<Slot> slots_;
};

class HandleHash final : public HandleMap {
public:
    using HandleMap::HandleMap;

    void* lookup(const void* key) override {
        std::lock_guard lock(mutex_);
        auto it = slots_.find(k(key));
        return it == slots_.end() ? nullptr : reinterpret_cast<void*>(static_cast<uintptr_t>(it->second.handle));
    }
    int update(const void*, const void*, uint64_t) override { return -kEINVAL; }
    int erase(const void* key) override {
        std::lock_guard lock(mutex_);
        return slots_.erase(k(key)) == 1 ? 0 : -kENOENT;
    }
    int next_key(const void* key, void* next) override {
        std::lock_guard lock(mutex_);
        auto it = key == nullptr ? slots_.begin() : slots_.upper_bound(k(key));
        if (it == slots_.end()) {
            return -kENOENT;
        }
        std::memcpy(next, it->first.data(), spec_.key_size);
        return 0;
    }
    int read(const void* key, void* out) override {
        std::lock_guard lock(mutex_);
        auto it = slots_.find(k(key));
        if (it == slots_.end()) {
            return -kENOENT;
        }
        std::memcpy(out, &it->second.id, 4);
        return 0;
    }
    [[nodiscard]] vm::Region region() const override { return {}; }

    int set_handle(const void* key, uint64_t handle, uint32_t id) override {
        std::lock_guard lock(mutex_);
        if (handle == 0) {
            slots_.erase(k(key));
            return 0;
        }
        if (slots_.size() >= spec_.max_entries && slots_.find(k(key)) == slots_.end()) {
            return -kE2BIG;
        }
        slots_[k(key)] = Slot{handle, id};
        return 0;
    }
    uint64_t handle(const void* key) override {
        std::lock_guard lock(mutex_);
        auto it = slots_.find(k(key));
        return it == slots_.end() ? 0 : it->second.handle;
    }

private:
    std::string k(const void* key) const { return std::string(static_cast<const char*>(key), spec_.key_size); }
    std::map<std::string, Slot> slots_;
};

}  // namespace

std::unique_ptr<Map> make_handle_array(const vm::MapSpec& spec) {
    return std::make_unique<HandleArray>(spec);
}
std::unique_ptr<Map> make_handle_hash(const vm::MapSpec& spec) {
    return std::make_unique<HandleHash>(spec);
}

}  // namespace bpfvm::helpers::detail
