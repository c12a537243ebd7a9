// Arbitrary bytes as a test run's input (what `bpfvm run --packet/--ctx` and `bpfvm diff` take
// from files): the first byte picks the program type, the next two the context's length, the rest
// is the context and then the packet. helpers::test_run checks it against the kernel's rules and
// runs a program that reads and writes its context and calls the packet helpers, checked.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "bpfvm/helpers/linked_object.hpp"
#include "bpfvm/helpers/test_run.hpp"
#include "bpfvm/vm/assembler.hpp"

namespace {

using bpfvm::vm::ProgramType;

struct Subject {
    ProgramType type;
    const char* text;
};

// Each touches the context fields a test run sets and the helpers that resize or read packets.
const Subject kSubjects[] = {
    {ProgramType::Xdp,
     "mov %r6, %r1\n"
     "ldxw %r2, [%r6+0]\nldxw %r3, [%r6+4]\nldxw %r4, [%r6+8]\nldxw %r5, [%r6+12]\n"
     "mov %r1, %r6\nmov %r2, -20\ncall 65\n"  // bpf_xdp_adjust_tail
     "mov %r1, %r6\nmov %r2, 2\ncall 44\n"    // bpf_xdp_adjust_head
     "mov %r1, %r6\nmov %r2, -8\ncall 54\n"   // bpf_xdp_adjust_meta
     "mov %r1, %r6\ncall 188\n"               // bpf_xdp_get_buff_len
     "ldxw %r2, [%r6+0]\nldxw %r3, [%r6+4]\nmov %r4, %r2\nadd %r4, 4\njgt %r4, %r3, +2\n"
     "ldxw %r5, [%r2+0]\nstxw [%r2+0], %r5\n"
     "exit\n"},
    {ProgramType::SchedCls,
     "mov %r6, %r1\n"
     "ldxw %r2, [%r6+0]\nldxw %r3, [%r6+8]\nstxw [%r6+8], %r2\nldxw %r4, [%r6+16]\nldxw %r5, [%r6+160]\n"
     "mov %r1, %r6\nmov %r2, 0\nmov %r3, %r10\nadd %r3, -16\nmov %r4, 14\ncall 26\n"  // bpf_skb_load_bytes
     "ldxw %r2, [%r6+76]\nldxw %r3, [%r6+80]\nmov %r4, %r2\nadd %r4, 2\njgt %r4, %r3, +1\n"
     "ldxh %r0, [%r2+0]\n"
     "exit\n"},
    {ProgramType::SocketFilter,
     "mov %r6, %r1\n"
     "ldxw %r2, [%r6+0]\nldxw %r3, [%r6+48]\nstxw [%r6+48], %r2\n"
     "ldabsb 0\nldabsh 12\n"
     "mov %r1, %r6\nmov %r2, 0\nmov %r3, %r10\nadd %r3, -16\nmov %r4, 8\ncall 26\n"
     "exit\n"},
    {ProgramType::Syscall, "ldxdw %r2, [%r1+0]\nadd %r2, 1\nstxdw [%r1+0], %r2\nmov %r0, %r2\nexit\n"},
    {ProgramType::RawTracepoint, "ldxdw %r0, [%r1+0]\nldxdw %r2, [%r1+8]\nadd %r0, %r2\nexit\n"},
};

struct Linked {
    std::unique_ptr<bpfvm::helpers::LinkedObject> object;
    const bpfvm::vm::Interpreter* program = nullptr;
};

std::vector<Linked> link_all() {
    std::vector<Linked> out;
    for (const Subject& s : kSubjects) {
        auto raw = bpfvm::vm::assemble(s.text);
        if (!raw) {
            std::fprintf(stderr, "fuzz_test_run: %s\n", raw.error().message().c_str());
            std::abort();
        }
        auto linked = bpfvm::helpers::LinkedObject::create({}, {{"p", s.type, *raw}});
        if (!linked) {
            std::fprintf(stderr, "fuzz_test_run: %s\n", linked.error().message().c_str());
            std::abort();
        }
        auto program = (*linked)->program("p");
        if (!program) {
            std::fprintf(stderr, "fuzz_test_run: %s\n", program.error().message().c_str());
            std::abort();
        }
        out.push_back({std::move(*linked), *program});
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace bpfvm;
    static const std::vector<Linked> linked = link_all();
    if (size < 3) {
        return 0;
    }
    const std::size_t which = data[0] % std::size(kSubjects);
    const std::size_t ctx_len = std::min<std::size_t>(data[1] | (std::size_t{data[2]} << 8), size - 3);
    helpers::TestInput input;
    input.ctx.assign(data + 3, data + 3 + ctx_len);
    input.data.assign(data + 3 + ctx_len, data + size);
    input.repeat = (data[0] >> 4) % 3;  // 0, 1 or 2 (some refused, as the kernel refuses them)
    const Linked& l = linked[which];
    auto out = helpers::test_run(l.object->runtime(), kSubjects[which].type, input, [&](const vm::RunInput& in) {
        return l.program->run(in, vm::RunOptions{vm::Mode::Checked, 100'000});
    });
    (void)out;
    return 0;
}
