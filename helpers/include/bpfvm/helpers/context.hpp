// Program types as context models (DESIGN.md, decision 6). A model says where each field of the
// kernel-visible context (xdp_md, ...) lives in bpfvm's own context struct; linking rewrites the
// program's context accesses to it, the way the kernel's verifier does, and refuses an access to
// a field the model does not provide, naming it. A model also turns a test input (a packet) into
// a context and reads the output back.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "bpfvm/vm/expected.hpp"
#include "bpfvm/vm/memory.hpp"
#include "bpfvm/vm/program.hpp"
#include "bpfvm/vm/specs.hpp"

namespace bpfvm::helpers {

struct ContextField {
    const char* name;
    uint32_t offset;       // in the kernel's struct
    uint32_t size;         // in the kernel's struct
    uint32_t host_offset;  // in bpfvm's struct
    uint32_t host_size;
    bool pointer;  // a 32-bit kernel field that holds a pointer (only whole loads)
    bool writable;
};

// A field of the kernel's struct, for naming what a program touched.
struct KernelField {
    const char* name;
    uint32_t offset;
    uint32_t size;
};

struct ContextModel {
    vm::ProgramType type;
    const char* kernel_struct;  // "xdp_md"
    uint32_t kernel_size;
    std::vector<ContextField> fields;        // what bpfvm provides
    std::vector<KernelField> kernel_fields;  // the kernel's whole struct (names for errors)
};

// The model for a program type, if bpfvm has one. Raw memory (r1 = buffer, r2 = length) serves
// programs of unspecified type and needs no rewriting.
const ContextModel* context_model(vm::ProgramType type);

// Finds every load and store through the context pointer (r1 at entry, followed through moves,
// constant additions, stack spills and bpf-to-bpf calls) and rewrites it for the model. An access
// through a pointer that may or may not be the context, or to a field the model lacks, is an error
// naming the pc and the field.
Expected<std::vector<vm::RawInsn>> rewrite_context_accesses(std::span<const vm::RawInsn> insns,
                                                            const ContextModel& model);

// XDP: bpfvm's context for xdp_md. The program sees only the first fields, through rewritten
// accesses; the rest is for the helpers that move the packet.
struct XdpContext {
    uint64_t data = 0;
    uint64_t data_end = 0;
    uint64_t data_meta = 0;
    uint32_t ingress_ifindex = 0;
    uint32_t rx_queue_index = 0;
    uint32_t egress_ifindex = 0;
    uint32_t magic = kMagic;
    uint64_t frame_start = 0;  // start of the frame buffer (the headroom begins here)
    uint64_t frame_end = 0;    // end of the usable frame (the tailroom ends here)
    uint64_t frags = 0;        // the XdpFrags after the linear part (a multi-buffer packet), or 0

    static constexpr uint32_t kMagic = 0x58445021;  // "XDP!"
};

// The part of a packet beyond the linear frame, as the kernel's test run lays it out: pages of up
// to 4 KiB that the program cannot address; helpers see them (bpf_xdp_adjust_tail grows and
// shrinks the last one, bpf_xdp_get_buff_len counts them).
struct XdpFrags {
    static constexpr std::size_t kFragSize = 4096;
    std::vector<std::vector<uint8_t>> frags;
    [[nodiscard]] std::size_t bytes() const;
};

// A packet in a frame laid out like the kernel's for XDP test runs: 256 bytes of headroom, up to
// 3,520 bytes of packet, and 320 bytes of tailroom in a 4 KiB frame; what does not fit follows in
// fragments (XdpFrags).
class XdpFrame {
public:
    static constexpr std::size_t kHeadroom = 256;
    static constexpr std::size_t kFrameSize = 4096;
    static constexpr std::size_t kTailroom = 320;  // the kernel reserves skb_shared_info here
    static constexpr std::size_t kMaxLinear = kFrameSize - kHeadroom - kTailroom;

    explicit XdpFrame(std::span<const uint8_t> packet, uint32_t ingress_ifindex = 1, uint32_t rx_queue = 0);
    XdpFrame(const XdpFrame&) = delete;  // the context holds pointers into the frame
    XdpFrame& operator=(const XdpFrame&) = delete;

    XdpContext& context() { return ctx_; }
    // The memory a checked run may touch: the frame, and the context (read-only).
    [[nodiscard]] std::vector<vm::Region> regions() const;
    // The packet as the program left it, as a test run returns it: its metadata and data
    // [data_meta, data_end), then the fragments.
    [[nodiscard]] std::vector<uint8_t> packet() const;
    // Moves the start of the data (metadata of `meta` bytes before it), as a test run's xdp_md
    // does: 0 <= meta <= the linear part's length.
    void set_metadata(std::size_t meta);

private:
    std::vector<uint8_t> frame_;
    XdpFrags frags_;
    XdpContext ctx_;
};

// Socket filters and tc: bpfvm's context for __sk_buff. Its first 192 bytes are laid out as the
// kernel's __sk_buff, so scalar fields keep their offsets; data, data_end and data_meta are
// 64-bit pointers after them.
struct SkbContext {
    uint32_t len = 0;
    uint32_t pkt_type = 0;
    uint32_t mark = 0;
    uint32_t queue_mapping = 0;
    uint32_t protocol = 0;  // network byte order, as the kernel stores it
    uint32_t vlan_present = 0;
    uint32_t vlan_tci = 0;
    uint32_t vlan_proto = 0;
    uint32_t priority = 0;
    uint32_t ingress_ifindex = 0;
    uint32_t ifindex = 0;
    uint32_t tc_index = 0;
    uint32_t cb[5] = {};
    uint32_t hash = 0;
    uint32_t tc_classid = 0;
    uint32_t data32 = 0;  // the kernel's 32-bit data / data_end fields; accesses are rewritten
    uint32_t data_end32 = 0;
    uint32_t napi_id = 0;
    uint32_t sock_fields[13] = {};  // family .. local_port: socket fields, not modelled
    uint32_t data_meta32 = 0;
    uint64_t flow_keys = 0;
    uint64_t tstamp = 0;
    uint32_t wire_len = 0;
    uint32_t gso_segs = 0;
    uint64_t sk = 0;
    uint32_t gso_size = 0;
    uint32_t tstamp_type = 0;
    uint64_t hwtstamp = 0;
    // bpfvm's part
    uint64_t data = 0;
    uint64_t data_end = 0;
    uint64_t data_meta = 0;
    uint32_t magic = kMagic;
    uint32_t reserved = 0;

    static constexpr uint32_t kMagic = 0x534b4221;  // "SKB!"
};

// A packet as an skb for a test run, as BPF_PROG_TEST_RUN builds one: for tc (layer 2) the data
// starts at the Ethernet header; for socket filters it starts after it (the kernel pulls the
// 14-byte Ethernet header), and len counts from there. The skb arrives on the loopback device:
// pkt_type and protocol as eth_type_trans sets them, ifindex 1, ingress_ifindex 0, wire_len the
// length. `ctx_in`, if not empty, is a __sk_buff whose settable fields (mark, priority,
// ingress_ifindex, ifindex, cb, tstamp, wire_len, gso_segs, gso_size, hwtstamp) are copied in
// (test_run checks the rest are zero, as the kernel does).
class SkbFrame {
public:
    SkbFrame(std::span<const uint8_t> packet, bool layer2, std::span<const uint8_t> ctx_in = {});
    SkbFrame(const SkbFrame&) = delete;
    SkbFrame& operator=(const SkbFrame&) = delete;

    SkbContext& context() { return ctx_; }
    [[nodiscard]] std::vector<vm::Region> regions() const;
    // What LD_ABS / LD_IND read: [data, data_end).
    [[nodiscard]] std::span<const uint8_t> data() const;
    // The packet as a test run returns it: from the Ethernet header, which for socket filters is
    // 14 zero bytes (the kernel pushes a cleared header back after the run).
    [[nodiscard]] std::vector<uint8_t> packet() const;
    // The __sk_buff a test run returns (192 bytes): the fields it copies back (mark, priority,
    // ingress_ifindex, ifindex, cb, tstamp, wire_len, gso_segs, gso_size, hwtstamp), the rest 0.
    [[nodiscard]] std::vector<uint8_t> context_out() const;

private:
    std::vector<uint8_t> buffer_;
    SkbContext ctx_;
    bool layer2_;
};

}  // namespace bpfvm::helpers
