#include "bpfvm/vm/specs.hpp"

#include <array>
#include <utility>

namespace bpfvm::vm {

std::string_view to_string(ProgramType type) {
    switch (type) {
        case ProgramType::Unspecified:
            return "unspecified";
        case ProgramType::SocketFilter:
            return "socket_filter";
        case ProgramType::Kprobe:
            return "kprobe";
        case ProgramType::SchedCls:
            return "sched_cls";
        case ProgramType::SchedAct:
            return "sched_act";
        case ProgramType::Tracepoint:
            return "tracepoint";
        case ProgramType::Xdp:
            return "xdp";
        case ProgramType::PerfEvent:
            return "perf_event";
        case ProgramType::CgroupSkb:
            return "cgroup_skb";
        case ProgramType::CgroupSock:
            return "cgroup_sock";
        case ProgramType::LwtIn:
            return "lwt_in";
        case ProgramType::LwtOut:
            return "lwt_out";
        case ProgramType::LwtXmit:
            return "lwt_xmit";
        case ProgramType::SockOps:
            return "sock_ops";
        case ProgramType::SkSkb:
            return "sk_skb";
        case ProgramType::CgroupDevice:
            return "cgroup_device";
        case ProgramType::SkMsg:
            return "sk_msg";
        case ProgramType::RawTracepoint:
            return "raw_tracepoint";
        case ProgramType::CgroupSockAddr:
            return "cgroup_sock_addr";
        case ProgramType::LwtSeg6Local:
            return "lwt_seg6local";
        case ProgramType::LircMode2:
            return "lirc_mode2";
        case ProgramType::SkReuseport:
            return "sk_reuseport";
        case ProgramType::FlowDissector:
            return "flow_dissector";
        case ProgramType::CgroupSysctl:
            return "cgroup_sysctl";
        case ProgramType::RawTracepointWritable:
            return "raw_tracepoint_writable";
        case ProgramType::CgroupSockopt:
            return "cgroup_sockopt";
        case ProgramType::Tracing:
            return "tracing";
        case ProgramType::StructOps:
            return "struct_ops";
        case ProgramType::Ext:
            return "ext";
        case ProgramType::Lsm:
            return "lsm";
        case ProgramType::SkLookup:
            return "sk_lookup";
        case ProgramType::Syscall:
            return "syscall";
        case ProgramType::Netfilter:
            return "netfilter";
    }
    return "unknown";
}

std::optional<ProgramType> program_type_for_section(std::string_view section) {
    // libbpf's section names (libbpf.c, section_defs). An entry ending in '/' or '+' matches a
    // prefix: '/' requires something after it, '+' allows the bare name or "name/...".
    using T = ProgramType;
    static constexpr std::pair<std::string_view, T> kSections[] = {
        {"socket+", T::SocketFilter},
        {"sk_reuseport/migrate", T::SkReuseport},
        {"sk_reuseport", T::SkReuseport},
        {"kprobe+", T::Kprobe},
        {"uprobe+", T::Kprobe},
        {"uprobe.s+", T::Kprobe},
        {"kretprobe+", T::Kprobe},
        {"uretprobe+", T::Kprobe},
        {"uretprobe.s+", T::Kprobe},
        {"kprobe.multi+", T::Kprobe},
        {"kretprobe.multi+", T::Kprobe},
        {"uprobe.multi+", T::Kprobe},
        {"uretprobe.multi+", T::Kprobe},
        {"ksyscall+", T::Kprobe},
        {"kretsyscall+", T::Kprobe},
        {"usdt+", T::Kprobe},
        {"tc/ingress", T::SchedCls},
        {"tc/egress", T::SchedCls},
        {"tcx/ingress", T::SchedCls},
        {"tcx/egress", T::SchedCls},
        {"tc+", T::SchedCls},
        {"classifier+", T::SchedCls},
        {"action+", T::SchedAct},
        {"tracepoint+", T::Tracepoint},
        {"tp+", T::Tracepoint},
        {"raw_tracepoint+", T::RawTracepoint},
        {"raw_tp+", T::RawTracepoint},
        {"raw_tracepoint.w+", T::RawTracepointWritable},
        {"raw_tp.w+", T::RawTracepointWritable},
        {"tp_btf+", T::Tracing},
        {"fentry+", T::Tracing},
        {"fmod_ret+", T::Tracing},
        {"fexit+", T::Tracing},
        {"fentry.s+", T::Tracing},
        {"fmod_ret.s+", T::Tracing},
        {"fexit.s+", T::Tracing},
        {"freplace+", T::Ext},
        {"lsm+", T::Lsm},
        {"lsm.s+", T::Lsm},
        {"lsm_cgroup+", T::Lsm},
        {"iter+", T::Tracing},
        {"iter.s+", T::Tracing},
        {"syscall", T::Syscall},
        {"xdp.frags/devmap", T::Xdp},
        {"xdp/devmap", T::Xdp},
        {"xdp.frags/cpumap", T::Xdp},
        {"xdp/cpumap", T::Xdp},
        {"xdp.frags", T::Xdp},
        {"xdp+", T::Xdp},
        {"perf_event+", T::PerfEvent},
        {"lwt_in+", T::LwtIn},
        {"lwt_out+", T::LwtOut},
        {"lwt_xmit+", T::LwtXmit},
        {"lwt_seg6local+", T::LwtSeg6Local},
        {"sockops+", T::SockOps},
        {"sk_skb/stream_parser", T::SkSkb},
        {"sk_skb/stream_verdict", T::SkSkb},
        {"sk_skb+", T::SkSkb},
        {"sk_msg+", T::SkMsg},
        {"lirc_mode2+", T::LircMode2},
        {"flow_dissector+", T::FlowDissector},
        {"cgroup_skb/ingress", T::CgroupSkb},
        {"cgroup_skb/egress", T::CgroupSkb},
        {"cgroup/skb", T::CgroupSkb},
        {"cgroup/sock_create", T::CgroupSock},
        {"cgroup/sock_release", T::CgroupSock},
        {"cgroup/sock", T::CgroupSock},
        {"cgroup/post_bind4", T::CgroupSock},
        {"cgroup/post_bind6", T::CgroupSock},
        {"cgroup/bind4", T::CgroupSockAddr},
        {"cgroup/bind6", T::CgroupSockAddr},
        {"cgroup/connect4", T::CgroupSockAddr},
        {"cgroup/connect6", T::CgroupSockAddr},
        {"cgroup/connect_unix", T::CgroupSockAddr},
        {"cgroup/sendmsg4", T::CgroupSockAddr},
        {"cgroup/sendmsg6", T::CgroupSockAddr},
        {"cgroup/sendmsg_unix", T::CgroupSockAddr},
        {"cgroup/recvmsg4", T::CgroupSockAddr},
        {"cgroup/recvmsg6", T::CgroupSockAddr},
        {"cgroup/recvmsg_unix", T::CgroupSockAddr},
        {"cgroup/getpeername4", T::CgroupSockAddr},
        {"cgroup/getpeername6", T::CgroupSockAddr},
        {"cgroup/getsockname4", T::CgroupSockAddr},
        {"cgroup/getsockname6", T::CgroupSockAddr},
        {"cgroup/sysctl", T::CgroupSysctl},
        {"cgroup/getsockopt", T::CgroupSockopt},
        {"cgroup/setsockopt", T::CgroupSockopt},
        {"cgroup/dev", T::CgroupDevice},
        {"struct_ops+", T::StructOps},
        {"struct_ops.s+", T::StructOps},
        {"sk_lookup", T::SkLookup},
        {"netfilter", T::Netfilter},
    };
    for (const auto& [pattern, type] : kSections) {
        const char last = pattern.back();
        if (last == '+') {
            const std::string_view base = pattern.substr(0, pattern.size() - 1);
            if (section == base || (section.size() > base.size() && section.substr(0, base.size()) == base &&
                                    section[base.size()] == '/')) {
                return type;
            }
        } else if (section == pattern) {
            return type;
        }
    }
    return std::nullopt;
}

std::string_view to_string(MapType type) {
    static constexpr std::array<std::string_view, 34> kNames = {
        "unspec",
        "hash",
        "array",
        "prog_array",
        "perf_event_array",
        "percpu_hash",
        "percpu_array",
        "stack_trace",
        "cgroup_array",
        "lru_hash",
        "lru_percpu_hash",
        "lpm_trie",
        "array_of_maps",
        "hash_of_maps",
        "devmap",
        "sockmap",
        "cpumap",
        "xskmap",
        "sockhash",
        "cgroup_storage",
        "reuseport_sockarray",
        "percpu_cgroup_storage",
        "queue",
        "stack",
        "sk_storage",
        "devmap_hash",
        "struct_ops",
        "ringbuf",
        "inode_storage",
        "task_storage",
        "bloom_filter",
        "user_ringbuf",
        "cgrp_storage",
        "arena",
    };
    const auto i = static_cast<uint32_t>(type);
    return i < kNames.size() ? kNames[i] : "unknown";
}

}  // namespace bpfvm::vm
