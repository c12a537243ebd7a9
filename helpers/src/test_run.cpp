#include "bpfvm/helpers/test_run.hpp"

#include <net/if.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "bpfvm/helpers/context.hpp"

namespace bpfvm::helpers {

namespace {

constexpr int kENODEV = 19;  // (kE2BIG, kEINVAL: maps.hpp)
constexpr std::size_t kEthHeader = 14;
constexpr std::size_t kMaxSkbData = 3712;  // a page less the skb's headroom and shared info
constexpr std::size_t kSkbSize = 192;      // sizeof(struct __sk_buff)
constexpr std::size_t kXdpMdSize = 24;     // sizeof(struct xdp_md)

using vm::ProgramType;

bool is_skb(ProgramType t) {
    return t == ProgramType::SocketFilter || t == ProgramType::SchedCls || t == ProgramType::SchedAct;
}

bool device_exists(uint32_t ifindex) {
    char name[IF_NAMESIZE];
    return if_indextoname(ifindex, name) != nullptr;
}

uint32_t u32_at(const std::vector<uint8_t>& b, std::size_t off) {
    uint32_t v = 0;
    if (off + 4 <= b.size()) {
        std::memcpy(&v, b.data() + off, 4);
    }
    return v;
}

InputRefusal refusal(int err, std::string reason) {
    return InputRefusal{err, std::move(reason)};
}

// A context longer than the kernel's struct must be zero past it (bpf_check_uarg_tail_zero).
std::optional<InputRefusal> tail_zero(const std::vector<uint8_t>& ctx, std::size_t size, const char* what) {
    if (ctx.size() > size &&
        std::any_of(ctx.begin() + static_cast<std::ptrdiff_t>(size), ctx.end(), [](uint8_t b) { return b != 0; })) {
        return refusal(kE2BIG, std::string("the context is longer than ") + what + " (" + std::to_string(size) +
                                   " bytes) and not zero past it");
    }
    return std::nullopt;
}

std::optional<InputRefusal> refuse_skb(ProgramType type, const TestInput& in) {
    if (in.data.size() < kEthHeader || in.data.size() > kMaxSkbData) {
        return refusal(kEINVAL, "a packet of " + std::to_string(in.data.size()) + " bytes: skb test runs take 14 to " +
                                    std::to_string(kMaxSkbData) + " bytes");
    }
    // An IPv4 or IPv6 frame must hold its network header.
    const uint16_t ethertype = static_cast<uint16_t>(in.data[12] << 8 | in.data[13]);
    if ((ethertype == 0x0800 && in.data.size() < kEthHeader + 20) ||
        (ethertype == 0x86dd && in.data.size() < kEthHeader + 40)) {
        return refusal(
            kEINVAL, std::string("a packet of ") + std::to_string(in.data.size()) + " bytes is too short for its " +
                         (ethertype == 0x0800 ? "IPv4 header (34 bytes at least)" : "IPv6 header (54 bytes at least)"));
    }
    if (in.ctx.empty()) {
        return std::nullopt;
    }
    if (auto t = tail_zero(in.ctx, kSkbSize, "__sk_buff")) {
        return t;
    }
    // The fields a test may set, as [offset, end) in __sk_buff.
    struct Settable {
        std::size_t begin, end;
    };
    static constexpr Settable kSettable[] = {
        {8, 12},     // mark
        {32, 36},    // priority
        {36, 40},    // ingress_ifindex
        {40, 44},    // ifindex
        {48, 68},    // cb[5]
        {152, 160},  // tstamp
        {160, 164},  // wire_len
        {164, 168},  // gso_segs
        {176, 180},  // gso_size
        {184, 192},  // hwtstamp
    };
    const std::size_t n = std::min(in.ctx.size(), kSkbSize);
    for (std::size_t i = 0; i < n; ++i) {
        const bool settable = std::any_of(std::begin(kSettable), std::end(kSettable),
                                          [&](const Settable& s) { return i >= s.begin && i < s.end; });
        if (!settable && in.ctx[i] != 0) {
            return refusal(kEINVAL,
                           "byte " + std::to_string(i) +
                               " of __sk_buff is set, and a test run may only set mark, priority, "
                               "ingress_ifindex, ifindex, cb, tstamp, wire_len, gso_segs, gso_size and hwtstamp");
        }
    }
    const uint32_t ifindex = u32_at(in.ctx, 40);
    if (ifindex != 0 && !device_exists(ifindex)) {
        return refusal(kENODEV, "__sk_buff.ifindex " + std::to_string(ifindex) + " is no device here");
    }
    const std::size_t len = in.data.size() - (type == ProgramType::SocketFilter ? kEthHeader : 0);
    const uint32_t wire_len = u32_at(in.ctx, 160);
    if (wire_len != 0 && (wire_len < len || wire_len > 65536)) {
        return refusal(kEINVAL, "__sk_buff.wire_len " + std::to_string(wire_len) + " is below the skb's length (" +
                                    std::to_string(len) + ") or above 65,536");
    }
    if (u32_at(in.ctx, 164) > 65535) {
        return refusal(kEINVAL, "__sk_buff.gso_segs is above 65,535");
    }
    return std::nullopt;
}

std::optional<InputRefusal> refuse_xdp(const TestInput& in) {
    if (in.data.size() < kEthHeader) {
        return refusal(kEINVAL, "a packet of " + std::to_string(in.data.size()) +
                                    " bytes: XDP test runs take at least 14 (an Ethernet header)");
    }
    if (in.ctx.empty()) {
        return std::nullopt;
    }
    if (auto t = tail_zero(in.ctx, kXdpMdSize, "xdp_md")) {
        return t;
    }
    const uint32_t data = u32_at(in.ctx, 0);
    const uint32_t data_end = u32_at(in.ctx, 4);
    const uint32_t meta = u32_at(in.ctx, 8);
    if (meta != 0 || data > data_end) {
        return refusal(kEINVAL, "xdp_md.data_meta must be 0 and data at most data_end");
    }
    if (data > std::min(in.data.size(), XdpFrame::kMaxLinear)) {
        return refusal(kEINVAL, "xdp_md.data (the metadata's length) is beyond the packet");
    }
    const uint32_t ifindex = u32_at(in.ctx, 12);
    if (ifindex != 0 && !device_exists(ifindex)) {
        return refusal(kENODEV, "xdp_md.ingress_ifindex " + std::to_string(ifindex) + " is no device here");
    }
    if (u32_at(in.ctx, 16) != 0 || u32_at(in.ctx, 20) != 0) {
        return refusal(kEINVAL, "xdp_md.rx_queue_index and egress_ifindex must be 0");
    }
    return std::nullopt;
}

}  // namespace

bool has_test_run(ProgramType type) {
    return is_skb(type) || type == ProgramType::Xdp || type == ProgramType::Syscall ||
           type == ProgramType::RawTracepoint;
}

std::optional<InputRefusal> refuse_input(ProgramType type, const TestInput& in) {
    if (is_skb(type)) {
        return refuse_skb(type, in);
    }
    if (type == ProgramType::Xdp) {
        return refuse_xdp(in);
    }
    if (type == ProgramType::Syscall) {
        if (!in.data.empty() || in.repeat != 0) {
            return refusal(kEINVAL, "syscall test runs take a context only: no packet, no repeat");
        }
        if (in.ctx.size() > 65535) {
            return refusal(kEINVAL, "a syscall program's context is at most 65,535 bytes");
        }
        return std::nullopt;
    }
    if (type == ProgramType::RawTracepoint) {
        if (!in.data.empty() || in.repeat != 0) {
            return refusal(kEINVAL, "raw tracepoint test runs take arguments only: no packet, no repeat");
        }
        if (in.ctx.size() > 96) {
            return refusal(kEINVAL, "raw tracepoint arguments are at most 96 bytes (12 arguments)");
        }
        return std::nullopt;
    }
    return refusal(kEINVAL, "the kernel has no test run for " + std::string(vm::to_string(type)) + " programs");
}

std::variant<TestOutput, InputRefusal> test_run(const Runtime& runtime, ProgramType type, const TestInput& input,
                                                const Execute& execute_once) {
    if (auto r = refuse_input(type, input)) {
        return *r;
    }
    TestOutput out;
    // The kernel's loop: the program runs `repeat` times on the context as the previous run left it,
    // and only the loop is timed. A trap ends it (a kernel program cannot trap).
    auto execute = [&](const vm::RunInput& in) {
        const uint32_t runs = std::max<uint32_t>(input.repeat, 1);
        const auto start = std::chrono::steady_clock::now();
        vm::RunResult result;
        uint32_t done = 0;
        while (done < runs) {
            result = execute_once(in);
            ++done;
            if (!result.ok()) {
                break;
            }
        }
        const auto end = std::chrono::steady_clock::now();
        out.ns_per_run = std::chrono::duration<double, std::nano>(end - start).count() / done;
        return result;
    };
    std::vector<vm::Region> regions;
    vm::RunInput in;
    if (type == ProgramType::Xdp) {
        const uint32_t ifindex = input.ctx.empty() ? 1 : u32_at(input.ctx, 12);
        XdpFrame frame(input.data, ifindex == 0 ? 1 : ifindex);
        if (!input.ctx.empty()) {
            frame.set_metadata(u32_at(input.ctx, 0));
        }
        regions = frame.regions();
        in.r1 = reinterpret_cast<uintptr_t>(&frame.context());
        runtime.prepare(in, regions, type);
        out.result = execute(in);
        out.data_out = frame.packet();
        if (!input.ctx.empty()) {
            // xdp_md with the offsets as they are now, from the metadata's start.
            const XdpContext& c = frame.context();
            const uint32_t md[6] = {static_cast<uint32_t>(c.data - c.data_meta),
                                    static_cast<uint32_t>(c.data_end - c.data_meta),
                                    0,
                                    u32_at(input.ctx, 12),
                                    0,
                                    0};
            out.ctx_out.assign(reinterpret_cast<const uint8_t*>(md), reinterpret_cast<const uint8_t*>(md) + sizeof md);
        }
        return out;
    }
    if (is_skb(type)) {
        SkbFrame frame(input.data, type != ProgramType::SocketFilter, input.ctx);
        regions = frame.regions();
        in.r1 = reinterpret_cast<uintptr_t>(&frame.context());
        in.packet = frame.data();
        runtime.prepare(in, regions, type);
        out.result = execute(in);
        out.data_out = frame.packet();
        out.ctx_out = frame.context_out();
        return out;
    }
    // Syscall programs write their context, which is copied back; raw tracepoints read theirs.
    std::vector<uint8_t> ctx = input.ctx;
    if (!ctx.empty()) {
        regions.push_back(vm::Region{reinterpret_cast<uintptr_t>(ctx.data()), ctx.size(), type == ProgramType::Syscall,
                                     type == ProgramType::Syscall ? "ctx" : "args"});
    }
    in.r1 = ctx.empty() ? 0 : reinterpret_cast<uintptr_t>(ctx.data());
    runtime.prepare(in, regions, type);
    out.result = execute(in);
    if (type == ProgramType::Syscall) {
        out.ctx_out = std::move(ctx);
    }
    return out;
}

}  // namespace bpfvm::helpers
