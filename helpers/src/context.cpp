#include "bpfvm/helpers/context.hpp"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <deque>
#include <map>

namespace bpfvm::helpers {

namespace {

// ---- the models ----------------------------------------------------------------------------

// uapi/linux/bpf.h, struct __sk_buff.
const std::vector<KernelField> kSkBuffLayout = {
    {"len", 0, 4},           {"pkt_type", 4, 4},
    {"mark", 8, 4},          {"queue_mapping", 12, 4},
    {"protocol", 16, 4},     {"vlan_present", 20, 4},
    {"vlan_tci", 24, 4},     {"vlan_proto", 28, 4},
    {"priority", 32, 4},     {"ingress_ifindex", 36, 4},
    {"ifindex", 40, 4},      {"tc_index", 44, 4},
    {"cb", 48, 20},          {"hash", 68, 4},
    {"tc_classid", 72, 4},   {"data", 76, 4},
    {"data_end", 80, 4},     {"napi_id", 84, 4},
    {"family", 88, 4},       {"remote_ip4", 92, 4},
    {"local_ip4", 96, 4},    {"remote_ip6", 100, 16},
    {"local_ip6", 116, 16},  {"remote_port", 132, 4},
    {"local_port", 136, 4},  {"data_meta", 140, 4},
    {"flow_keys", 144, 8},   {"tstamp", 152, 8},
    {"wire_len", 160, 4},    {"gso_segs", 164, 4},
    {"sk", 168, 8},          {"gso_size", 176, 4},
    {"tstamp_type", 180, 1}, {"hwtstamp", 184, 8},
};

const ContextModel kXdp{
    vm::ProgramType::Xdp,
    "xdp_md",
    24,
    {
        {"data", 0, 4, offsetof(XdpContext, data), 8, true, false},
        {"data_end", 4, 4, offsetof(XdpContext, data_end), 8, true, false},
        {"data_meta", 8, 4, offsetof(XdpContext, data_meta), 8, true, false},
        {"ingress_ifindex", 12, 4, offsetof(XdpContext, ingress_ifindex), 4, false, false},
        {"rx_queue_index", 16, 4, offsetof(XdpContext, rx_queue_index), 4, false, false},
        {"egress_ifindex", 20, 4, offsetof(XdpContext, egress_ifindex), 4, false, false},
    },
    {{"data", 0, 4},
     {"data_end", 4, 4},
     {"data_meta", 8, 4},
     {"ingress_ifindex", 12, 4},
     {"rx_queue_index", 16, 4},
     {"egress_ifindex", 20, 4}},
};

#define SKB_FIELD(NAME, WRITABLE)                                                                \
    {                                                                                            \
#NAME, offsetof(SkbContext, NAME), sizeof(SkbContext::NAME), offsetof(SkbContext, NAME), \
            sizeof(SkbContext::NAME), false, WRITABLE                                            \
    }

// __sk_buff fields a tc program may touch (writes as the kernel's tc_cls_act_is_valid_access).
const ContextModel kSchedCls{
    vm::ProgramType::SchedCls,
    "__sk_buff",
    192,
    {
        SKB_FIELD(len, false),
        SKB_FIELD(pkt_type, false),
        SKB_FIELD(mark, true),
        SKB_FIELD(queue_mapping, true),
        SKB_FIELD(protocol, false),
        SKB_FIELD(vlan_present, false),
        SKB_FIELD(vlan_tci, false),
        SKB_FIELD(vlan_proto, false),
        SKB_FIELD(priority, true),
        SKB_FIELD(ingress_ifindex, false),
        SKB_FIELD(ifindex, false),
        SKB_FIELD(tc_index, true),
        SKB_FIELD(cb, true),
        SKB_FIELD(hash, false),
        SKB_FIELD(tc_classid, true),
        SKB_FIELD(napi_id, false),
        SKB_FIELD(tstamp, true),
        SKB_FIELD(wire_len, false),
        SKB_FIELD(gso_segs, false),
        SKB_FIELD(gso_size, false),
        {"data", 76, 4, offsetof(SkbContext, data), 8, true, false},
        {"data_end", 80, 4, offsetof(SkbContext, data_end), 8, true, false},
        {"data_meta", 140, 4, offsetof(SkbContext, data_meta), 8, true, false},
    },
    kSkBuffLayout,
};

// Socket filters read most scalars and may write only cb[]; they have no direct packet access.
const ContextModel kSocketFilter{
    vm::ProgramType::SocketFilter,
    "__sk_buff",
    192,
    {
        SKB_FIELD(len, false),
        SKB_FIELD(pkt_type, false),
        SKB_FIELD(mark, false),
        SKB_FIELD(queue_mapping, false),
        SKB_FIELD(protocol, false),
        SKB_FIELD(vlan_present, false),
        SKB_FIELD(vlan_tci, false),
        SKB_FIELD(vlan_proto, false),
        SKB_FIELD(priority, false),
        SKB_FIELD(ingress_ifindex, false),
        SKB_FIELD(ifindex, false),
        SKB_FIELD(tc_index, false),
        SKB_FIELD(cb, true),
        SKB_FIELD(hash, false),
        SKB_FIELD(napi_id, false),
    },
    kSkBuffLayout,
};
#undef SKB_FIELD

static_assert(offsetof(SkbContext, data32) == 76 && offsetof(SkbContext, data_meta32) == 140 &&
                  offsetof(SkbContext, tstamp) == 152 && offsetof(SkbContext, hwtstamp) == 184 &&
                  offsetof(SkbContext, data) == 192,
              "SkbContext must keep __sk_buff's layout in its first 192 bytes");

// ---- finding context accesses ---------------------------------------------------------------

// What a register or stack slot holds, as far as the context is concerned.
struct Tag {
    enum class Kind : uint8_t { Unset, Other, Ctx, Mixed } kind = Kind::Unset;
    int64_t offset = 0;  // for Ctx: bytes past the start of the context

    static Tag other() { return {Kind::Other, 0}; }
    static Tag ctx(int64_t off) { return {Kind::Ctx, off}; }
    static Tag mixed() { return {Kind::Mixed, 0}; }
    bool operator==(const Tag&) const = default;
};

Tag join(const Tag& a, const Tag& b) {
    if (a.kind == Tag::Kind::Unset) {
        return b;
    }
    if (b.kind == Tag::Kind::Unset || a == b) {
        return a;
    }
    return Tag::mixed();
}

struct State {
    Tag regs[vm::kNumRegisters];
    std::map<int32_t, Tag> slots;  // 8-byte spills at r10 + key, in this function's frame

    bool operator==(const State&) const = default;
};

State join(const State& a, const State& b) {
    State out;
    for (unsigned r = 0; r < vm::kNumRegisters; ++r) {
        out.regs[r] = join(a.regs[r], b.regs[r]);
    }
    for (const auto& [k, t] : a.slots) {
        auto it = b.slots.find(k);
        out.slots[k] = join(t, it == b.slots.end() ? Tag::other() : it->second);
    }
    for (const auto& [k, t] : b.slots) {
        if (a.slots.find(k) == a.slots.end()) {
            out.slots[k] = join(t, Tag::other());
        }
    }
    return out;
}

bool is_ctx_like(const Tag& t) {
    return t.kind == Tag::Kind::Ctx || t.kind == Tag::Kind::Mixed;
}

// A write of `width` bytes at r10 + off invalidates the spills it overlaps.
void clobber(State& s, int32_t off, unsigned width) {
    for (auto it = s.slots.begin(); it != s.slots.end();) {
        if (it->first < off + static_cast<int32_t>(width) && off < it->first + 8) {
            it = s.slots.erase(it);
        } else {
            ++it;
        }
    }
}

}  // namespace

const ContextModel* context_model(vm::ProgramType type) {
    if (type == vm::ProgramType::Xdp) {
        return &kXdp;
    }
    if (type == vm::ProgramType::SchedCls || type == vm::ProgramType::SchedAct) {
        return &kSchedCls;
    }
    if (type == vm::ProgramType::SocketFilter) {
        return &kSocketFilter;
    }
    return nullptr;
}

Expected<std::vector<vm::RawInsn>> rewrite_context_accesses(std::span<const vm::RawInsn> insns,
                                                            const ContextModel& model) {
    Expected<vm::Program> program = vm::Program::from_raw(std::vector<vm::RawInsn>(insns.begin(), insns.end()));
    if (!program) {
        return program.error();
    }
    const vm::Program& p = *program;
    std::vector<std::optional<State>> states(p.size());
    State entry;
    for (Tag& t : entry.regs) {
        t = Tag::other();
    }
    entry.regs[1] = Tag::ctx(0);
    states[0] = entry;
    std::deque<std::size_t> work{0};
    auto flow = [&](std::size_t pc, const State& s) {
        if (pc >= p.size()) {
            return;
        }
        State merged = states[pc] ? join(*states[pc], s) : s;
        if (!states[pc] || !(merged == *states[pc])) {
            states[pc] = std::move(merged);
            work.push_back(pc);
        }
    };
    while (!work.empty()) {
        const std::size_t pc = work.front();
        work.pop_front();
        const State in = *states[pc];
        State out = in;
        const vm::Instruction& insn = p[pc];
        const vm::OpInfo& row = insn.info();
        Tag& dst = out.regs[insn.dst];
        switch (row.form) {
            case vm::Form::AluImm:
                if (row.sem == vm::Sem::Mov) {
                    dst = Tag::other();
                } else if (in.regs[insn.dst].kind == Tag::Kind::Ctx && row.width == 8 &&
                           (row.sem == vm::Sem::Add || row.sem == vm::Sem::Sub)) {
                    dst =
                        Tag::ctx(in.regs[insn.dst].offset + (row.sem == vm::Sem::Add ? insn.imm : -int64_t{insn.imm}));
                } else {
                    dst = is_ctx_like(in.regs[insn.dst]) ? Tag::mixed() : Tag::other();
                }
                break;
            case vm::Form::AluReg:
                if (row.sem == vm::Sem::Mov && row.width == 8) {
                    dst = in.regs[insn.src];
                } else {
                    dst =
                        is_ctx_like(in.regs[insn.dst]) || is_ctx_like(in.regs[insn.src]) ? Tag::mixed() : Tag::other();
                }
                break;
            case vm::Form::AluUnary:
            case vm::Form::Endian:
                dst = is_ctx_like(in.regs[insn.dst]) ? Tag::mixed() : Tag::other();
                break;
            case vm::Form::LoadMem: {
                Tag loaded = Tag::other();
                if (insn.src == vm::kFramePointer && row.width == 8) {
                    auto it = in.slots.find(insn.off);
                    if (it != in.slots.end()) {
                        loaded = it->second;
                    }
                }
                dst = loaded;
                break;
            }
            case vm::Form::StoreImm:
            case vm::Form::StoreReg:
            case vm::Form::Atomic:
                if (insn.dst == vm::kFramePointer) {
                    clobber(out, insn.off, row.width);
                    if (row.form == vm::Form::StoreReg && row.width == 8) {
                        out.slots[insn.off] = in.regs[insn.src];
                    }
                }
                if (row.form == vm::Form::Atomic) {
                    if (row.sem == vm::Sem::AtomicCmpxchg) {
                        out.regs[0] = Tag::other();
                    } else if (row.sem != vm::Sem::AtomicAdd && row.sem != vm::Sem::AtomicOr &&
                               row.sem != vm::Sem::AtomicAnd && row.sem != vm::Sem::AtomicXor) {
                        out.regs[insn.src] = Tag::other();
                    }
                }
                break;
            case vm::Form::LoadImm64:
                dst = Tag::other();
                break;
            case vm::Form::LoadAbs:
            case vm::Form::LoadInd:
            case vm::Form::Call:
            case vm::Form::CallBtf:
            case vm::Form::Callx:
                for (unsigned r = 0; r <= 5; ++r) {
                    out.regs[r] = Tag::other();
                }
                break;
            case vm::Form::CallLocal: {
                State callee;
                for (unsigned r = 0; r < vm::kNumRegisters; ++r) {
                    callee.regs[r] = (r >= 1 && r <= 5) ? in.regs[r] : Tag::other();
                }
                flow(static_cast<std::size_t>(vm::branch_target(insn, pc)), callee);
                for (unsigned r = 0; r <= 5; ++r) {
                    out.regs[r] = Tag::other();
                }
                break;
            }
            case vm::Form::Jump:
            case vm::Form::Jump32:
            case vm::Form::CondImm:
            case vm::Form::CondReg:
            case vm::Form::Exit:
                break;
        }
        if (row.form == vm::Form::Exit) {
            continue;
        }
        if (row.form == vm::Form::Jump || row.form == vm::Form::Jump32) {
            flow(static_cast<std::size_t>(vm::branch_target(insn, pc)), out);
            continue;
        }
        if (row.form == vm::Form::CondImm || row.form == vm::Form::CondReg) {
            flow(static_cast<std::size_t>(vm::branch_target(insn, pc)), out);
        }
        flow(pc + insn.slots(), out);
    }

    // Rewrite every access whose base is the context.
    std::vector<vm::RawInsn> out(insns.begin(), insns.end());
    for (std::size_t pc = 0; pc < p.size(); ++pc) {
        if (!states[pc] || p.is_tail(pc)) {
            continue;
        }
        const vm::Instruction& insn = p[pc];
        const vm::OpInfo& row = insn.info();
        const bool load = row.form == vm::Form::LoadMem;
        const bool store = row.form == vm::Form::StoreImm || row.form == vm::Form::StoreReg;
        if (!load && !store && row.form != vm::Form::Atomic) {
            continue;
        }
        const Tag base = states[pc]->regs[load ? insn.src : insn.dst];
        const std::string at = "pc " + std::to_string(pc);
        if (base.kind == Tag::Kind::Mixed) {
            return make_error(at, std::string(load ? "load" : "store") + " through r" +
                                      std::to_string(load ? insn.src : insn.dst) +
                                      ", which is the context on some paths and not on others (or the result of "
                                      "arithmetic on it); bpfvm cannot rewrite it");
        }
        if (base.kind != Tag::Kind::Ctx) {
            continue;
        }
        const int64_t field_off = base.offset + insn.off;
        const std::string what = std::string(model.kernel_struct) + " at offset " + std::to_string(field_off) + " (" +
                                 std::to_string(row.width) + " bytes)";
        if (row.form == vm::Form::Atomic) {
            return make_error(at, "atomic operation on the context (" + what + ")");
        }
        const ContextField* field = nullptr;
        for (const ContextField& f : model.fields) {
            if (field_off >= f.offset && field_off + row.width <= int64_t{f.offset} + f.size) {
                field = &f;
            }
        }
        if (field == nullptr) {
            // Name the kernel's field when there is one: the model leaves it out for this type.
            for (const KernelField& k : model.kernel_fields) {
                if (field_off >= k.offset && field_off < int64_t{k.offset} + k.size) {
                    return make_error(at, std::string(load ? "read of " : "write to ") + model.kernel_struct + "." +
                                              k.name + " (offset " + std::to_string(field_off) + ", " +
                                              std::to_string(row.width) + " bytes): not available to " +
                                              std::string(vm::to_string(model.type)) + " programs in bpfvm");
                }
            }
            return make_error(at, std::string(load ? "read of " : "write to ") + what + ": " + model.kernel_struct +
                                      " has no field there");
        }
        if (store && !field->writable) {
            return make_error(at, std::string("write to ") + model.kernel_struct + "." + field->name +
                                      ", which programs may not write");
        }
        vm::RawInsn& raw = out[pc];
        int64_t new_off = 0;
        if (field->pointer) {
            if (!load || row.sem != vm::Sem::Ldx || field_off != field->offset || row.width != field->size) {
                return make_error(at, std::string("partial or signed read of the pointer field ") +
                                          model.kernel_struct + "." + field->name);
            }
            raw.opcode = vm::info(vm::Op::LdxDW).opcode;  // the host field is a 64-bit pointer
            new_off = int64_t{field->host_offset} - base.offset;
        } else {
            new_off = int64_t{field->host_offset} + (field_off - field->offset) - base.offset;
        }
        if (new_off < INT16_MIN || new_off > INT16_MAX) {
            return make_error(at, "rewritten context offset " + std::to_string(new_off) + " does not fit");
        }
        raw.off = static_cast<int16_t>(new_off);
    }
    return out;
}

std::size_t XdpFrags::bytes() const {
    std::size_t n = 0;
    for (const auto& f : frags) {
        n += f.size();
    }
    return n;
}

XdpFrame::XdpFrame(std::span<const uint8_t> packet, uint32_t ingress_ifindex, uint32_t rx_queue) {
    frame_.assign(kFrameSize, 0);
    const std::size_t linear = std::min(packet.size(), kMaxLinear);
    std::copy(packet.begin(), packet.begin() + static_cast<std::ptrdiff_t>(linear), frame_.begin() + kHeadroom);
    for (std::size_t at = linear; at < packet.size(); at += XdpFrags::kFragSize) {
        const std::size_t n = std::min(XdpFrags::kFragSize, packet.size() - at);
        frags_.frags.emplace_back(packet.begin() + static_cast<std::ptrdiff_t>(at),
                                  packet.begin() + static_cast<std::ptrdiff_t>(at + n));
    }
    const auto base = reinterpret_cast<uintptr_t>(frame_.data());
    ctx_.frame_start = base;
    ctx_.frame_end = base + kFrameSize - kTailroom;
    ctx_.data = base + kHeadroom;
    ctx_.data_end = ctx_.data + linear;
    ctx_.data_meta = ctx_.data;
    ctx_.ingress_ifindex = ingress_ifindex;
    ctx_.rx_queue_index = rx_queue;
    ctx_.frags = reinterpret_cast<uintptr_t>(&frags_);
}

std::vector<vm::Region> XdpFrame::regions() const {
    return {
        vm::Region{reinterpret_cast<uintptr_t>(frame_.data()), frame_.size(), true, "xdp frame"},
        vm::Region{reinterpret_cast<uintptr_t>(&ctx_), sizeof ctx_, false, "xdp_md"},
    };
}

std::vector<uint8_t> XdpFrame::packet() const {
    const auto* start = reinterpret_cast<const uint8_t*>(ctx_.data_meta);
    std::vector<uint8_t> out(start, start + (ctx_.data_end - ctx_.data_meta));
    for (const auto& f : frags_.frags) {
        out.insert(out.end(), f.begin(), f.end());
    }
    return out;
}

void XdpFrame::set_metadata(std::size_t meta) {
    ctx_.data = ctx_.data_meta + std::min<uint64_t>(meta, ctx_.data_end - ctx_.data_meta);
}

namespace {

// What eth_type_trans decides for a frame arriving on the loopback device (whose address and
// broadcast address are both zero): the packet type and the protocol, as __sk_buff holds them.
void eth_type_trans(std::span<const uint8_t> packet, SkbContext& ctx) {
    constexpr uint32_t kPacketMulticast = 2;
    constexpr uint32_t kPacketOtherHost = 3;
    if (packet.size() < 14) {
        return;
    }
    if ((packet[0] & 1) != 0) {
        ctx.pkt_type = kPacketMulticast;  // (broadcast only for the device's broadcast address)
    } else if (std::any_of(packet.begin(), packet.begin() + 6, [](uint8_t b) { return b != 0; })) {
        ctx.pkt_type = kPacketOtherHost;
    }
    const uint16_t type = static_cast<uint16_t>(packet[12] << 8 | packet[13]);
    uint16_t proto = type;
    if (type < 0x600) {  // an 802.3 length: raw 802.3 (0xffff after the header) or 802.2
        proto = packet.size() >= 16 && packet[14] == 0xff && packet[15] == 0xff ? 0x0001 : 0x0004;
    }
    ctx.protocol = uint32_t{static_cast<uint8_t>(proto >> 8)} | uint32_t{static_cast<uint8_t>(proto)} << 8;
}

}  // namespace

SkbFrame::SkbFrame(std::span<const uint8_t> packet, bool layer2, std::span<const uint8_t> ctx_in) : layer2_(layer2) {
    constexpr std::size_t kHeadroom = 64;
    constexpr std::size_t kEth = 14;
    buffer_.assign(kHeadroom + packet.size() + 64, 0);
    std::copy(packet.begin(), packet.end(), buffer_.begin() + kHeadroom);
    const auto start = reinterpret_cast<uintptr_t>(buffer_.data()) + kHeadroom;
    const std::size_t pulled = layer2 || packet.size() < kEth ? 0 : kEth;
    ctx_.data = start + pulled;
    ctx_.data_end = start + packet.size();
    ctx_.data_meta = ctx_.data;
    ctx_.len = static_cast<uint32_t>(packet.size() - pulled);
    ctx_.wire_len = ctx_.len;
    ctx_.ifindex = 1;
    ctx_.ingress_ifindex = 0;
    eth_type_trans(packet, ctx_);
    if (!ctx_in.empty()) {
        SkbContext in{};
        std::memcpy(&in, ctx_in.data(), std::min(ctx_in.size(), std::size_t{192}));
        ctx_.mark = in.mark;
        ctx_.priority = in.priority;
        ctx_.ingress_ifindex = in.ingress_ifindex;
        if (in.ifindex != 0) {
            ctx_.ifindex = in.ifindex;
        }
        std::memcpy(ctx_.cb, in.cb, sizeof ctx_.cb);
        ctx_.tstamp = in.tstamp;
        ctx_.gso_segs = in.gso_segs;
        ctx_.gso_size = in.gso_size;
        ctx_.hwtstamp = in.hwtstamp;
        if (in.wire_len != 0) {
            ctx_.wire_len = in.wire_len;
        }
    }
}

std::vector<uint8_t> SkbFrame::context_out() const {
    SkbContext out{};
    out.mark = ctx_.mark;
    out.priority = ctx_.priority;
    out.ingress_ifindex = ctx_.ingress_ifindex;
    out.ifindex = ctx_.ifindex;
    std::memcpy(out.cb, ctx_.cb, sizeof out.cb);
    out.tstamp = ctx_.tstamp;
    out.wire_len = ctx_.wire_len;
    out.gso_segs = ctx_.gso_segs;
    out.gso_size = ctx_.gso_size;
    out.hwtstamp = ctx_.hwtstamp;
    const auto* bytes = reinterpret_cast<const uint8_t*>(&out);
    return std::vector<uint8_t>(bytes, bytes + offsetof(SkbContext, data));
}

std::vector<vm::Region> SkbFrame::regions() const {
    return {
        vm::Region{reinterpret_cast<uintptr_t>(buffer_.data()), buffer_.size(), true, "skb data"},
        // The __sk_buff-shaped part takes the program's (rewritten) stores; bpfvm's pointers
        // after it stay read-only, so no stray store can aim a helper elsewhere.
        vm::Region{reinterpret_cast<uintptr_t>(&ctx_), offsetof(SkbContext, data), true, "__sk_buff"},
        vm::Region{reinterpret_cast<uintptr_t>(&ctx_) + offsetof(SkbContext, data),
                   sizeof ctx_ - offsetof(SkbContext, data), false, "skb pointers"},
    };
}

std::span<const uint8_t> SkbFrame::data() const {
    return {reinterpret_cast<const uint8_t*>(ctx_.data), static_cast<std::size_t>(ctx_.data_end - ctx_.data)};
}

std::vector<uint8_t> SkbFrame::packet() const {
    const auto* start = buffer_.data() + 64;
    std::vector<uint8_t> out(start, reinterpret_cast<const uint8_t*>(ctx_.data_end));
    if (!layer2_) {
        std::fill(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(std::min<std::size_t>(out.size(), 14)), 0);
    }
    return out;
}

}  // namespace bpfvm::helpers
