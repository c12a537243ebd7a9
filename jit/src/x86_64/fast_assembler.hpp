// asmjit's x86 Assembler with a short path for the instructions lowering emits most: ALU, moves,
// loads and stores on a base register (plus an index and a displacement), lea, movzx, imul and
// shifts by a constant, on 32- and 64-bit general-purpose registers; and jumps, calls and label
// binds (private to jit/).
//
// asmjit's _emit is general: it looks the instruction up, matches its operands against every
// encoding the instruction has, and picks the shortest. On the machines we measure that costs
// about 16 ns an instruction, a third of a compile. The short path encodes these forms directly
// into the code buffer, byte for byte what asmjit chooses (tests/jit_fast_assembler_test.cpp
// compares the two over every register pair, width and a set of immediates and displacements,
// and compiled programs with and without a listing), and hands everything else to asmjit:
// other operand kinds, pending instruction options (`lock`), a logger (listings and goldens see
// asmjit's own encoding), or too little room left in the buffer (asmjit grows it).
//
// Jumps and calls to a label already bound are encoded here in full, short (rel8) where asmjit
// would choose it. To a label not bound yet they are encoded with a 32-bit displacement, as asmjit
// does, but instead of asmjit's link (an allocation per jump, walked when the label is bound) the
// place of the displacement goes on a list that resolve_jumps() fills in once every label is
// bound: the caller must call it before it copies the code out.
//
// Labels are this assembler's own unless a logger is attached when it is made: an id with
// kOwnLabel set, and an offset in a table here (asmjit's labels cost an allocation, zeroed, and a
// list entry each: about 180 instructions a label, 4% of a compile). Only this class's calls take
// them: jumps, calls, bind, label_offset() in place of CodeHolder's. With a logger (listings and
// goldens) every label is asmjit's and its encoder takes the jumps, so that the text shows them.
#pragma once

#include <asmjit/x86.h>

#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "bpfvm/vm/expected.hpp"

namespace bpfvm::jit {

class FastAssembler : public asmjit::x86::Assembler {
public:
    using Error = asmjit::Error;
    using Gp = asmjit::x86::Gp;
    using Mem = asmjit::x86::Mem;
    using Imm = asmjit::Imm;

    using Label = asmjit::Label;
    using CondCode = asmjit::x86::CondCode;

    // A memory operand this path encodes: a 64-bit base register, optionally a 64-bit index with
    // scale 1, a 32-bit displacement, no segment, no label, no absolute or relative form.
    struct Address {
        uint32_t base;
        uint32_t index;  // kNoIndex if none
        int32_t disp;
    };
    static constexpr uint32_t kNoIndex = 0xff;

    explicit FastAssembler(asmjit::CodeHolder* code) : Assembler(code), own_labels_(_logger == nullptr) {
        fixups_.swap(spare_fixups_);
        fixups_.clear();
        label_offsets_.swap(spare_label_offsets_);
        label_offsets_.clear();
    }
    ~FastAssembler() override {
        if (fixups_.capacity() > spare_fixups_.capacity()) {
            fixups_.swap(spare_fixups_);
        }
        if (label_offsets_.capacity() > spare_label_offsets_.capacity()) {
            label_offsets_.swap(spare_label_offsets_);
        }
    }

    // Back to an empty section for the next program, keeping the buffer and this assembler
    // attached (no CodeHolder reset, init and attach, about 1,100 instructions a compile). Only
    // for an assembler of own labels whose CodeHolder has nothing else: false, and nothing
    // changed, otherwise (the caller then starts afresh).
    bool rewind() {
        if (!own_labels_ || _code == nullptr || _code->labelCount() != 0 || !_code->relocEntries().empty() ||
            _code->sectionCount() != 1 || _code->emitters().size() != 1 || _section != _code->textSection()) {
            return false;
        }
        _section->_buffer._size = 0;
        _bufferPtr = _bufferData;
        lock_pending_ = false;
        fixups_.clear();
        label_offsets_.clear();
        return true;
    }

    // A new label: this assembler's own (see above), or asmjit's when a logger was attached.
    Label newLabel() override {
        if (!own_labels_) {
            return Assembler::newLabel();
        }
        label_offsets_.push_back(kUnbound);
        return Label(kOwnLabel | static_cast<uint32_t>(label_offsets_.size() - 1));
    }
    // Where a bound label is in the section (its offset from the start of the code: one section),
    // as CodeHolder::labelOffsetFromBase; for either kind of label.
    [[nodiscard]] uint64_t label_offset(const Label& l) const {
        if (is_own(l.id())) {
            return label_offsets_[l.id() & ~kOwnLabel];
        }
        return _code->labelOffsetFromBase(l);
    }
    // Bytes this assembler encoded before (see bytes_since), written again in one copy: false,
    // and nothing written, where the short path is off or the buffer lacks the room.
    bool put_bytes(const uint8_t* data, std::size_t n) {
        uint8_t* p = start();
        if (p == nullptr || static_cast<std::size_t>(_bufferEnd - p) < n) {
            return false;
        }
        std::memcpy(p, data, n);
        return finish(p + n);
    }
    // The code from offset `from` to here.
    [[nodiscard]] std::span<const uint8_t> bytes_since(std::size_t from) const {
        return {_bufferData + from, static_cast<std::size_t>(_bufferPtr - _bufferData) - from};
    }

    FastAssembler(const FastAssembler&) = delete;
    FastAssembler& operator=(const FastAssembler&) = delete;

    // The base class's overloads stay visible; those declared here hide the ones with the same
    // operands.
    using Assembler::add;
    using Assembler::align;
    using Assembler::and_;
    using Assembler::bswap;
    using Assembler::call;
    using Assembler::cdq;
    using Assembler::cmov;
    using Assembler::cmovb;
    using Assembler::cqo;
    using Assembler::div;
    using Assembler::idiv;
    using Assembler::j;
    using Assembler::ja;
    using Assembler::jb;
    using Assembler::jbe;
    using Assembler::je;
    using Assembler::jmp;
    using Assembler::jne;
    using Assembler::jnz;
    using Assembler::jz;
    using Assembler::cmp;
    using Assembler::imul;
    using Assembler::lea;
    using Assembler::mov;
    using Assembler::movups;
    using Assembler::xorps;
    using Assembler::movsx;
    using Assembler::movsxd;
    using Assembler::movzx;
    using Assembler::neg;
    using Assembler::or_;
    using Assembler::pop;
    using Assembler::push;
    using Assembler::sar;
    using Assembler::shl;
    using Assembler::shr;
    using Assembler::sub;
    using Assembler::test;
    using Assembler::xor_;
    using Assembler::xchg;

    Error add(const Gp& d, const Gp& s) { return rr(0x01, d, s) ? asmjit::kErrorOk : Assembler::add(d, s); }
    Error or_(const Gp& d, const Gp& s) { return rr(0x09, d, s) ? asmjit::kErrorOk : Assembler::or_(d, s); }
    Error and_(const Gp& d, const Gp& s) { return rr(0x21, d, s) ? asmjit::kErrorOk : Assembler::and_(d, s); }
    Error sub(const Gp& d, const Gp& s) { return rr(0x29, d, s) ? asmjit::kErrorOk : Assembler::sub(d, s); }
    Error xor_(const Gp& d, const Gp& s) { return rr(0x31, d, s) ? asmjit::kErrorOk : Assembler::xor_(d, s); }
    Error cmp(const Gp& d, const Gp& s) { return rr(0x39, d, s) ? asmjit::kErrorOk : Assembler::cmp(d, s); }
    Error test(const Gp& d, const Gp& s) { return rr(0x85, d, s) ? asmjit::kErrorOk : Assembler::test(d, s); }
    Error mov(const Gp& d, const Gp& s) { return rr(0x89, d, s) ? asmjit::kErrorOk : Assembler::mov(d, s); }

    Error add(const Gp& d, const Imm& i) { return ri(0, d, i) ? asmjit::kErrorOk : Assembler::add(d, i); }
    Error or_(const Gp& d, const Imm& i) { return ri(1, d, i) ? asmjit::kErrorOk : Assembler::or_(d, i); }
    Error and_(const Gp& d, const Imm& i) { return ri(4, d, i) ? asmjit::kErrorOk : Assembler::and_(d, i); }
    Error sub(const Gp& d, const Imm& i) { return ri(5, d, i) ? asmjit::kErrorOk : Assembler::sub(d, i); }
    Error xor_(const Gp& d, const Imm& i) { return ri(6, d, i) ? asmjit::kErrorOk : Assembler::xor_(d, i); }
    Error cmp(const Gp& d, const Imm& i) { return ri(7, d, i) ? asmjit::kErrorOk : Assembler::cmp(d, i); }
    Error mov(const Gp& d, const Imm& i) { return mov_ri(d, i) ? asmjit::kErrorOk : Assembler::mov(d, i); }
    Error shl(const Gp& d, const Imm& i) { return shift(4, d, i) ? asmjit::kErrorOk : Assembler::shl(d, i); }
    Error shr(const Gp& d, const Imm& i) { return shift(5, d, i) ? asmjit::kErrorOk : Assembler::shr(d, i); }
    Error sar(const Gp& d, const Imm& i) { return shift(7, d, i) ? asmjit::kErrorOk : Assembler::sar(d, i); }
    Error rol(const Gp& d, const Imm& i) { return shift(0, d, i) ? asmjit::kErrorOk : Assembler::rol(d, i); }

    Error imul(const Gp& d, const Gp& s) { return imul_rr(d, s) ? asmjit::kErrorOk : Assembler::imul(d, s); }
    Error movzx(const Gp& d, const Gp& s) { return extend_rr(0xb6, d, s) ? asmjit::kErrorOk : Assembler::movzx(d, s); }

    Error mov(const Gp& d, const Mem& m) { return load(d, m) ? asmjit::kErrorOk : Assembler::mov(d, m); }
    Error movzx(const Gp& d, const Mem& m) { return extend_rm(0xb6, d, m) ? asmjit::kErrorOk : Assembler::movzx(d, m); }
    Error mov(const Mem& m, const Gp& s) { return store(m, s) ? asmjit::kErrorOk : Assembler::mov(m, s); }
    // The frame zeroing's SSE forms: movups to memory, xorps of two registers.
    Error movups(const Mem& m, const asmjit::x86::Xmm& x) {
        return store_xmm(m, x) ? asmjit::kErrorOk : Assembler::movups(m, x);
    }
    Error xorps(const asmjit::x86::Xmm& d, const asmjit::x86::Xmm& s) {
        return xorps_rr(d, s) ? asmjit::kErrorOk : Assembler::xorps(d, s);
    }
    Error mov(const Mem& m, const Imm& i) { return store_imm(m, i) ? asmjit::kErrorOk : Assembler::mov(m, i); }
    Error lea(const Gp& d, const Mem& m) { return lea_rm(d, m) ? asmjit::kErrorOk : Assembler::lea(d, m); }
    // lea d, [index << shift] (shift 1-3, no base: a multiplication by 2, 4 or 8 off the shift ports).
    Error lea_scaled(const Gp& d, const Gp& index, uint32_t shift) {
        return lea_index(d, index, shift) ? asmjit::kErrorOk : Assembler::lea(d, asmjit::x86::ptr_abs(0, index, shift));
    }

    // One-register forms, and the sign extensions of rax.
    Error push(const Gp& r) { return push_pop(0x50, r) ? asmjit::kErrorOk : Assembler::push(r); }
    Error pop(const Gp& r) { return push_pop(0x58, r) ? asmjit::kErrorOk : Assembler::pop(r); }
    Error call(const Gp& r) { return call_reg(r) ? asmjit::kErrorOk : Assembler::call(r); }
    Error neg(const Gp& r) { return unary(0xf7, 3, r) ? asmjit::kErrorOk : Assembler::neg(r); }
    Error div(const Gp& r) { return unary(0xf7, 6, r) ? asmjit::kErrorOk : Assembler::div(r); }
    Error idiv(const Gp& r) { return unary(0xf7, 7, r) ? asmjit::kErrorOk : Assembler::idiv(r); }
    Error bswap(const Gp& r) { return bswap_r(r) ? asmjit::kErrorOk : Assembler::bswap(r); }
    Error cdq() { return bytes(0x99, 0) ? asmjit::kErrorOk : Assembler::cdq(); }
    Error cqo() { return bytes(0x48, 0x99) ? asmjit::kErrorOk : Assembler::cqo(); }

    Error test(const Gp& d, const Imm& i) { return test_ri(d, i) ? asmjit::kErrorOk : Assembler::test(d, i); }
    Error imul(const Gp& d, const Gp& s, const Imm& i) {
        return imul_rri(d, s, i) ? asmjit::kErrorOk : Assembler::imul(d, s, i);
    }
    Error cmov(CondCode c, const Gp& d, const Gp& s) {
        return cmov_rr(static_cast<uint8_t>(c), d, s) ? asmjit::kErrorOk : Assembler::cmov(c, d, s);
    }
    Error cmovb(const Gp& d, const Gp& s) { return cmov_rr(cc(CondCode::kB), d, s) ? asmjit::kErrorOk : Assembler::cmovb(d, s); }
    Error set(CondCode c, const Gp& d) {
        return set_r(static_cast<uint8_t>(c), d) ? asmjit::kErrorOk : Assembler::set(c, d);
    }

    // Register and memory: ALU from memory, compare memory with an immediate, sign extensions.
    Error add(const Gp& d, const Mem& m) { return alu_rm(0x03, d, m) ? asmjit::kErrorOk : Assembler::add(d, m); }
    Error sub(const Gp& d, const Mem& m) { return alu_rm(0x2b, d, m) ? asmjit::kErrorOk : Assembler::sub(d, m); }
    Error cmp(const Gp& d, const Mem& m) { return alu_rm(0x3b, d, m) ? asmjit::kErrorOk : Assembler::cmp(d, m); }
    Error or_(const Gp& d, const Mem& m) { return alu_rm(0x0b, d, m) ? asmjit::kErrorOk : Assembler::or_(d, m); }
    Error and_(const Gp& d, const Mem& m) { return alu_rm(0x23, d, m) ? asmjit::kErrorOk : Assembler::and_(d, m); }
    Error xor_(const Gp& d, const Mem& m) { return alu_rm(0x33, d, m) ? asmjit::kErrorOk : Assembler::xor_(d, m); }
    Error cmp(const Mem& m, const Imm& i) { return alu_mi(7, m, i) ? asmjit::kErrorOk : Assembler::cmp(m, i); }
    Error add(const Mem& m, const Imm& i) { return alu_mi(0, m, i) ? asmjit::kErrorOk : Assembler::add(m, i); }
    Error sub(const Mem& m, const Imm& i) { return alu_mi(5, m, i) ? asmjit::kErrorOk : Assembler::sub(m, i); }
    Error inc(const Mem& m) { return unary_m(0, m) ? asmjit::kErrorOk : Assembler::inc(m); }
    Error dec(const Mem& m) { return unary_m(1, m) ? asmjit::kErrorOk : Assembler::dec(m); }
    Error ret() { return bytes(0xc3, 0) ? asmjit::kErrorOk : Assembler::ret(); }
    Error movsxd(const Gp& d, const Gp& s) { return movsxd_rr(d, s) ? asmjit::kErrorOk : Assembler::movsxd(d, s); }
    Error movsxd(const Gp& d, const Mem& m) { return movsxd_rm(d, m) ? asmjit::kErrorOk : Assembler::movsxd(d, m); }
    Error movsx(const Gp& d, const Gp& s) { return extend_rr(0xbe, d, s) ? asmjit::kErrorOk : Assembler::movsx(d, s); }
    Error movsx(const Gp& d, const Mem& m) { return extend_rm(0xbe, d, m) ? asmjit::kErrorOk : Assembler::movsx(d, m); }

    // Atomic read-modify-writes of memory with a 32- or 64-bit register: lock add|or|and|xor,
    // lock xadd, lock cmpxchg (rax or eax implied) and xchg (which locks without the prefix).
    // Where the short path is off, asmjit's encoder takes them, lock prefix and all.
    Error lock_add(const Mem& m, const Gp& r) { return locked(0x01, false, true, m, r) ? asmjit::kErrorOk : Assembler::lock().add(m, r); }
    Error lock_or(const Mem& m, const Gp& r) { return locked(0x09, false, true, m, r) ? asmjit::kErrorOk : Assembler::lock().or_(m, r); }
    Error lock_and(const Mem& m, const Gp& r) { return locked(0x21, false, true, m, r) ? asmjit::kErrorOk : Assembler::lock().and_(m, r); }
    Error lock_xor(const Mem& m, const Gp& r) { return locked(0x31, false, true, m, r) ? asmjit::kErrorOk : Assembler::lock().xor_(m, r); }
    Error lock_xadd(const Mem& m, const Gp& r) {
        return locked(0xc1, true, true, m, r) ? asmjit::kErrorOk : Assembler::lock().xadd(m, r);
    }
    Error lock_cmpxchg(const Mem& m, const Gp& r, const Gp& ax) {
        return ax.id() == 0 && ax.baseSignature() == r.baseSignature() && locked(0xb1, true, true, m, r)
                   ? asmjit::kErrorOk
                   : Assembler::lock().cmpxchg(m, r, ax);
    }
    Error xchg(const Mem& m, const Gp& r) { return locked(0x87, false, false, m, r) ? asmjit::kErrorOk : Assembler::xchg(m, r); }
    // Their short path: [lock] [REX] [0f] opcode ModRM... False, with nothing written, where it is
    // off or the operands are not of those forms.
    bool locked(uint8_t opcode, bool escape, bool lock, const Mem& m, const Gp& r) {
        uint8_t* p = start();
        Address a{};
        if (p == nullptr || !is32or64(r) || !address_of(m, a)) {
            return false;
        }
        if (lock) {
            *p++ = 0xf0;
        }
        return reg_mem(p, r.isGpq(), r.id(), a, opcode, escape);
    }

    Error jmp(const Label& l) { return jump(kJmp, l) ? asmjit::kErrorOk : Assembler::jmp(l); }
    Error call(const Label& l) { return jump(kCall, l) ? asmjit::kErrorOk : Assembler::call(l); }
    Error j(CondCode c, const Label& l) {
        return jump(static_cast<uint8_t>(c), l) ? asmjit::kErrorOk : Assembler::j(c, l);
    }
    // (Each falls back to its own name: a listing shows jz and je, jnz and jne, as written.)
    Error ja(const Label& l) { return jump(cc(CondCode::kA), l) ? asmjit::kErrorOk : Assembler::ja(l); }
    Error jb(const Label& l) { return jump(cc(CondCode::kB), l) ? asmjit::kErrorOk : Assembler::jb(l); }
    Error jbe(const Label& l) { return jump(cc(CondCode::kBE), l) ? asmjit::kErrorOk : Assembler::jbe(l); }
    Error je(const Label& l) { return jump(cc(CondCode::kE), l) ? asmjit::kErrorOk : Assembler::je(l); }
    Error jne(const Label& l) { return jump(cc(CondCode::kNE), l) ? asmjit::kErrorOk : Assembler::jne(l); }
    Error jnz(const Label& l) { return jump(cc(CondCode::kNZ), l) ? asmjit::kErrorOk : Assembler::jnz(l); }
    Error jz(const Label& l) { return jump(cc(CondCode::kZ), l) ? asmjit::kErrorOk : Assembler::jz(l); }
    Error js(const Label& l) { return jump(cc(CondCode::kS), l) ? asmjit::kErrorOk : Assembler::js(l); }

    // Pads with NOPs to a multiple of `alignment` (a power of two up to 64) when the emitter asks
    // for multi-byte NOPs, as asmjit does (tests compare every padding); other modes, and
    // single-byte padding, are asmjit's.
    Error align(asmjit::AlignMode mode, uint32_t alignment) override {
        uint8_t* p = start();
        if (p == nullptr || mode != asmjit::AlignMode::kCode || alignment == 0 || alignment > 64 ||
            (alignment & (alignment - 1)) != 0 || remainingSpace() < 64 + 16 ||
            !asmjit::Support::test(_encodingOptions, asmjit::EncodingOptions::kOptimizedAlign)) {
            return Assembler::align(mode, alignment);
        }
        uint32_t pad = static_cast<uint32_t>(-static_cast<int64_t>(offset())) & (alignment - 1);
        while (pad != 0) {
            const uint32_t n = pad < kLongestNop ? pad : kLongestNop;
            std::memcpy(p, kNops[n - 1], n);
            p += n;
            pad -= n;
        }
        ++short_path_count_;
        _bufferPtr = p;
        const auto size = static_cast<std::size_t>(p - _bufferData);
        asmjit::CodeBuffer& buffer = _section->_buffer;
        buffer._size = size > buffer._size ? size : buffer._size;
        return asmjit::kErrorOk;
    }

    // Binds a label here. asmjit's bind does the same, and more only when there is more to do
    // (its own links to patch, a logger to tell, an error to report).
    Error bind(const Label& l) override {
        if (is_own(l.id())) {
            uint32_t& at = label_offsets_[l.id() & ~kOwnLabel];
            if (at != kUnbound) {
                return asmjit::kErrorLabelAlreadyBound;
            }
            at = static_cast<uint32_t>(offset());
            return asmjit::kErrorOk;
        }
        asmjit::LabelEntry* e = _code->labelEntry(l.id());
        if (e == nullptr || e->isBound() || e->links() != nullptr || _logger != nullptr ||
            _forcedInstOptions != asmjit::InstOptions::kNone || _inlineComment != nullptr) {
            return Assembler::bind(l);
        }
        e->_section = _section;
        e->_offset = offset();
        return asmjit::kErrorOk;
    }

    // Fills in the displacements of the jumps and calls emitted here to labels not bound then
    // (see above); an error if one is still not bound.
    [[nodiscard]] Error resolve_jumps() {
        uint8_t* const data = _section->_buffer.data();
        for (const Fixup& f : fixups_) {
            int64_t target = 0;
            if (is_own(f.label)) {
                target = label_offsets_[f.label & ~kOwnLabel];
                if (target == kUnbound) {
                    return asmjit::kErrorInvalidLabel;
                }
            } else {
                const asmjit::LabelEntry* e = _code->labelEntry(f.label);
                if (e == nullptr || !e->isBoundTo(_section)) {
                    return asmjit::kErrorInvalidLabel;
                }
                target = static_cast<int64_t>(e->offset());
            }
            const int64_t rel = target - (int64_t{f.at} + 4);
            put32(data + f.at, static_cast<uint32_t>(static_cast<int32_t>(rel)));
        }
        fixups_.clear();
        return asmjit::kErrorOk;
    }

    // A legacy packet load's bounds check and load (LD_ABS / LD_IND, Lowering::load_packet) in
    // one go, the same bytes as these instructions one by one. LD_IND (`indirect`), with `off` =
    // the 32-bit sum of `src` and `imm`, zero-extended:
    //   mov off32, src32 (imm 0) | lea off32, [src + imm]
    //   lea scratch, [off + size];  cmp scratch, [state + size_field];  ja fail
    // LD_ABS (imm >= 0):
    //   cmp qword [state + size_field], imm + size;  jb fail
    // then both
    //   mov scratch, [state + packet_field]
    //   movzx dst, byte [at] | movzx dst, word [at]; rol dst16, 8 | mov dst, dword [at]; bswap dst
    // at [scratch + off] or [scratch + imm]. (A program's packet loads each cost seven
    // instructions' checks and operands this way; socket filters are mostly these.) False, with
    // nothing written, where the short path is off or `fail` is bound: the caller emits them.
    [[gnu::always_inline]] bool packet_load(bool indirect, const Gp& src, int32_t imm, uint32_t size, const Gp& dst, const Gp& state,
                     int32_t size_field, int32_t packet_field, const Gp& off, const Gp& scratch, const Label& fail) {
        uint8_t* p = start();
        const bool own = is_own(fail.id());
        const asmjit::LabelEntry* e = p != nullptr && !own ? _code->labelEntry(fail.id()) : nullptr;
        const bool unbound = own ? label_offsets_[fail.id() & ~kOwnLabel] == kUnbound : e != nullptr && !e->isBound();
        const int64_t end = int64_t{imm} + size;
        if (p == nullptr || !unbound || remainingSpace() < 64 || !src.isGpq() || !dst.isGpd() ||
            !state.isGpq() || !off.isGpq() || !scratch.isGpq() || off.id() == 4 || (size != 1 && size != 2 && size != 4) ||
            (!indirect && (imm < 0 || !fits32(end)))) {
            return false;
        }
        const uint32_t o = off.id();
        const uint32_t t = scratch.id();
        const uint32_t d = dst.id();
        const Address count{state.id(), kNoIndex, size_field};
        if (indirect) {
            p = imm == 0 ? put_reg_reg(p, false, src.id(), o, 0x89) : put_reg_mem(p, false, o, Address{src.id(), kNoIndex, imm}, 0x8d);
            p = put_reg_mem(p, true, t, Address{o, kNoIndex, static_cast<int32_t>(size)}, 0x8d);
            p = put_reg_mem(p, true, t, count, 0x3b);
        } else {
            p = rex(p, true, 0, 0, count.base);
            *p++ = fits8(end) ? 0x83 : 0x81;
            p = modrm_mem(p, 7, count);
            p = put_imm(p, fits8(end) ? 1 : 4, end);
        }
        *p++ = 0x0f;
        *p++ = static_cast<uint8_t>(0x80 | cc(indirect ? CondCode::kA : CondCode::kB));
        fixups_.push_back(Fixup{static_cast<uint32_t>(p - _bufferData), fail.id()});
        p = put32(p, 0);
        p = put_reg_mem(p, true, t, Address{state.id(), kNoIndex, packet_field}, 0x8b);
        const Address at = indirect ? Address{t, o, 0} : Address{t, kNoIndex, imm};
        if (size == 1) {
            p = put_reg_mem(p, false, d, at, 0xb6, true);
        } else if (size == 2) {
            p = put_reg_mem(p, false, d, at, 0xb7, true);
            *p++ = 0x66;
            p = rex(p, false, 0, 0, d);
            *p++ = 0xc1;
            *p++ = static_cast<uint8_t>(0xc0 | low(d));
            *p++ = 8;
        } else {
            p = put_reg_mem(p, false, d, at, 0x8b);
            p = rex(p, false, 0, 0, d);
            *p++ = 0x0f;
            *p++ = static_cast<uint8_t>(0xc8 | low(d));
        }
        return finish(p);
    }

    // Loads and stores at an address the caller has in pieces (registers and a displacement, as
    // the lowering does): the same bytes as the Mem forms, without building a Mem to take apart.
    // `width` is 1, 2, 4 or 8. A load zero-extends (movzx; a 32-bit mov) or, with `sign`,
    // sign-extends (movsx, movsxd) into the 64-bit `d`; a store writes the low `width` bytes of
    // the 64-bit `s` or of `imm` (sign-extended to 8 bytes for width 8). False, with nothing
    // written, where the short path is off: the caller emits the Mem form.
    bool load_at(const Gp& d, const Address& a, uint32_t width, bool sign) {
        uint8_t* p = start();
        if (p == nullptr || !d.isGpq() || (sign && width == 8)) {
            return false;
        }
        if (width <= 2) {
            const auto op = static_cast<uint8_t>((sign ? 0xbe : 0xb6) + (width == 2 ? 1 : 0));
            return finish(put_reg_mem(p, sign, d.id(), a, op, true));
        }
        return finish(put_reg_mem(p, sign || width == 8, d.id(), a, sign ? 0x63 : 0x8b));
    }
    bool store_at(const Address& a, const Gp& s, uint32_t width) {
        uint8_t* p = start();
        if (p == nullptr || !s.isGpq()) {
            return false;
        }
        return finish(put_store(p, a, s.id(), width));
    }
    bool store_imm_at(const Address& a, int32_t imm, uint32_t width) {
        uint8_t* p = start();
        if (p == nullptr) {
            return false;
        }
        return finish(put_store_imm(p, a, width, imm));
    }

    // How many instructions took the short path (for tests: that it is taken at all).
    [[nodiscard]] uint64_t short_path_count() const { return short_path_count_; }

private:
    // Where the next instruction's bytes go, or null when asmjit must emit it: the short path
    // runs only with nothing pending for the next instruction, no logger or validation (those
    // set the forced kReserved option), and room for the longest form (15 bytes).
    // (One test for all of it: these run for every instruction.)
    uint8_t* start() {
        // The options an instruction may carry: the lowering sets only lock (lock() notes it);
        // a logger forces them all (the listing goes through asmjit).
        if (lock_pending_ || _forcedInstOptions != asmjit::InstOptions::kNone ||
            static_cast<std::size_t>(_bufferEnd - _bufferPtr) < 16) {
            lock_pending_ = false;  // (asmjit's encoder takes this instruction, and its options)
            return nullptr;
        }
#ifndef NDEBUG
        BPFVM_ASSERT(_instOptions == asmjit::InstOptions::kNone && _extraReg._signature.bits() == 0 &&
                     _inlineComment == nullptr);
#endif
        return _bufferPtr;
    }
    bool lock_pending_ = false;

public:
    // A lock prefix for the next instruction: asmjit's encoder emits it (this returns the base
    // class, whose overloads are asmjit's).
    asmjit::x86::Assembler& lock() {
        lock_pending_ = true;
        return Assembler::lock();
    }

private:
    // As asmjit's CodeWriter::done: the cursor moves, and the section's size covers it.
    bool finish(uint8_t* p) {
        ++short_path_count_;
        _bufferPtr = p;
        const auto size = static_cast<std::size_t>(p - _bufferData);
        asmjit::CodeBuffer& buffer = _section->_buffer;
        buffer._size = size > buffer._size ? size : buffer._size;
        return true;
    }

    static bool is32or64(const Gp& r) { return r.isGpd() || r.isGpq(); }
    // Both 32-bit or both 64-bit registers (one comparison of their signatures, and one test).
    static bool same32or64(const Gp& a, const Gp& b) {
        return a.baseSignature() == b.baseSignature() && is32or64(a);
    }
    static uint8_t low(uint32_t id) { return static_cast<uint8_t>(id & 7); }
    static uint8_t high(uint32_t id) { return static_cast<uint8_t>((id >> 3) & 1); }
    static bool fits8(int64_t v) { return v >= -128 && v <= 127; }
    static bool fits32(int64_t v) { return v >= INT32_MIN && v <= INT32_MAX; }
    static uint8_t* put32(uint8_t* p, uint32_t v) {
        std::memcpy(p, &v, 4);
        return p + 4;
    }
    // REX with W, R (reg), X (index), B (base or rm); left out when empty unless `force` (an
    // 8-bit access to spl, bpl, sil or dil needs one).
    [[gnu::always_inline]] static uint8_t* rex(uint8_t* p, bool w, uint32_t reg, uint32_t index, uint32_t base, bool force = false) {
        // Written always, kept only when needed: no branch on the registers (which the
        // predictor cannot learn from one instruction to the next).
        const auto r = static_cast<uint8_t>(0x40 | (w ? 8 : 0) | (high(reg) << 2) | (high(index) << 1) | high(base));
        *p = r;
        return p + static_cast<std::size_t>(r != 0x40 || force);
    }

    static bool address_of(const Mem& m, Address& out) {
        // One compare of the signature's fields but its operand type and size: a 64-bit base, no
        // index or a 64-bit one, no register home, the default address type, no shift, segment
        // or broadcast. (With a register base the offset is 32 bits.)
        using Sig = asmjit::OperandSignature;
        constexpr uint32_t kFields = Sig::kMemBaseTypeMask | Sig::kMemIndexTypeMask | Sig::kMemRegHomeFlag |
                                     Mem::kSignatureMemAddrTypeMask | Mem::kSignatureMemShiftValueMask |
                                     Mem::kSignatureMemSegmentMask | Mem::kSignatureMemBroadcastMask;
        constexpr uint32_t kBase = uint32_t(asmjit::RegType::kX86_Gpq) << Sig::kMemBaseTypeShift;
        constexpr uint32_t kIndex = uint32_t(asmjit::RegType::kX86_Gpq) << Sig::kMemIndexTypeShift;
        static_assert(static_cast<uint32_t>(Mem::AddrType::kDefault) == 0);
        const uint32_t f = m.signature().bits() & kFields;
        if (f == kBase) {
            out = Address{m.baseId(), kNoIndex, m.offsetLo32()};
            return true;
        }
        if (f == (kBase | kIndex) && m.indexId() != 4) {
            out = Address{m.baseId(), m.indexId(), m.offsetLo32()};
            return true;
        }
        return false;
    }
    // ModRM (with `reg` in its reg field), SIB and displacement for an address.
    [[gnu::always_inline]] static uint8_t* modrm_mem(uint8_t* p, uint32_t reg, const Address& a) {
        const uint8_t b = low(a.base);
        const bool sib = a.index != kNoIndex || b == 4;
        const uint8_t mod = a.disp == 0 && b != 5 ? 0 : fits8(a.disp) ? 1 : 2;
        *p++ = static_cast<uint8_t>((mod << 6) | (low(reg) << 3) | (sib ? 4 : b));
        if (sib) {
            *p++ = static_cast<uint8_t>(((a.index != kNoIndex ? low(a.index) : 4) << 3) | b);
        }
        if (mod == 1) {
            *p++ = static_cast<uint8_t>(a.disp);
        } else if (mod == 2) {
            p = put32(p, static_cast<uint32_t>(a.disp));
        }
        return p;
    }
    static uint32_t index_rex(const Address& a) { return a.index != kNoIndex ? a.index : 0; }
    // REX, the opcode (after 0x0f when `escape`), ModRM, SIB and displacement of a form with a
    // register and a memory operand; then the instruction is done.
    [[gnu::always_inline]] static uint8_t* put_reg_mem(uint8_t* p, bool w, uint32_t reg, const Address& a, uint8_t opcode,
                                bool escape = false, bool force_rex = false) {
        p = rex(p, w, reg, index_rex(a), a.base, force_rex);
        if (escape) {
            *p++ = 0x0f;
        }
        *p++ = opcode;
        return modrm_mem(p, reg, a);
    }
    bool reg_mem(uint8_t* p, bool w, uint32_t reg, const Address& a, uint8_t opcode, bool escape = false,
                 bool force_rex = false) {
        return finish(put_reg_mem(p, w, reg, a, opcode, escape, force_rex));
    }
    // The same with a register in the r/m field (ModRM mod 11): `reg` is a register or a /digit.
    [[gnu::always_inline]] static uint8_t* put_reg_reg(uint8_t* p, bool w, uint32_t reg, uint32_t rm, uint8_t opcode, bool escape = false,
                                bool force_rex = false) {
        p = rex(p, w, reg, 0, rm, force_rex);
        if (escape) {
            *p++ = 0x0f;
        }
        *p++ = opcode;
        *p++ = static_cast<uint8_t>(0xc0 | (low(reg) << 3) | low(rm));
        return p;
    }
    bool reg_reg(uint8_t* p, bool w, uint32_t reg, uint32_t rm, uint8_t opcode, bool escape = false,
                 bool force_rex = false) {
        return finish(put_reg_reg(p, w, reg, rm, opcode, escape, force_rex));
    }

    // Whether an immediate fits a memory operand of `size` bytes (1, 2, 4, or 8 for a
    // sign-extended 32-bit one), as asmjit takes it: a byte or word may be given signed or not.
    static bool fits_size(uint32_t size, int64_t v) {
        return size == 1   ? v >= -128 && v <= 255
               : size == 2 ? v >= -32768 && v <= 65535
               : size == 4 ? v >= INT32_MIN && v <= int64_t{UINT32_MAX}
               : size == 8 ? fits32(v)
                           : false;
    }
    // An immediate's low `bytes` bytes (1, 2 or 4).
    static uint8_t* put_imm(uint8_t* p, uint32_t bytes, int64_t v) {
        if (bytes == 1) {
            *p++ = static_cast<uint8_t>(v);
        } else if (bytes == 2) {
            const auto h = static_cast<uint16_t>(v);
            std::memcpy(p, &h, 2);
            p += 2;
        } else {
            p = put32(p, static_cast<uint32_t>(v));
        }
        return p;
    }

    // `op r/m, r` with both registers of one width (32 or 64 bits).
    bool rr(uint8_t opcode, const Gp& d, const Gp& s) {
        uint8_t* p = start();
        if (p == nullptr || !same32or64(d, s)) {
            return false;
        }
        return reg_reg(p, d.isGpq(), s.id(), d.id(), opcode);
    }

    // Group 1 (add, or, and, sub, xor, cmp: /digit) with an immediate that fits 32 signed bits.
    bool ri(uint8_t digit, const Gp& d, const Imm& i) {
        uint8_t* p = start();
        const int64_t v = i.value();
        if (p == nullptr || !is32or64(d) || !fits32(v)) {
            return false;
        }
        p = rex(p, d.isGpq(), 0, 0, d.id());
        if (fits8(v)) {
            *p++ = 0x83;
            *p++ = static_cast<uint8_t>(0xc0 | (digit << 3) | low(d.id()));
            *p++ = static_cast<uint8_t>(v);
        } else if (d.id() == 0) {
            *p++ = static_cast<uint8_t>(0x05 | (digit << 3));  // the accumulator's short form
            p = put32(p, static_cast<uint32_t>(v));
        } else {
            *p++ = 0x81;
            *p++ = static_cast<uint8_t>(0xc0 | (digit << 3) | low(d.id()));
            p = put32(p, static_cast<uint32_t>(v));
        }
        return finish(p);
    }

    // mov r, imm: a 64-bit register takes the sign-extending form when the value fits 32 signed
    // bits, else movabs (asmjit does not narrow to `mov r32, imm32` unless asked to optimize for
    // size); a 32-bit register takes any 32-bit value.
    bool mov_ri(const Gp& d, const Imm& i) {
        uint8_t* p = start();
        const int64_t v = i.value();
        if (p == nullptr || !is32or64(d)) {
            return false;
        }
        if (d.isGpd()) {
            if (v < INT32_MIN || v > int64_t{UINT32_MAX}) {
                return false;
            }
            p = rex(p, false, 0, 0, d.id());
            *p++ = static_cast<uint8_t>(0xb8 | low(d.id()));
            p = put32(p, static_cast<uint32_t>(v));
        } else if (fits32(v)) {
            p = rex(p, true, 0, 0, d.id());
            *p++ = 0xc7;
            *p++ = static_cast<uint8_t>(0xc0 | low(d.id()));
            p = put32(p, static_cast<uint32_t>(v));
        } else {
            p = rex(p, true, 0, 0, d.id());
            *p++ = static_cast<uint8_t>(0xb8 | low(d.id()));
            const auto u = static_cast<uint64_t>(v);
            std::memcpy(p, &u, 8);
            p += 8;
        }
        return finish(p);
    }

    // Group 2 shifts (shl /4, shr /5, sar /7) by a count of 1 to the width minus one.
    bool shift(uint8_t digit, const Gp& d, const Imm& i) {
        uint8_t* p = start();
        const int64_t v = i.value();
        if (p == nullptr || !(is32or64(d) || d.isGpw()) || v < 1 || v > 255) {
            return false;
        }
        if (d.isGpw()) {
            *p++ = 0x66;
        }
        p = rex(p, d.isGpq(), 0, 0, d.id());
        if (v == 1) {
            *p++ = 0xd1;
            *p++ = static_cast<uint8_t>(0xc0 | (digit << 3) | low(d.id()));
        } else {
            *p++ = 0xc1;
            *p++ = static_cast<uint8_t>(0xc0 | (digit << 3) | low(d.id()));
            *p++ = static_cast<uint8_t>(v);
        }
        return finish(p);
    }

    bool imul_rr(const Gp& d, const Gp& s) {
        uint8_t* p = start();
        if (p == nullptr || !same32or64(d, s)) {
            return false;
        }
        return reg_reg(p, d.isGpq(), d.id(), s.id(), 0xaf, true);
    }

    // movzx (`byte_opcode` 0F B6) or movsx (0F BE) r32|r64, r8|r16 (a word's opcode is the
    // next one; the low byte registers only, spl..dil need a REX).
    bool extend_rr(uint8_t byte_opcode, const Gp& d, const Gp& s) {
        uint8_t* p = start();
        if (p == nullptr || !is32or64(d) || !(s.isGpbLo() || s.isGpw())) {
            return false;
        }
        return reg_reg(p, d.isGpq(), d.id(), s.id(), static_cast<uint8_t>(s.isGpbLo() ? byte_opcode : byte_opcode + 1),
                       true, s.isGpbLo() && s.id() >= 4);
    }

    // mov r32|r64, [m] with the memory operand's size unset or the register's.
    bool load(const Gp& d, const Mem& m) {
        uint8_t* p = start();
        Address a{};
        if (p == nullptr || !is32or64(d) || (m.size() != 0 && m.size() != d.size()) || !address_of(m, a)) {
            return false;
        }
        return reg_mem(p, d.isGpq(), d.id(), a, 0x8b);
    }

    // movzx or movsx r32|r64, byte|word [m] (as extend_rr).
    bool extend_rm(uint8_t byte_opcode, const Gp& d, const Mem& m) {
        uint8_t* p = start();
        Address a{};
        if (p == nullptr || !is32or64(d) || (m.size() != 1 && m.size() != 2) || !address_of(m, a)) {
            return false;
        }
        return reg_mem(p, d.isGpq(), d.id(), a, static_cast<uint8_t>(m.size() == 1 ? byte_opcode : byte_opcode + 1),
                       true);
    }

    // mov [m], r8|r16|r32|r64 with the memory operand's size unset or the register's.
    bool store_xmm(const Mem& m, const asmjit::x86::Xmm& x) {
        uint8_t* p = start();
        Address a{};
        if (p == nullptr || (m.size() != 0 && m.size() != 16) || !address_of(m, a)) {
            return false;
        }
        return reg_mem(p, false, x.id(), a, 0x11, true);  // 0f 11 /r
    }
    bool xorps_rr(const asmjit::x86::Xmm& d, const asmjit::x86::Xmm& s) {
        uint8_t* p = start();
        if (p == nullptr) {
            return false;
        }
        return reg_reg(p, false, d.id(), s.id(), 0x57, true);  // 0f 57 /r
    }
    bool store(const Mem& m, const Gp& s) {
        uint8_t* p = start();
        Address a{};
        const bool byte = s.isGpbLo();
        if (p == nullptr || !(byte || s.isGpw() || is32or64(s)) || (m.size() != 0 && m.size() != s.size()) ||
            !address_of(m, a)) {
            return false;
        }
        return finish(put_store(p, a, s.id(), s.size()));
    }
    // mov [a], r of `size` bytes (the register's id): 66 for a word, REX for spl..dil.
    [[gnu::always_inline]] static uint8_t* put_store(uint8_t* p, const Address& a, uint32_t reg, uint32_t size) {
        if (size == 2) {
            *p++ = 0x66;
        }
        return put_reg_mem(p, size == 8, reg, a, size == 1 ? 0x88 : 0x89, false, size == 1 && reg >= 4);
    }

    // mov byte|word|dword|qword [m], imm (a qword store sign-extends a 32-bit immediate).
    bool store_imm(const Mem& m, const Imm& i) {
        uint8_t* p = start();
        Address a{};
        const uint32_t size = m.size();
        const int64_t v = i.value();
        if (p == nullptr || !fits_size(size, v) || !address_of(m, a)) {
            return false;
        }
        return finish(put_store_imm(p, a, size, v));
    }
    // mov [a], imm of `size` bytes (C6 ib, 66 C7 iw, C7 id; REX.W C7 id sign-extended for 8).
    [[gnu::always_inline]] static uint8_t* put_store_imm(uint8_t* p, const Address& a, uint32_t size, int64_t v) {
        if (size == 2) {
            *p++ = 0x66;
        }
        p = rex(p, size == 8, 0, index_rex(a), a.base);
        *p++ = size == 1 ? 0xc6 : 0xc7;
        p = modrm_mem(p, 0, a);
        return put_imm(p, size == 8 ? 4 : size, v);
    }

    static constexpr uint8_t cc(CondCode c) { return static_cast<uint8_t>(c); }
    // The multi-byte NOPs asmjit pads code with when asked to (kOptimizedAlign): 1 to 9 bytes,
    // the longest first.
    static constexpr uint32_t kLongestNop = 9;
    static constexpr uint8_t kNops[kLongestNop][kLongestNop] = {
        {0x90},
        {0x66, 0x90},
        {0x0f, 0x1f, 0x00},
        {0x0f, 0x1f, 0x40, 0x00},
        {0x0f, 0x1f, 0x44, 0x00, 0x00},
        {0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00},
        {0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00},
        {0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00},
        {0x66, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00},
    };

    // Up to two fixed bytes (the second left out when zero).
    bool bytes(uint8_t a, uint8_t b) {
        uint8_t* p = start();
        if (p == nullptr) {
            return false;
        }
        *p++ = a;
        if (b != 0) {
            *p++ = b;
        }
        return finish(p);
    }

    // push r64 / pop r64: the opcode plus the register's low bits, REX.B for r8-r15.
    bool push_pop(uint8_t opcode, const Gp& r) {
        uint8_t* p = start();
        if (p == nullptr || !r.isGpq()) {
            return false;
        }
        p = rex(p, false, 0, 0, r.id());
        *p++ = static_cast<uint8_t>(opcode | low(r.id()));
        return finish(p);
    }

    // call r64 (FF /2; no REX.W: the operand is 64 bits in long mode).
    bool call_reg(const Gp& r) {
        uint8_t* p = start();
        if (p == nullptr || !r.isGpq()) {
            return false;
        }
        return reg_reg(p, false, 2, r.id(), 0xff);
    }

    // A one-operand group-3 form (neg /3, div /6, idiv /7) on a 32- or 64-bit register.
    bool unary(uint8_t opcode, uint8_t digit, const Gp& r) {
        uint8_t* p = start();
        if (p == nullptr || !is32or64(r)) {
            return false;
        }
        return reg_reg(p, r.isGpq(), digit, r.id(), opcode);
    }

    bool bswap_r(const Gp& r) {
        uint8_t* p = start();
        if (p == nullptr || !is32or64(r)) {
            return false;
        }
        p = rex(p, r.isGpq(), 0, 0, r.id());
        *p++ = 0x0f;
        *p++ = static_cast<uint8_t>(0xc8 | low(r.id()));
        return finish(p);
    }

    // test r, imm: A8/A9 for the accumulator, else F6 /0 ib (a byte register) or F7 /0 id.
    bool test_ri(const Gp& d, const Imm& i) {
        uint8_t* p = start();
        const int64_t v = i.value();
        const bool byte = d.isGpbLo();
        const bool in_range = byte ? v >= -128 && v <= 255 : d.isGpd() ? v >= INT32_MIN && v <= int64_t{UINT32_MAX} : fits32(v);
        if (p == nullptr || !(byte || is32or64(d)) || !in_range) {
            return false;
        }
        p = rex(p, d.isGpq(), 0, 0, d.id(), byte && d.id() >= 4);
        if (d.id() == 0) {
            *p++ = byte ? 0xa8 : 0xa9;
        } else {
            *p++ = byte ? 0xf6 : 0xf7;
            *p++ = static_cast<uint8_t>(0xc0 | low(d.id()));
        }
        return finish(put_imm(p, byte ? 1 : 4, v));
    }

    // imul r, r/m, imm: 6B ib when the value fits a signed byte, else 69 id.
    bool imul_rri(const Gp& d, const Gp& s, const Imm& i) {
        uint8_t* p = start();
        const int64_t v = i.value();
        if (p == nullptr || !same32or64(d, s) || !fits32(v)) {
            return false;
        }
        p = rex(p, d.isGpq(), d.id(), 0, s.id());
        *p++ = fits8(v) ? 0x6b : 0x69;
        *p++ = static_cast<uint8_t>(0xc0 | (low(d.id()) << 3) | low(s.id()));
        return finish(put_imm(p, fits8(v) ? 1 : 4, v));
    }

    // cmovcc r, r (0F 40+cc /r).
    bool cmov_rr(uint8_t c, const Gp& d, const Gp& s) {
        uint8_t* p = start();
        if (p == nullptr || c > 15 || !same32or64(d, s)) {
            return false;
        }
        return reg_reg(p, d.isGpq(), d.id(), s.id(), static_cast<uint8_t>(0x40 | c), true);
    }

    // setcc r8 (0f 90+cc /0): a REX for spl, bpl, sil and dil (else ah, ch, dh, bh).
    bool set_r(uint8_t c, const Gp& d) {
        uint8_t* p = start();
        if (p == nullptr || c > 15 || !d.isGpbLo()) {
            return false;
        }
        return reg_reg(p, false, 0, d.id(), static_cast<uint8_t>(0x90 | c), true, d.id() >= 4 && d.id() < 8);
    }

    // `op r, [m]` (add 03, sub 2b, cmp 3b) with the memory operand's size unset or the register's.
    bool alu_rm(uint8_t opcode, const Gp& d, const Mem& m) {
        uint8_t* p = start();
        Address a{};
        if (p == nullptr || !is32or64(d) || (m.size() != 0 && m.size() != d.size()) || !address_of(m, a)) {
            return false;
        }
        return reg_mem(p, d.isGpq(), d.id(), a, opcode);
    }

    // Group 1 on memory with an immediate (cmp /7): 80 ib for a byte, else 83 ib when the value
    // fits a signed byte, else 81 with the operand's size (iw, or id sign-extended for a qword).
    bool alu_mi(uint8_t digit, const Mem& m, const Imm& i) {
        uint8_t* p = start();
        Address a{};
        const uint32_t size = m.size();
        const int64_t v = i.value();
        if (p == nullptr || !fits_size(size, v) || !address_of(m, a)) {
            return false;
        }
        // (asmjit reads a dword's value as signed 32 bits, a word's as given: 0xffffffff takes
        // the short form, 0xffff does not.)
        const int64_t as_signed = size == 4 ? static_cast<int32_t>(v) : v;
        const bool short_imm = size != 1 && fits8(as_signed);
        if (size == 2) {
            *p++ = 0x66;
        }
        p = rex(p, size == 8, 0, index_rex(a), a.base);
        *p++ = size == 1 ? 0x80 : short_imm ? 0x83 : 0x81;
        p = modrm_mem(p, digit, a);
        return finish(put_imm(p, size == 1 || short_imm ? 1 : size == 8 ? 4 : size, v));
    }

    // inc or dec dword|qword [m] (FF /0, /1).
    bool unary_m(uint8_t digit, const Mem& m) {
        uint8_t* p = start();
        Address a{};
        if (p == nullptr || (m.size() != 4 && m.size() != 8) || !address_of(m, a)) {
            return false;
        }
        return reg_mem(p, m.size() == 8, digit, a, 0xff);
    }

    // movsxd r64, r32 | dword [m] (REX.W 63 /r).
    bool movsxd_rr(const Gp& d, const Gp& s) {
        uint8_t* p = start();
        if (p == nullptr || !d.isGpq() || !s.isGpd()) {
            return false;
        }
        return reg_reg(p, true, d.id(), s.id(), 0x63);
    }
    bool movsxd_rm(const Gp& d, const Mem& m) {
        uint8_t* p = start();
        Address a{};
        if (p == nullptr || !d.isGpq() || m.size() != 4 || !address_of(m, a)) {
            return false;
        }
        return reg_mem(p, true, d.id(), a, 0x63);
    }

    // jmp (kJmp), call (kCall) or jcc (the condition code, 0-15) to a label of this section.
    static constexpr uint8_t kJmp = 0xfe;
    static constexpr uint8_t kCall = 0xff;
    bool jump(uint8_t kind, const Label& l) {
        if (is_own(l.id())) {
            jump_own(kind, l.id());
            return true;
        }
        uint8_t* p = start();
        const asmjit::LabelEntry* e = p != nullptr ? _code->labelEntry(l.id()) : nullptr;
        if (e == nullptr || (e->isBound() && !e->isBoundTo(_section)) || (kind > 15 && kind < kJmp)) {
            return false;
        }
        const uint32_t target = e->isBound() ? static_cast<uint32_t>(e->offset()) : kUnbound;
        return finish(put_jump(p, p - _bufferData, kind, target, l.id()));
    }
    // The bytes of a jump or call at offset `here` to `target`, or to a label not bound yet
    // (kUnbound: the displacement is 0 and goes on the fixup list for `label`): rel8 where asmjit
    // would choose it, else rel32. Returns the end of what it wrote.
    uint8_t* put_jump(uint8_t* p, int64_t here, uint8_t kind, uint32_t target, uint32_t label) {
        if (target != kUnbound && kind != kCall && fits8(int64_t{target} - (here + 2))) {
            *p++ = kind == kJmp ? 0xeb : static_cast<uint8_t>(0x70 | kind);
            *p++ = static_cast<uint8_t>(int64_t{target} - (here + 2));
            return p;
        }
        const uint8_t* const begin = p;
        if (kind == kJmp || kind == kCall) {
            *p++ = kind == kJmp ? 0xe9 : 0xe8;
        } else {
            *p++ = 0x0f;
            *p++ = static_cast<uint8_t>(0x80 | kind);
        }
        const auto at = static_cast<uint32_t>(here + (p - begin));
        if (target != kUnbound) {
            put32(p, static_cast<uint32_t>(static_cast<int32_t>(int64_t{target} - (int64_t{at} + 4))));
        } else {
            put32(p, 0);
            fixups_.push_back(Fixup{at, label});
        }
        return p + 4;
    }

    // lea r32|r64, [m].
    bool lea_rm(const Gp& d, const Mem& m) {
        uint8_t* p = start();
        Address a{};
        if (p == nullptr || !is32or64(d) || !address_of(m, a)) {
            return false;
        }
        return reg_mem(p, d.isGpq(), d.id(), a, 0x8d);
    }

    // ModRM 00 reg 100, SIB scale index 101 (no base), disp32 0.
    bool lea_index(const Gp& d, const Gp& index, uint32_t shift) {
        uint8_t* p = start();
        if (p == nullptr || !is32or64(d) || !index.isGpq() || index.id() == 4 || shift < 1 || shift > 3) {
            return false;
        }
        p = rex(p, d.isGpq(), d.id(), index.id(), 0);
        *p++ = 0x8d;
        *p++ = static_cast<uint8_t>((low(d.id()) << 3) | 4);
        *p++ = static_cast<uint8_t>((shift << 6) | (low(index.id()) << 3) | 5);
        return finish(put32(p, 0));
    }

    // A jump or call to an own label: the bytes put_jump() gives, into the buffer, or through
    // asmjit's embed where the short path is off (no room: asmjit grows the buffer), since
    // asmjit's encoder does not know these labels.
    void jump_own(uint8_t kind, uint32_t id) {
        BPFVM_ASSERT(kind <= 15 || kind >= kJmp);
        uint8_t bytes[8] = {};
        const auto n = static_cast<std::size_t>(
            put_jump(bytes, static_cast<int64_t>(offset()), kind, label_offsets_[id & ~kOwnLabel], id) - bytes);
        if (uint8_t* out = start(); out != nullptr) {
            std::memcpy(out, bytes, sizeof bytes);  // (start() leaves room for 16)
            finish(out + n);
        } else {
            (void)Assembler::embed(bytes, n);
        }
    }

    static constexpr uint32_t kOwnLabel = 0x40000000;  // (asmjit's ids count up from 0)
    static constexpr uint32_t kUnbound = 0xffffffff;
    static bool is_own(uint32_t id) { return (id & kOwnLabel) != 0 && id != asmjit::Globals::kInvalidId; }
    bool own_labels_;
    // Per own label, its offset in the section, or kUnbound.
    std::vector<uint32_t> label_offsets_;
    static thread_local std::vector<uint32_t> spare_label_offsets_;

    uint64_t short_path_count_ = 0;
    // Where a jump's 32-bit displacement goes (offset in the section), and to which label.
    struct Fixup {
        uint32_t at;
        uint32_t label;
    };
    std::vector<Fixup> fixups_;
    // The largest list's memory, kept per thread from one assembler to the next (as the
    // CodeHolder is): no allocation per compile once it has grown.
    static thread_local std::vector<Fixup> spare_fixups_;
};

inline thread_local std::vector<FastAssembler::Fixup> FastAssembler::spare_fixups_;
inline thread_local std::vector<uint32_t> FastAssembler::spare_label_offsets_;

}  // namespace bpfvm::jit
