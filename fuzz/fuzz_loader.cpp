// Arbitrary bytes as an ELF object: the loader must refuse or load them without crashing,
// hanging or leaking; whatever loads must be valid programs; and every program that links runs
// in checked mode (with a packet or a buffer for its context) without harming the host.
#include <cstdint>
#include <cstdlib>

#include "bpfvm/helpers/context.hpp"
#include "bpfvm/helpers/linked_object.hpp"
#include "bpfvm/loader/object.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace bpfvm;
    Expected<loader::Object> obj = loader::load_object({data, size}, "fuzz.o");
    if (!obj) {
        (void)obj.error().message();
        return 0;
    }
    uint64_t map_bytes = 0;
    for (const loader::ProgramInfo& p : obj->programs) {
        if (!vm::Program::from_raw(p.insns)) {
            std::abort();  // the loader must only hand out valid programs
        }
    }
    for (const vm::MapSpec& m : obj->maps) {
        map_bytes += uint64_t{m.max_entries} * (uint64_t{m.key_size} + m.value_size + 8);
    }
    if (map_bytes > (uint64_t{16} << 20)) {
        return 0;  // legal, but too big to create thousands of times a second
    }
    std::vector<helpers::ProgramSource> sources;
    for (const loader::ProgramInfo& p : obj->programs) {
        sources.push_back({p.name, p.type, p.insns});
    }
    helpers::RuntimeOptions options;
    options.trace_sink = [](std::string_view) {};
    Expected<std::unique_ptr<helpers::LinkedObject>> linked =
        helpers::LinkedObject::create(obj->maps, sources, options);
    if (!linked) {
        return 0;
    }
    std::vector<uint8_t> packet(64);
    for (std::size_t i = 0; i < packet.size(); ++i) {
        packet[i] = static_cast<uint8_t>(i * 13);
    }
    packet[12] = 0x08;  // IPv4
    packet[13] = 0x00;
    for (const loader::ProgramInfo& p : obj->programs) {
        Expected<const vm::Interpreter*> interp = (*linked)->program(p.name);
        if (!interp) {
            continue;
        }
        std::vector<vm::Region> regions;
        vm::RunInput in;
        std::vector<uint8_t> buffer = packet;
        std::unique_ptr<helpers::XdpFrame> xdp;
        std::unique_ptr<helpers::SkbFrame> skb;
        if (p.type == vm::ProgramType::Xdp) {
            xdp = std::make_unique<helpers::XdpFrame>(packet);
            regions = xdp->regions();
            in.r1 = reinterpret_cast<uintptr_t>(&xdp->context());
        } else if (p.type == vm::ProgramType::SchedCls || p.type == vm::ProgramType::SchedAct ||
                   p.type == vm::ProgramType::SocketFilter) {
            skb = std::make_unique<helpers::SkbFrame>(packet, p.type != vm::ProgramType::SocketFilter);
            regions = skb->regions();
            in.r1 = reinterpret_cast<uintptr_t>(&skb->context());
            in.packet = skb->data();
        } else {
            regions.push_back(vm::Region::of(std::span<uint8_t>(buffer), "input"));
            in.r1 = reinterpret_cast<uintptr_t>(buffer.data());
            in.r2 = buffer.size();
            in.packet = buffer;
        }
        (*linked)->runtime().prepare(in, regions, p.type);
        (void)(*interp)->run(in, vm::RunOptions{vm::Mode::Checked, 10'000});
    }
    return 0;
}
