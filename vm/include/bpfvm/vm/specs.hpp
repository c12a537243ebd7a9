// The vocabulary shared by the loader (which reads it out of ELF objects), the runtime in
// helpers/ (which creates maps and contexts from it) and later the verifier and the kernel oracle:
// program types and map definitions, numbered as the kernel numbers them (uapi/linux/bpf.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bpfvm::vm {

// enum bpf_prog_type
enum class ProgramType : uint32_t {
    Unspecified = 0,
    SocketFilter = 1,
    Kprobe = 2,
    SchedCls = 3,
    SchedAct = 4,
    Tracepoint = 5,
    Xdp = 6,
    PerfEvent = 7,
    CgroupSkb = 8,
    CgroupSock = 9,
    LwtIn = 10,
    LwtOut = 11,
    LwtXmit = 12,
    SockOps = 13,
    SkSkb = 14,
    CgroupDevice = 15,
    SkMsg = 16,
    RawTracepoint = 17,
    CgroupSockAddr = 18,
    LwtSeg6Local = 19,
    LircMode2 = 20,
    SkReuseport = 21,
    FlowDissector = 22,
    CgroupSysctl = 23,
    RawTracepointWritable = 24,
    CgroupSockopt = 25,
    Tracing = 26,
    StructOps = 27,
    Ext = 28,
    Lsm = 29,
    SkLookup = 30,
    Syscall = 31,
    Netfilter = 32,
};

std::string_view to_string(ProgramType type);

// The program type libbpf gives a section name ("xdp", "kprobe/sys_write", "tc/ingress", ...);
// nullopt for a name libbpf does not know.
std::optional<ProgramType> program_type_for_section(std::string_view section);

// enum bpf_map_type
enum class MapType : uint32_t {
    Unspecified = 0,
    Hash = 1,
    Array = 2,
    ProgArray = 3,
    PerfEventArray = 4,
    PercpuHash = 5,
    PercpuArray = 6,
    StackTrace = 7,
    CgroupArray = 8,
    LruHash = 9,
    LruPercpuHash = 10,
    LpmTrie = 11,
    ArrayOfMaps = 12,
    HashOfMaps = 13,
    Devmap = 14,
    Sockmap = 15,
    Cpumap = 16,
    Xskmap = 17,
    Sockhash = 18,
    CgroupStorage = 19,
    ReuseportSockarray = 20,
    PercpuCgroupStorage = 21,
    Queue = 22,
    Stack = 23,
    SkStorage = 24,
    DevmapHash = 25,
    StructOps = 26,
    Ringbuf = 27,
    InodeStorage = 28,
    TaskStorage = 29,
    BloomFilter = 30,
    UserRingbuf = 31,
    CgrpStorage = 32,
    Arena = 33,
};

std::string_view to_string(MapType type);  // "array", "hash", ... or "type N" when unknown

// Map flags the runtime honours (BPF_F_*).
inline constexpr uint32_t kMapFlagNoPrealloc = 1u << 0;
inline constexpr uint32_t kMapFlagRdonlyProg = 1u << 7;
inline constexpr uint32_t kMapFlagMmapable = 1u << 10;

// Where a map definition came from.
enum class MapOrigin : uint8_t {
    BtfMaps,     // a variable in the BTF-described `.maps` section
    LegacyMaps,  // a `struct bpf_map_def` in the `maps` section
    GlobalData,  // .data / .rodata / .bss / .data.* / .rodata.* / .kconfig: one-element array
};

struct MapSpec {
    std::string name;
    MapType type = MapType::Unspecified;
    uint32_t key_size = 0;
    uint32_t value_size = 0;
    uint32_t max_entries = 0;
    uint32_t flags = 0;
    MapOrigin origin = MapOrigin::BtfMaps;
    uint32_t btf_key_type = 0;  // BTF ids where known (0 = none)
    uint32_t btf_value_type = 0;
    // map-in-map: the inner map's definition (its name is the outer map's name + ".inner").
    std::vector<MapSpec> inner;  // empty, or exactly one element
    // Initial slots from `.values`: (index, name) of a map in the same object (map-in-map) or of a
    // program (prog_array).
    std::vector<std::pair<uint32_t, std::string>> initial_slots;
    // Global data: the section's initial bytes (value_size bytes; zeros for .bss).
    std::vector<uint8_t> initial_value;
    std::vector<std::string> notes;  // things the loader ignored on purpose (e.g. pinning)
};

}  // namespace bpfvm::vm
