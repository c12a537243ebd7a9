// The JIT's short path for common instructions (jit/src/x86_64/fast_assembler.hpp) against
// asmjit's own encoder: the same bytes for every register pair, width, and a set of immediates
// and displacements around each encoding's edges; and whole compiled programs byte-identical with
// the short path (no listing) and without it (a listing attaches asmjit's logger).
#include "x86_64/fast_assembler.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <type_traits>
#include <vector>

#include "bpfvm/vm/assembler.hpp"
#include "frontend.hpp"
#include "random/random_program.hpp"

namespace bpfvm::jit {
namespace {

using namespace asmjit;
using namespace asmjit::x86;

std::string hex(const std::vector<uint8_t>& bytes) {
    std::string out;
    char buf[4];
    for (uint8_t b : bytes) {
        std::snprintf(buf, sizeof buf, "%02x ", b);
        out += buf;
    }
    return out.empty() ? "(nothing)" : out;
}

// Two assemblers fed the same instructions; each one's bytes are compared as it is emitted.
class Pair {
public:
    Pair() {
        const Environment env(Arch::kX64);
        slow_code_.init(env);
        fast_code_.init(env);
        slow_ = std::make_unique<Assembler>(&slow_code_);
        fast_ = std::make_unique<FastAssembler>(&fast_code_);
    }

    // Emits one instruction on both; `short_path` says whether the fast one must have encoded it
    // itself (given room in its buffer). A failure is reported with `what`.
    template <typename Emit>
    void check(const std::string& what, bool short_path, Emit emit) {
        const std::size_t slow_at = slow_->offset();
        const std::size_t fast_at = fast_->offset();
        const uint64_t count = fast_->short_path_count();
        const bool room = fast_->remainingSpace() >= 16;  // else the short path lets asmjit grow the buffer
        const asmjit::Error slow_error = emit(static_cast<Assembler&>(*slow_));
        const asmjit::Error fast_error = emit(*fast_);
        ++checked_;
        EXPECT_EQ(slow_error, fast_error) << what;
        const std::vector<uint8_t> slow(slow_->bufferData() + slow_at, slow_->bufferPtr());
        const std::vector<uint8_t> fast(fast_->bufferData() + fast_at, fast_->bufferPtr());
        EXPECT_EQ(slow, fast) << what << ": asmjit " << hex(slow) << ", short path " << hex(fast);
        EXPECT_EQ(fast_->short_path_count() - count, short_path && room ? 1u : 0u) << what;
        short_paths_ += fast_->short_path_count() - count;
    }
    // The same with different calls on each side: asmjit's form and the short path's own.
    template <typename Slow, typename Fast>
    void check_forms(const std::string& what, Slow slow_emit, Fast fast_emit) {
        const std::size_t slow_at = slow_->offset();
        const std::size_t fast_at = fast_->offset();
        const uint64_t count = fast_->short_path_count();
        const bool room = fast_->remainingSpace() >= 16;
        EXPECT_EQ(slow_emit(static_cast<Assembler&>(*slow_)), kErrorOk) << what;
        const bool took = fast_emit(*fast_);
        ++checked_;
        const std::vector<uint8_t> slow(slow_->bufferData() + slow_at, slow_->bufferPtr());
        const std::vector<uint8_t> fast(fast_->bufferData() + fast_at, fast_->bufferPtr());
        EXPECT_EQ(took, room) << what;
        if (took) {
            EXPECT_EQ(slow, fast) << what << ": asmjit " << hex(slow) << ", short path " << hex(fast);
            EXPECT_EQ(fast_->short_path_count() - count, 1u) << what;
            ++short_paths_;
        } else {
            EXPECT_EQ(fast_->bufferPtr(), fast_->bufferData() + fast_at) << what << ": wrote without room";
            (void)static_cast<Assembler&>(*fast_).embed(slow.data(), slow.size());  // (keep the two in step)
        }
    }
    // Multi-byte NOPs for code alignment, as the back end asks for (asmjit pads with 0x90 else).
    void optimize_align() {
        slow_->addEncodingOptions(EncodingOptions::kOptimizedAlign);
        fast_->addEncodingOptions(EncodingOptions::kOptimizedAlign);
    }
    [[nodiscard]] uint64_t checked() const { return checked_; }
    [[nodiscard]] uint64_t short_paths() const { return short_paths_; }

private:
    CodeHolder slow_code_;
    CodeHolder fast_code_;
    std::unique_ptr<Assembler> slow_;
    std::unique_ptr<FastAssembler> fast_;
    uint64_t checked_ = 0;
    uint64_t short_paths_ = 0;
};

Gp gpq(uint32_t id) {
    return Gp::fromTypeAndId(RegType::kX86_Gpq, id);
}
Gp gpd(uint32_t id) {
    return Gp::fromTypeAndId(RegType::kX86_Gpd, id);
}
Gp gpw(uint32_t id) {
    return Gp::fromTypeAndId(RegType::kX86_Gpw, id);
}
Gp gpb(uint32_t id) {
    return Gp::fromTypeAndId(RegType::kX86_GpbLo, id);
}
std::string name(const Gp& r) {
    return std::to_string(r.size() * 8) + "-bit r" + std::to_string(r.id());
}

// [base + index + disp] (index 16: none), and its name for failure messages.
Mem address(uint32_t base, uint32_t index, int32_t disp, uint32_t size) {
    return index == 16 ? ptr(gpq(base), disp, size) : ptr(gpq(base), gpq(index), 0, disp, size);
}
std::string address_name(uint32_t base, uint32_t index, int32_t disp) {
    return " [r" + std::to_string(base) + (index == 16 ? "" : " + r" + std::to_string(index)) + " + " +
           std::to_string(disp) + "]";
}

const int64_t kImmediates[] = {0,          1,          -1,         2,          127,        128,
                               -128,       -129,       255,        256,        32767,      -32768,
                               65535,      65536,      0x7fffffff, INT32_MIN,  0x80000000, 0xffffffff,
                               0x100000000, -0x80000001, INT64_MIN, INT64_MAX};
const int32_t kDisplacements[] = {0, 1, -1, 8, 127, 128, -128, -129, -512, 4096, 0x7fffffff, INT32_MIN};

TEST(JitFastAssembler, RegisterToRegisterFormsMatchAsmjit) {
    Pair pair;
    for (uint32_t d = 0; d < 16; ++d) {
        for (uint32_t s = 0; s < 16; ++s) {
            for (const bool w64 : {false, true}) {
                const Gp rd = w64 ? gpq(d) : gpd(d);
                const Gp rs = w64 ? gpq(s) : gpd(s);
                const std::string at = " " + name(rd) + ", " + name(rs);
                pair.check("add" + at, true, [&](auto& a) { return a.add(rd, rs); });
                pair.check("or" + at, true, [&](auto& a) { return a.or_(rd, rs); });
                pair.check("and" + at, true, [&](auto& a) { return a.and_(rd, rs); });
                pair.check("sub" + at, true, [&](auto& a) { return a.sub(rd, rs); });
                pair.check("xor" + at, true, [&](auto& a) { return a.xor_(rd, rs); });
                pair.check("cmp" + at, true, [&](auto& a) { return a.cmp(rd, rs); });
                pair.check("test" + at, true, [&](auto& a) { return a.test(rd, rs); });
                pair.check("mov" + at, true, [&](auto& a) { return a.mov(rd, rs); });
                pair.check("imul" + at, true, [&](auto& a) { return a.imul(rd, rs); });
                pair.check("movzx" + at + " (byte)", true, [&](auto& a) { return a.movzx(rd, gpb(s)); });
                pair.check("movzx" + at + " (word)", true, [&](auto& a) { return a.movzx(rd, gpw(s)); });
            }
            // Mixed widths are asmjit's to reject or encode.
            pair.check("add mixed", false, [&](auto& a) { return a.add(gpq(d), gpd(s)); });
        }
    }
    EXPECT_GT(pair.short_paths(), 16u * 16u * 2u * 11u * 9u / 10u);
}

TEST(JitFastAssembler, ImmediateFormsMatchAsmjit) {
    Pair pair;
    for (uint32_t d = 0; d < 16; ++d) {
        for (const bool w64 : {false, true}) {
            const Gp rd = w64 ? gpq(d) : gpd(d);
            for (const int64_t v : kImmediates) {
                const std::string at = " " + name(rd) + ", " + std::to_string(v);
                const bool alu = v >= INT32_MIN && v <= INT32_MAX;
                pair.check("add" + at, alu, [&](auto& a) { return a.add(rd, v); });
                pair.check("or" + at, alu, [&](auto& a) { return a.or_(rd, v); });
                pair.check("and" + at, alu, [&](auto& a) { return a.and_(rd, v); });
                pair.check("sub" + at, alu, [&](auto& a) { return a.sub(rd, v); });
                pair.check("xor" + at, alu, [&](auto& a) { return a.xor_(rd, v); });
                pair.check("cmp" + at, alu, [&](auto& a) { return a.cmp(rd, v); });
                const bool mov = w64 || (v >= INT32_MIN && v <= int64_t{UINT32_MAX});
                pair.check("mov" + at, mov, [&](auto& a) { return a.mov(rd, v); });
                const bool count = v >= 1 && v <= 255;
                pair.check("shl" + at, count, [&](auto& a) { return a.shl(rd, v); });
                pair.check("shr" + at, count, [&](auto& a) { return a.shr(rd, v); });
                pair.check("sar" + at, count, [&](auto& a) { return a.sar(rd, v); });
            }
        }
    }
    for (int count = 1; count < 64; ++count) {
        pair.check("shl rax, " + std::to_string(count), true, [&](auto& a) { return a.shl(rax, count); });
        pair.check("sar r13d, " + std::to_string(count), true, [&](auto& a) { return a.sar(r13d, count); });
    }
    for (uint32_t r = 0; r < 16; ++r) {
        for (const int count : {1, 8, 15}) {
            pair.check("rol word r" + std::to_string(r) + ", " + std::to_string(count), true,
                       [&](auto& a) { return a.rol(gpw(r), count); });
        }
    }
    pair.check("ret", true, [&](auto& a) { return a.ret(); });
    EXPECT_GT(pair.short_paths(), pair.checked() / 2);
}

// Calls fn(base, index, disp) for every base, every index but rsp (16: none) and each displacement.
template <typename Fn>
void for_each_address(Fn fn) {
    for (uint32_t base = 0; base < 16; ++base) {
        for (uint32_t index = 0; index <= 16; ++index) {
            if (index == 4) {
                continue;  // rsp cannot be an index
            }
            for (const int32_t disp : kDisplacements) {
                fn(base, index, disp);
            }
        }
    }
}

TEST(JitFastAssembler, MemoryFormsMatchAsmjit) {
    Pair pair;
    for_each_address([&](uint32_t base, uint32_t index, int32_t disp) {
        auto mem = [&](uint32_t size) { return address(base, index, disp, size); };
        const std::string at = address_name(base, index, disp);
        // The register field: every register for the plain forms, a few for the rest.
        for (uint32_t r = 0; r < 16; ++r) {
            pair.check("load 64" + at, true, [&](auto& a) { return a.mov(gpq(r), mem(8)); });
            pair.check("load 32" + at, true, [&](auto& a) { return a.mov(gpd(r), mem(4)); });
            pair.check("store 64" + at, true, [&](auto& a) { return a.mov(mem(8), gpq(r)); });
            pair.check("store 8" + at, true, [&](auto& a) { return a.mov(mem(1), gpb(r)); });
            pair.check("lea 64" + at, true, [&](auto& a) { return a.lea(gpq(r), mem(0)); });
        }
        for (const uint32_t r : {0u, 3u, 5u, 6u, 7u, 8u, 12u, 13u}) {
            pair.check("movzx byte" + at, true, [&](auto& a) { return a.movzx(gpd(r), mem(1)); });
            pair.check("movzx word" + at, true, [&](auto& a) { return a.movzx(gpd(r), mem(2)); });
            pair.check("movzx 64 byte" + at, true, [&](auto& a) { return a.movzx(gpq(r), mem(1)); });
            pair.check("store 16" + at, true, [&](auto& a) { return a.mov(mem(2), gpw(r)); });
            pair.check("store 32" + at, true, [&](auto& a) { return a.mov(mem(4), gpd(r)); });
            pair.check("lea 32" + at, true, [&](auto& a) { return a.lea(gpd(r), mem(0)); });
            pair.check("load 64 unsized" + at, true, [&](auto& a) { return a.mov(gpq(r), mem(0)); });
        }
        for (const int64_t v : {int64_t{0}, int64_t{-1}, int64_t{127}, int64_t{255}, int64_t{-32768},
                                int64_t{65535}, int64_t{INT32_MIN}, int64_t{0x7fffffff}}) {
            const std::string imm = " <- " + std::to_string(v);
            pair.check("store imm 1" + at + imm, v >= -128 && v <= 255,
                       [&](auto& a) { return a.mov(mem(1), v); });
            pair.check("store imm 2" + at + imm, v >= -32768 && v <= 65535,
                       [&](auto& a) { return a.mov(mem(2), v); });
            pair.check("store imm 4" + at + imm, true, [&](auto& a) { return a.mov(mem(4), v); });
            pair.check("store imm 8" + at + imm, true, [&](auto& a) { return a.mov(mem(8), v); });
        }
    });
    // Forms the short path leaves to asmjit: a scaled index, a size that does not match.
    pair.check("scaled", false, [&](auto& a) { return a.mov(rax, ptr(rbx, rcx, 3, 8, 8)); });
    pair.check("mismatch", false, [&](auto& a) { return a.mov(eax, ptr(rbx, 8, 8)); });
    EXPECT_GT(pair.short_paths(), pair.checked() * 9 / 10);
}

// Loads and stores given as registers and a displacement (load_at, store_at, store_imm_at, the
// lowering's path for plain memory operands) against asmjit's Mem forms of the same instructions.
TEST(JitFastAssembler, AddressFormsMatchTheirMemForms) {
    Pair pair;
    for_each_address([&](uint32_t base, uint32_t index, int32_t disp) {
        auto mem = [&](uint32_t size) { return address(base, index, disp, size); };
        const FastAssembler::Address at{base, index == 16 ? FastAssembler::kNoIndex : index, disp};
        const std::string where = address_name(base, index, disp);
        for (uint32_t r = 0; r < 16; ++r) {
            const Gp q = gpq(r);
            const std::string what = where + " r" + std::to_string(r);
            pair.check_forms("load_at 1" + what, [&](Assembler& a) { return a.movzx(gpd(r), mem(1)); },
                             [&](FastAssembler& a) { return a.load_at(q, at, 1, false); });
            pair.check_forms("load_at 2" + what, [&](Assembler& a) { return a.movzx(gpd(r), mem(2)); },
                             [&](FastAssembler& a) { return a.load_at(q, at, 2, false); });
            pair.check_forms("load_at 4" + what, [&](Assembler& a) { return a.mov(gpd(r), mem(4)); },
                             [&](FastAssembler& a) { return a.load_at(q, at, 4, false); });
            pair.check_forms("load_at 8" + what, [&](Assembler& a) { return a.mov(q, mem(8)); },
                             [&](FastAssembler& a) { return a.load_at(q, at, 8, false); });
            pair.check_forms("load_at 1 signed" + what, [&](Assembler& a) { return a.movsx(q, mem(1)); },
                             [&](FastAssembler& a) { return a.load_at(q, at, 1, true); });
            pair.check_forms("load_at 2 signed" + what, [&](Assembler& a) { return a.movsx(q, mem(2)); },
                             [&](FastAssembler& a) { return a.load_at(q, at, 2, true); });
            pair.check_forms("load_at 4 signed" + what, [&](Assembler& a) { return a.movsxd(q, mem(4)); },
                             [&](FastAssembler& a) { return a.load_at(q, at, 4, true); });
            pair.check_forms("store_at 1" + what, [&](Assembler& a) { return a.mov(mem(1), gpb(r)); },
                             [&](FastAssembler& a) { return a.store_at(at, q, 1); });
            pair.check_forms("store_at 2" + what, [&](Assembler& a) { return a.mov(mem(2), gpw(r)); },
                             [&](FastAssembler& a) { return a.store_at(at, q, 2); });
            pair.check_forms("store_at 4" + what, [&](Assembler& a) { return a.mov(mem(4), gpd(r)); },
                             [&](FastAssembler& a) { return a.store_at(at, q, 4); });
            pair.check_forms("store_at 8" + what, [&](Assembler& a) { return a.mov(mem(8), q); },
                             [&](FastAssembler& a) { return a.store_at(at, q, 8); });
        }
        for (const int32_t v : {0, -1, 1, 127, 128, -128, -129, 255, 32767, -32768, 65535, INT32_MIN, INT32_MAX}) {
            const std::string what = where + " <- " + std::to_string(v);
            pair.check_forms("store_imm_at 1" + what, [&](Assembler& a) { return a.mov(mem(1), v & 0xff); },
                             [&](FastAssembler& a) { return a.store_imm_at(at, v, 1); });
            pair.check_forms("store_imm_at 2" + what, [&](Assembler& a) { return a.mov(mem(2), v & 0xffff); },
                             [&](FastAssembler& a) { return a.store_imm_at(at, v, 2); });
            pair.check_forms("store_imm_at 4" + what, [&](Assembler& a) { return a.mov(mem(4), v); },
                             [&](FastAssembler& a) { return a.store_imm_at(at, v, 4); });
            pair.check_forms("store_imm_at 8" + what, [&](Assembler& a) { return a.mov(mem(8), v); },
                             [&](FastAssembler& a) { return a.store_imm_at(at, v, 8); });
        }
    });
    EXPECT_GT(pair.short_paths(), pair.checked() * 9 / 10);
}

TEST(JitFastAssembler, OneRegisterFormsMatchAsmjit) {
    Pair pair;
    for (uint32_t r = 0; r < 16; ++r) {
        const std::string at = " r" + std::to_string(r);
        pair.check("push" + at, true, [&](auto& a) { return a.push(gpq(r)); });
        pair.check("pop" + at, true, [&](auto& a) { return a.pop(gpq(r)); });
        pair.check("call" + at, true, [&](auto& a) { return a.call(gpq(r)); });
        for (const bool w64 : {false, true}) {
            const Gp g = w64 ? gpq(r) : gpd(r);
            pair.check("neg " + name(g), true, [&](auto& a) { return a.neg(g); });
            pair.check("div " + name(g), true, [&](auto& a) { return a.div(g); });
            pair.check("idiv " + name(g), true, [&](auto& a) { return a.idiv(g); });
            pair.check("bswap " + name(g), true, [&](auto& a) { return a.bswap(g); });
        }
        for (uint32_t s = 0; s < 16; ++s) {
            const std::string both = at + ", r" + std::to_string(s);
            pair.check("movsxd" + both, true, [&](auto& a) { return a.movsxd(gpq(r), gpd(s)); });
            for (const bool w64 : {false, true}) {
                const Gp d = w64 ? gpq(r) : gpd(r);
                pair.check("movsx byte " + name(d) + both, true, [&](auto& a) { return a.movsx(d, gpb(s)); });
                pair.check("movsx word " + name(d) + both, true, [&](auto& a) { return a.movsx(d, gpw(s)); });
            }
        }
        // Forms left to asmjit: 16-bit push, an 8-bit neg.
        pair.check("push word" + at, false, [&](auto& a) { return a.push(gpw(r)); });
        pair.check("neg byte" + at, false, [&](auto& a) { return a.neg(gpb(r)); });
    }
    for (uint32_t r = 0; r < 16; ++r) {
        for (const int64_t v : kImmediates) {
            const std::string at = " r" + std::to_string(r) + ", " + std::to_string(v);
            pair.check("test byte" + at, v >= -128 && v <= 255, [&](auto& a) { return a.test(gpb(r), v); });
            pair.check("test dword" + at, v >= INT32_MIN && v <= int64_t{UINT32_MAX},
                       [&](auto& a) { return a.test(gpd(r), v); });
            pair.check("test qword" + at, v >= INT32_MIN && v <= INT32_MAX, [&](auto& a) { return a.test(gpq(r), v); });
            for (const uint32_t s : {0u, 3u, 11u}) {
                const bool fits = v >= INT32_MIN && v <= INT32_MAX;
                pair.check("imul 32" + at, fits, [&](auto& a) { return a.imul(gpd(r), gpd(s), v); });
                pair.check("imul 64" + at, fits, [&](auto& a) { return a.imul(gpq(r), gpq(s), v); });
            }
        }
        for (uint32_t s = 0; s < 16; ++s) {
            for (uint32_t c = 0; c < 16; ++c) {
                const std::string at = " " + std::to_string(c) + " r" + std::to_string(r) + ", r" + std::to_string(s);
                pair.check("cmov 32" + at, true, [&](auto& a) { return a.cmov(static_cast<CondCode>(c), gpd(r), gpd(s)); });
                pair.check("cmov 64" + at, true, [&](auto& a) { return a.cmov(static_cast<CondCode>(c), gpq(r), gpq(s)); });
            }
            pair.check("cmovb r" + std::to_string(r), true, [&](auto& a) { return a.cmovb(gpq(r), gpq(s)); });
        }
    }
    pair.check("cdq", true, [&](auto& a) { return a.cdq(); });
    pair.check("cqo", true, [&](auto& a) { return a.cqo(); });
    EXPECT_GT(pair.short_paths(), pair.checked() * 9 / 10);
}

// setcc of a byte register, and lea of a scaled index without base (a multiplication by 2, 4 or 8
// the back end makes of a shift): the short path for those, asmjit's (or its error) otherwise.
TEST(JitFastAssembler, SetccAndScaledLeaMatchAsmjit) {
    Pair pair;
    for (uint32_t r = 0; r < 16; ++r) {
        for (uint32_t s = 0; s < 16; ++s) {
            for (uint32_t shift = 0; shift < 5; ++shift) {
                const std::string at = " r" + std::to_string(r) + ", r" + std::to_string(s) + " << " + std::to_string(shift);
                const bool short_path = s != 4 && shift >= 1 && shift <= 3;
                for (const bool w64 : {false, true}) {
                    const Gp d = w64 ? gpq(r) : gpd(r);
                    pair.check((w64 ? "lea scaled 64" : "lea scaled 32") + at, short_path, [&](auto& a) {
                        if constexpr (std::is_same_v<std::decay_t<decltype(a)>, FastAssembler>) {
                            return a.lea_scaled(d, gpq(s), shift);
                        } else {
                            return a.lea(d, asmjit::x86::ptr_abs(0, gpq(s), shift));
                        }
                    });
                }
            }
        }
        for (uint32_t c = 0; c < 16; ++c) {
            const std::string at = " " + std::to_string(c) + " r" + std::to_string(r);
            pair.check("setcc byte" + at, true, [&](auto& a) { return a.set(static_cast<CondCode>(c), gpb(r)); });
            pair.check("setcc dword" + at, false, [&](auto& a) { return a.set(static_cast<CondCode>(c), gpd(r)); });
        }
    }
    EXPECT_GT(pair.short_paths(), 0u);
}

TEST(JitFastAssembler, RegisterMemoryAndCompareFormsMatchAsmjit) {
    Pair pair;
    for (uint32_t base = 0; base < 16; ++base) {
        for (const uint32_t index : {16u, 0u, 5u, 12u, 13u, 15u}) {
            for (const int32_t disp : kDisplacements) {
                auto mem = [&](uint32_t size) { return address(base, index, disp, size); };
                const std::string at = address_name(base, index, disp);
                for (const uint32_t r : {0u, 1u, 4u, 5u, 7u, 8u, 11u, 12u, 13u, 15u}) {
                    for (const bool w64 : {false, true}) {
                        const Gp d = w64 ? gpq(r) : gpd(r);
                        const uint32_t size = w64 ? 8 : 4;
                        pair.check("add " + name(d) + at, true, [&](auto& a) { return a.add(d, mem(size)); });
                        pair.check("sub " + name(d) + at, true, [&](auto& a) { return a.sub(d, mem(size)); });
                        pair.check("cmp " + name(d) + at, true, [&](auto& a) { return a.cmp(d, mem(size)); });
                        pair.check("or " + name(d) + at, true, [&](auto& a) { return a.or_(d, mem(size)); });
                        pair.check("and " + name(d) + at, true, [&](auto& a) { return a.and_(d, mem(size)); });
                        pair.check("xor " + name(d) + at, true, [&](auto& a) { return a.xor_(d, mem(size)); });
                        pair.check("cmp unsized " + name(d) + at, true, [&](auto& a) { return a.cmp(d, mem(0)); });
                        pair.check("movsx byte " + name(d) + at, true, [&](auto& a) { return a.movsx(d, mem(1)); });
                        pair.check("movsx word " + name(d) + at, true, [&](auto& a) { return a.movsx(d, mem(2)); });
                    }
                    pair.check("movsxd" + at, true, [&](auto& a) { return a.movsxd(gpq(r), mem(4)); });
                }
                for (const int64_t v : kImmediates) {
                    const std::string imm = " <- " + std::to_string(v);
                    pair.check("cmp 1" + at + imm, v >= -128 && v <= 255, [&](auto& a) { return a.cmp(mem(1), v); });
                    pair.check("cmp 2" + at + imm, v >= -32768 && v <= 65535,
                               [&](auto& a) { return a.cmp(mem(2), v); });
                    pair.check("cmp 4" + at + imm, v >= INT32_MIN && v <= int64_t{UINT32_MAX},
                               [&](auto& a) { return a.cmp(mem(4), v); });
                    pair.check("cmp 8" + at + imm, v >= INT32_MIN && v <= INT32_MAX,
                               [&](auto& a) { return a.cmp(mem(8), v); });
                    for (const uint32_t size : {4u, 8u}) {
                        const bool fits = size == 4 ? v >= INT32_MIN && v <= int64_t{UINT32_MAX} : v >= INT32_MIN && v <= INT32_MAX;
                        pair.check("add " + std::to_string(size) + at + imm, fits, [&](auto& a) { return a.add(mem(size), v); });
                        pair.check("sub " + std::to_string(size) + at + imm, fits, [&](auto& a) { return a.sub(mem(size), v); });
                    }
                }
                for (const uint32_t size : {4u, 8u}) {
                    pair.check("inc " + std::to_string(size) + at, true, [&](auto& a) { return a.inc(mem(size)); });
                    pair.check("dec " + std::to_string(size) + at, true, [&](auto& a) { return a.dec(mem(size)); });
                }
            }
        }
    }
    // Left to asmjit: a size that does not match the register, a compare with no size.
    pair.check("cmp mismatch", false, [&](auto& a) { return a.cmp(eax, ptr(rbx, 8, 8)); });
    pair.check("cmp no size", false, [&](auto& a) { return a.cmp(ptr(rbx, 8, 0), 1); });
    EXPECT_GT(pair.short_paths(), pair.checked() * 8 / 10);
}

// Atomic read-modify-writes (lock add, or, and, xor, xadd, cmpxchg; xchg): the fast assembler's
// own calls against asmjit's lock-prefixed forms, every register and width, every address form.
TEST(JitFastAssembler, AtomicFormsMatchAsmjit) {
    Pair pair;
    // (The fast assembler's call, and asmjit's with its lock prefix.)
    auto either = [](auto fast, auto slow) {
        return [=](auto& a) {
            if constexpr (std::is_same_v<std::decay_t<decltype(a)>, FastAssembler>) {
                return fast(a);
            } else {
                return slow(a);
            }
        };
    };
    for (uint32_t base = 0; base < 16; ++base) {
        for (const uint32_t index : {16u, 0u, 12u, 13u}) {
            for (const int32_t disp : {0, 8, -129, 4096}) {
                const std::string at = address_name(base, index, disp);
                for (uint32_t r = 0; r < 16; ++r) {
                    for (const bool w64 : {false, true}) {
                        const Gp s = w64 ? gpq(r) : gpd(r);
                        const Gp ax = w64 ? gpq(0) : gpd(0);
                        const Mem m = address(base, index, disp, w64 ? 8 : 4);
                        const std::string what = name(s) + at;
                        pair.check("lock add " + what, true,
                                   either([&](FastAssembler& a) { return a.lock_add(m, s); },
                                          [&](Assembler& a) { return a.lock().add(m, s); }));
                        pair.check("lock or " + what, true,
                                   either([&](FastAssembler& a) { return a.lock_or(m, s); },
                                          [&](Assembler& a) { return a.lock().or_(m, s); }));
                        pair.check("lock and " + what, true,
                                   either([&](FastAssembler& a) { return a.lock_and(m, s); },
                                          [&](Assembler& a) { return a.lock().and_(m, s); }));
                        pair.check("lock xor " + what, true,
                                   either([&](FastAssembler& a) { return a.lock_xor(m, s); },
                                          [&](Assembler& a) { return a.lock().xor_(m, s); }));
                        pair.check("lock xadd " + what, true,
                                   either([&](FastAssembler& a) { return a.lock_xadd(m, s); },
                                          [&](Assembler& a) { return a.lock().xadd(m, s); }));
                        pair.check("lock cmpxchg " + what, true,
                                   either([&](FastAssembler& a) { return a.lock_cmpxchg(m, s, ax); },
                                          [&](Assembler& a) { return a.lock().cmpxchg(m, s, ax); }));
                        pair.check("xchg " + what, true, [&](auto& a) { return a.xchg(m, s); });
                    }
                }
            }
        }
    }
    EXPECT_GT(pair.short_paths(), pair.checked() * 9 / 10);
}

// Code alignment: every padding from every offset within 64 bytes, to 16 and to 64.
// The frame zeroing's SSE forms: movups of each xmm register to every address form, xorps of
// every pair.
TEST(JitFastAssembler, SseStoresAndXorsMatchAsmjit) {
    Pair pair;
    for (uint32_t x = 0; x < 16; ++x) {
        const Xmm reg = xmm(x);
        for (uint32_t y = 0; y < 16; ++y) {
            pair.check("xorps xmm" + std::to_string(x) + ", xmm" + std::to_string(y), true,
                       [&](auto& a) { return a.xorps(reg, xmm(y)); });
        }
        for (uint32_t base = 0; base < 16; ++base) {
            for (const uint32_t index : {16u, 0u, 5u, 11u, 12u, 13u}) {
                for (const int32_t disp : kDisplacements) {
                    const std::string at = address_name(base, index, disp);
                    pair.check("movups" + at + ", xmm" + std::to_string(x), true,
                               [&](auto& a) { return a.movups(address(base, index, disp, 16), reg); });
                    pair.check("movups unsized" + at + ", xmm" + std::to_string(x), true,
                               [&](auto& a) { return a.movups(address(base, index, disp, 0), reg); });
                }
            }
        }
    }
    EXPECT_GT(pair.short_paths(), 0u);
}

TEST(JitFastAssembler, AlignmentPaddingMatchesAsmjit) {
    Pair pair;
    pair.optimize_align();
    for (uint32_t before = 0; before < 64; ++before) {
        for (const uint32_t alignment : {1u, 4u, 16u, 64u}) {
            for (uint32_t k = 0; k < before; ++k) {
                pair.check("filler", false, [&](auto& a) { return a.nop(); });
            }
            pair.check("align " + std::to_string(alignment) + " after " + std::to_string(before), true,
                       [&](auto& a) { return a.align(AlignMode::kCode, alignment); });
        }
    }
    pair.check("align data", false, [&](auto& a) { return a.align(AlignMode::kData, 16); });
}

TEST(JitFastAssembler, PendingOptionsAndLoggersTakeAsmjitsPath) {
    CodeHolder code;
    code.init(Environment(Arch::kX64));
    FastAssembler a(&code);
    a.lock().add(ptr(rdi, 0, 8), rax);  // (a memory destination: asmjit's)
    a.rep();                            // pending for the next instruction
    a.mov(rax, rbx);
    EXPECT_EQ(a.short_path_count(), 0u);
    StringLogger logger;
    code.setLogger(&logger);
    a.add(rax, rbx);
    EXPECT_EQ(a.short_path_count(), 0u);
    EXPECT_NE(std::string(logger.data()).find("add rax, rbx"), std::string::npos);
    code.resetLogger();
    a.add(rax, rbx);
    EXPECT_EQ(a.short_path_count(), 1u);
}

// asmjit's assembler and the fast one, each on code of its own, fed the same sequence and
// compared once it is done (jumps to labels bound later are filled in only then).
struct Twins {
    static CodeHolder& ready(CodeHolder& code) {
        code.init(Environment(Arch::kX64));
        return code;
    }
    CodeHolder slow_code;
    CodeHolder fast_code;
    Assembler slow{&ready(slow_code)};
    FastAssembler fast{&ready(fast_code)};

    // Resolves both and returns whether their bytes are the same (and says where not).
    ::testing::AssertionResult same_code() {
        if (fast.resolve_jumps() != kErrorOk || slow_code.flatten() != kErrorOk ||
            slow_code.resolveUnresolvedLinks() != kErrorOk || slow_code.relocateToBase(0) != kErrorOk) {
            return ::testing::AssertionFailure() << "cannot resolve the jumps";
        }
        const CodeBuffer& a = slow_code.textSection()->buffer();
        const CodeBuffer& b = fast_code.textSection()->buffer();
        const std::vector<uint8_t> slow_bytes(a.data(), a.data() + a.size());
        const std::vector<uint8_t> fast_bytes(b.data(), b.data() + b.size());
        if (slow_bytes != fast_bytes) {
            return ::testing::AssertionFailure() << "asmjit " << hex(slow_bytes) << ", short path " << hex(fast_bytes);
        }
        return ::testing::AssertionSuccess();
    }
};

// Jumps, calls and binds: the same random sequence of them (labels bound before and after their
// jumps, at distances on both sides of the rel8 limit) on asmjit and on the short path, whose
// displacements to labels not bound yet are filled in by resolve_jumps(); the code must be the
// same, byte for byte, and the short path must have taken nearly all of them.
TEST(JitFastAssembler, JumpsCallsAndBindsMatchAsmjit) {
    for (uint64_t seed = 1; seed <= 40; ++seed) {
        Twins twins;
        Assembler& slow = twins.slow;
        FastAssembler& fast = twins.fast;
        std::vector<Label> slow_labels;
        std::vector<Label> fast_labels;
        std::vector<bool> bound;
        uint64_t state = seed * 0x9e3779b97f4a7c15ull;
        const auto next = [&state](uint64_t n) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            return (state >> 33) % n;
        };
        for (int k = 0; k < 24; ++k) {
            slow_labels.push_back(slow.newLabel());
            fast_labels.push_back(fast.newLabel());
            bound.push_back(false);
        }
        unsigned jumps = 0;
        for (int step = 0; step < 600; ++step) {
            const auto l = static_cast<std::size_t>(next(slow_labels.size()));
            const uint64_t what = next(10);
            if (what == 0 && !bound[l]) {
                ASSERT_EQ(slow.bind(slow_labels[l]), fast.bind(fast_labels[l]));
                bound[l] = true;
            } else if (what <= 2) {
                // Filler of 1 to 60 bytes: distances that cross the rel8 limit now and then.
                const auto bytes = static_cast<unsigned>(1 + next(60));
                for (unsigned b = 0; b < bytes; ++b) {
                    slow.nop();
                    fast.nop();
                }
            } else if (what == 3) {
                EXPECT_EQ(slow.jmp(slow_labels[l]), fast.jmp(fast_labels[l]));
                ++jumps;
            } else if (what == 4) {
                EXPECT_EQ(slow.call(slow_labels[l]), fast.call(fast_labels[l]));
                ++jumps;
            } else if (what == 5) {
                EXPECT_EQ(slow.jz(slow_labels[l]), fast.jz(fast_labels[l]));
                EXPECT_EQ(slow.jnz(slow_labels[l]), fast.jnz(fast_labels[l]));
                EXPECT_EQ(slow.js(slow_labels[l]), fast.js(fast_labels[l]));
                jumps += 3;
            } else {
                const auto cc = static_cast<CondCode>(next(16));
                EXPECT_EQ(slow.j(cc, slow_labels[l]), fast.j(cc, fast_labels[l]));
                ++jumps;
            }
        }
        for (std::size_t l = 0; l < slow_labels.size(); ++l) {
            if (!bound[l]) {
                ASSERT_EQ(slow.bind(slow_labels[l]), fast.bind(fast_labels[l]));
            }
        }
        EXPECT_TRUE(twins.same_code()) << "seed " << seed;
        for (std::size_t l = 0; l < slow_labels.size(); ++l) {
            EXPECT_EQ(twins.slow_code.labelOffset(slow_labels[l]), fast.label_offset(fast_labels[l]));
        }
        EXPECT_GT(fast.short_path_count(), jumps * 9 / 10) << "seed " << seed;
    }
}

// The assembler's own labels where its short path is off: a jump emitted while the buffer has
// no room yet (asmjit grows it through embed), to a label bound later and to one bound before;
// the same bytes and offsets as asmjit's, and CodeHolder knows neither label. With a logger
// attached when it is made, its labels are asmjit's (the listing names them).
TEST(JitFastAssembler, OwnLabelsTakeJumpsWithoutRoomAndLoggersGetAsmjitsLabels) {
    Twins twins;
    Assembler& slow = twins.slow;
    FastAssembler& fast = twins.fast;
    const Label slow_later = slow.newLabel();
    const Label fast_later = fast.newLabel();
    ASSERT_LT(fast.remainingSpace(), 16u);
    ASSERT_EQ(slow.jz(slow_later), kErrorOk);
    ASSERT_EQ(fast.jz(fast_later), kErrorOk);  // (no room: through embed)
    EXPECT_EQ(fast.short_path_count(), 0u);
    EXPECT_EQ(twins.fast_code.labelCount(), 0u);
    const Label slow_before = slow.newLabel();
    const Label fast_before = fast.newLabel();
    ASSERT_EQ(slow.bind(slow_before), kErrorOk);
    ASSERT_EQ(fast.bind(fast_before), kErrorOk);
    EXPECT_EQ(fast.bind(fast_before), kErrorLabelAlreadyBound);
    for (int i = 0; i < 3; ++i) {
        slow.nop();
        fast.nop();
    }
    ASSERT_EQ(slow.jmp(slow_before), kErrorOk);  // short, backwards
    ASSERT_EQ(fast.jmp(fast_before), kErrorOk);
    ASSERT_EQ(slow.bind(slow_later), kErrorOk);
    ASSERT_EQ(fast.bind(fast_later), kErrorOk);
    EXPECT_TRUE(twins.same_code());
    EXPECT_EQ(twins.slow_code.labelOffset(slow_later), fast.label_offset(fast_later));
    EXPECT_EQ(twins.slow_code.labelOffset(slow_before), fast.label_offset(fast_before));
    EXPECT_EQ(twins.fast_code.labelCount(), 0u);

    CodeHolder logged;
    logged.init(Environment(Arch::kX64));
    StringLogger logger;
    logged.setLogger(&logger);
    FastAssembler listed(&logged);
    const Label l = listed.newLabel();
    EXPECT_EQ(logged.labelCount(), 1u);
    ASSERT_EQ(listed.bind(l), kErrorOk);
    ASSERT_EQ(listed.jmp(l), kErrorOk);
    EXPECT_NE(std::string(logger.data()).find("jmp L0"), std::string::npos) << logger.data();
}

// A jump to a label that is never bound: resolve_jumps() says so (the code is not copied out).
TEST(JitFastAssembler, AJumpToALabelNeverBoundIsAnError) {
    CodeHolder code;
    code.init(Environment(Arch::kX64));
    FastAssembler a(&code);
    const Label never = a.newLabel();
    a.nop();  // (asmjit's: the buffer gets room for the short path)
    a.jmp(never);
    EXPECT_EQ(a.short_path_count(), 1u);
    EXPECT_EQ(a.resolve_jumps(), kErrorInvalidLabel);
}

// Compiles the program in both modes with a listing (asmjit encodes everything) and without (the
// short path) and expects the same bytes.
void expect_same_code_with_and_without_a_listing(const vm::Program& program, const vm::HelperTable& helpers,
                                                 const std::string& what) {
    for (const bool checked : {false, true}) {
        JitOptions with;
        with.checked = checked;
        with.keep_listing = true;
        JitOptions without = with;
        without.keep_listing = false;
        const Expected<Compiled> a = compile_x86_64(program, helpers, with);
        ASSERT_TRUE(a) << what;
        const std::vector<uint8_t> listed(a->code.begin(), a->code.end());  // (b's compile reuses the buffer)
        const Expected<Compiled> b = compile_x86_64(program, helpers, without);
        ASSERT_TRUE(b) << what;
        EXPECT_EQ(listed, std::vector<uint8_t>(b->code.begin(), b->code.end()))
            << what << (checked ? " (checked)" : "") << "\n" << a->listing;
    }
}

// Whole programs: the code compiled with a listing (asmjit encodes everything) and without (the
// short path) is the same, byte for byte, in both modes.
TEST(JitFastAssembler, CompiledProgramsAreTheSameWithAndWithoutTheShortPath) {
    const vm::HelperTable helpers = test::mix_helpers();
    for (uint64_t seed = 1; seed <= 60; ++seed) {
        test::RandomProgramOptions options;
        options.statements = 30;
        options.functions = seed % 3 == 0 ? 2 : 1;
        const Expected<vm::Program> program = vm::Program::from_raw(test::random_program(seed, options));
        ASSERT_TRUE(program) << program.error().message();
        expect_same_code_with_and_without_a_listing(*program, helpers, "seed " + std::to_string(seed));
    }
}

// Compiles without a listing reuse the thread's assembler, rewound (FastAssembler::rewind), and
// its buffer, grown as needed: programs small and large, one after another, each get the code a
// compile with a listing (a fresh CodeHolder and assembler) gives them.
TEST(JitFastAssembler, CompilesOneAfterAnotherOnAThreadGiveTheSameCodeAsAFreshOne) {
    const vm::HelperTable helpers = test::mix_helpers();
    std::vector<vm::Program> programs;
    for (const unsigned statements : {20u, 1500u, 3u, 400u, 3000u, 10u}) {
        test::RandomProgramOptions options;
        options.statements = statements;
        options.functions = 2;
        Expected<vm::Program> program = vm::Program::from_raw(test::random_program(statements, options));
        ASSERT_TRUE(program) << program.error().message();
        programs.push_back(std::move(*program));
    }
    std::vector<std::vector<uint8_t>> fresh;
    for (const vm::Program& p : programs) {
        JitOptions listed;
        listed.keep_listing = true;
        const Expected<Compiled> c = compile_x86_64(p, helpers, listed);
        ASSERT_TRUE(c);
        fresh.emplace_back(c->code.begin(), c->code.end());
    }
    for (int round = 0; round < 2; ++round) {
        for (std::size_t k = 0; k < programs.size(); ++k) {
            const Expected<Compiled> c = compile_x86_64(programs[k], helpers, {});
            ASSERT_TRUE(c);
            EXPECT_EQ(std::vector<uint8_t>(c->code.begin(), c->code.end()), fresh[k])
                << "program " << k << " (" << programs[k].size() << " instructions), round " << round;
        }
    }
}

// Legacy packet loads, which the short path encodes a whole sequence at a time: every width, both
// forms, every source register, offsets at each encoding's edges, in both modes; the same code
// with and without a listing, and the short path taken without one.
TEST(JitFastAssembler, PacketLoadsAreTheSameWithAndWithoutTheShortPath) {
    for (const char* load : {"ldabsb", "ldabsh", "ldabsw", "ldindb", "ldindh", "ldindw"}) {
        const bool indirect = std::string(load).rfind("ldind", 0) == 0;
        for (unsigned src = 0; src <= (indirect ? 10u : 0u); ++src) {
            for (int32_t imm : {0, 1, 3, 123, 124, 127, 128, 0x7fff, 0x7ffffffb, 0x7fffffff, -1, -128}) {
                std::string text = "mov %r6, 1\nmov %r7, 2\nmov %r8, 3\nmov %r9, 4\n";
                text += std::string(load) + (indirect ? " %r" + std::to_string(src) + "," : "") + " " +
                        std::to_string(imm) + "\nexit";
                const Expected<std::vector<vm::RawInsn>> raw = vm::assemble(text);
                ASSERT_TRUE(raw) << raw.error().message() << "\n" << text;
                const Expected<vm::Program> program = vm::Program::from_raw(*raw);
                ASSERT_TRUE(program) << program.error().message();
                expect_same_code_with_and_without_a_listing(*program, {}, text);
            }
        }
    }
}

}  // namespace
}  // namespace bpfvm::jit
