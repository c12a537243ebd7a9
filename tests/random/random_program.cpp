#include "random_program.hpp"

#include <algorithm>
#include <random>

#include "bpfvm/vm/opcodes.hpp"

namespace bpfvm::test {

namespace {

using vm::Form;
using vm::OpInfo;
using vm::RawInsn;
using vm::Sem;

// r6 holds the buffer in every function; loop counters come from r7..r9.
constexpr uint8_t kBuffer = 6;
constexpr uint8_t kData[] = {0, 1, 2, 3, 4, 5, 7, 8, 9};

std::vector<const OpInfo*> rows_where(bool (*keep)(const OpInfo&)) {
    std::vector<const OpInfo*> out;
    for (const OpInfo& row : vm::kOpTable) {
        if (keep(row)) {
            out.push_back(&row);
        }
    }
    return out;
}

const OpInfo& row_named(std::string_view mnemonic, Form form) {
    for (const OpInfo& row : vm::kOpTable) {
        if (row.mnemonic == mnemonic && row.form == form) {
            return row;
        }
    }
    std::abort();
}

class Generator {
public:
    Generator(uint64_t seed, const RandomProgramOptions& o) : rng_(seed), o_(o) {
        alu_ = rows_where([](const OpInfo& r) {
            return r.form == Form::AluImm || r.form == Form::AluReg || r.form == Form::AluUnary ||
                   r.form == Form::Endian;
        });
        cond_ = rows_where([](const OpInfo& r) { return r.form == Form::CondImm || r.form == Form::CondReg; });
        loads_ = rows_where([](const OpInfo& r) { return r.form == Form::LoadMem; });
        stores_ = rows_where([](const OpInfo& r) { return r.form == Form::StoreImm || r.form == Form::StoreReg; });
        atomics_ = rows_where([](const OpInfo& r) { return r.form == Form::Atomic; });
        packet_ = rows_where([](const OpInfo& r) { return r.form == Form::LoadAbs || r.form == Form::LoadInd; });
    }

    std::vector<RawInsn> run() {
        const unsigned functions = std::min(o_.functions, 3u);
        starts_.assign(functions + 1, 0);
        for (unsigned f = 0; f <= functions; ++f) {
            current_ = f;
            starts_[f] = code_.size();
            function(f == 0);
        }
        for (const auto& [at, fn] : call_fixes_) {
            code_[at].imm = static_cast<int32_t>(static_cast<int64_t>(starts_[fn]) - static_cast<int64_t>(at) - 1);
        }
        return std::move(code_);
    }

private:
    std::mt19937_64 rng_;
    const RandomProgramOptions& o_;
    std::vector<RawInsn> code_;
    std::vector<std::size_t> starts_;
    std::vector<std::pair<std::size_t, unsigned>> call_fixes_;
    unsigned current_ = 0;
    std::vector<uint8_t> counters_;  // loop counters in use (not writable)
    std::vector<const OpInfo*> alu_, cond_, loads_, stores_, atomics_, packet_;

    uint64_t pick(uint64_t n) { return n == 0 ? 0 : rng_() % n; }
    bool chance(unsigned percent) { return pick(100) < percent; }

    int32_t interesting() {
        static constexpr int32_t kValues[] = {0,  1,    -1,   2,          7,         31,         32,      63,
                                              64, 0xff, 0x80, 0x7fffffff, INT32_MIN, 0x12345678, -0x10000};
        switch (pick(3)) {
            case 0:
                return kValues[pick(std::size(kValues))];
            case 1:
                return static_cast<int32_t>(pick(129)) - 64;
            default:
                return static_cast<int32_t>(rng_());
        }
    }

    uint8_t readable() { return kData[pick(std::size(kData))]; }
    uint8_t writable() {
        for (;;) {
            const uint8_t r = readable();
            if (std::find(counters_.begin(), counters_.end(), r) == counters_.end()) {
                return r;
            }
        }
    }

    std::size_t emit(const OpInfo& row, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
        code_.push_back(vm::with_selector(RawInsn{0, dst, src, off, imm}, row));
        return code_.size() - 1;
    }
    void mov_imm(uint8_t dst, int32_t imm) { emit(row_named("mov", Form::AluImm), dst, 0, 0, imm); }
    void lddw(uint8_t dst, uint64_t value) {
        code_.push_back(RawInsn{0x18, dst, 0, 0, static_cast<int32_t>(value)});
        code_.push_back(RawInsn{0, 0, 0, 0, static_cast<int32_t>(value >> 32)});
    }
    void init_registers(std::initializer_list<uint8_t> regs) {
        for (uint8_t r : regs) {
            if (chance(20)) {
                lddw(r, rng_());
            } else {
                mov_imm(r, interesting());
            }
        }
    }
    // Offsets from 0 of an aligned access of `width` bytes within `size` bytes.
    int16_t aligned(std::size_t size, unsigned width) { return static_cast<int16_t>(width * pick(size / width)); }
    int16_t stack_slot(unsigned width) {
        return static_cast<int16_t>(-(static_cast<int>(aligned(o_.stack_size, width)) + width));
    }
    unsigned width() { return 1u << pick(4); }

    void function(bool main) {
        emit(row_named("mov", Form::AluReg), kBuffer, 1, 0, 0);
        if (o_.init_stack) {
            for (unsigned off = 8; off <= o_.stack_size; off += 8) {
                emit(row_named("stdw", Form::StoreImm), 10, 0, static_cast<int16_t>(-static_cast<int>(off)), 0);
            }
        }
        if (!main && chance(50)) {
            // r5 points into the caller's frame.
            emit(row_named("ldxdw", Form::LoadMem), 0, 5, 0, 0);
            emit(row_named("add", Form::AluImm), 0, 0, 0, interesting());
            emit(row_named("stxdw", Form::StoreReg), 5, 0, 0, 0);
        }
        init_registers({0, 1, 2, 3, 4, 5, 7, 8, 9});
        block(o_.statements, 0);
        if (main && o_.call_all_functions) {
            for (unsigned f = 1; f < starts_.size(); ++f) {
                call_local(f);  // (the kernel refuses a program with unreachable code)
            }
        }
        // Every register into r0, so the result sees them.
        for (uint8_t r : {1, 2, 3, 4, 5, 7, 8, 9}) {
            emit(row_named(chance(50) ? "xor" : "add", Form::AluReg), 0, r, 0, 0);
        }
        emit(row_named("exit", Form::Exit), 0, 0, 0, 0);
    }

    void block(unsigned statements, unsigned depth) {
        for (unsigned i = 0; i < statements; ++i) {
            statement(depth);
        }
    }

    void statement(unsigned depth) {
        if (o_.selects && chance(12)) {
            select();
            return;
        }
        const uint64_t kind = pick(100);
        if (o_.hostile && kind < 4) {
            stray();
        } else if (kind < 35) {
            alu();
        } else if (kind < 40) {
            lddw(writable(), rng_());
        } else if (kind < 52) {
            stack_access();
        } else if (kind < 62) {
            buffer_access();
        } else if (kind < 68) {
            atomic();
        } else if (kind < 78 && depth < o_.max_nesting) {
            branch(depth);
        } else if (kind < 82 && depth < o_.max_nesting && counters_.size() < 3) {
            loop(depth);
        } else if (kind < 85 && counters_.size() < 3) {
            walk();
        } else if (kind < 89 && current_ < starts_.size() - 1) {
            call_local();
        } else if (kind < 92 && o_.helper_calls) {
            call_helper();
        } else if (kind < 94 && o_.legacy_packet) {
            packet_load();
        } else {
            alu();
        }
    }

    void alu() {
        if (chance(4)) {
            // an increment spread over a copy (as in loop counters below, on data registers):
            // t = a + k; a's old value read, maybe a written; a = t; maybe t dead
            const uint8_t a = writable();
            uint8_t t = writable();
            while (t == a) {
                t = writable();
            }
            const bool wide = chance(60);
            emit(row_named(wide ? "mov" : "mov32", Form::AluReg), t, a, 0, 0);
            emit(row_named(wide ? "add" : "add32", Form::AluImm), t, 0, 0, interesting());
            if (chance(50)) {
                uint8_t u = writable();
                while (u == a || u == t) {
                    u = writable();
                }
                emit(row_named("mov", Form::AluReg), u, a, 0, 0);
            }
            if (chance(25)) {
                emit(row_named("xor", Form::AluImm), a, 0, 0, interesting());  // a written between
            }
            const bool wide_back = chance(80) ? wide : !wide;  // sometimes the other width
            emit(row_named(wide_back ? "mov" : "mov32", Form::AluReg), a, t, 0, 0);
            if (chance(60)) {
                mov_imm(t, interesting());
            }
            return;
        }
        if (chance(6)) {
            // clang's zero extension of a byte or half: a move, then an `and` with the mask
            const uint8_t dst = writable();
            const bool wide = chance(50);
            emit(row_named(wide ? "mov" : "mov32", Form::AluReg), dst, readable(), 0, 0);
            emit(row_named(chance(50) ? "and" : "and32", Form::AluImm), dst, 0, 0, chance(50) ? 0xff : 0xffff);
            return;
        }
        const OpInfo& row = *alu_[pick(alu_.size())];
        const uint8_t dst = writable();
        int32_t imm = 0;
        uint8_t src = 0;
        if (row.form == Form::AluImm) {
            imm = interesting();
            if (row.sem == Sem::Lsh || row.sem == Sem::Rsh || row.sem == Sem::Arsh) {
                imm = static_cast<int32_t>(pick(row.width * 8u));
            }
            const bool divide =
                row.sem == Sem::Div || row.sem == Sem::Mod || row.sem == Sem::Sdiv || row.sem == Sem::Smod;
            if (divide && imm == 0) {
                imm = 3;  // the kernel refuses a constant zero divisor
            }
        } else if (row.form == Form::AluReg) {
            src = readable();
        }
        emit(row, dst, src, 0, imm);
    }

    void stack_access() {
        const unsigned w = width();
        const int16_t off = stack_slot(w);
        const uint64_t how = pick(5);
        if (how == 0) {
            emit(row_named(std::string("stx") + "bhwd"[__builtin_ctz(w)] + (w == 8 ? "w" : ""), Form::StoreReg), 10,
                 readable(), off, 0);
        } else if (how == 1) {
            emit(row_named(std::string("st") + "bhwd"[__builtin_ctz(w)] + (w == 8 ? "w" : ""), Form::StoreImm), 10, 0,
                 off, interesting());
        } else if (how == 2) {
            // Through a pointer register, which is overwritten right after.
            const uint8_t t = writable();
            emit(row_named("mov", Form::AluReg), t, 10, 0, 0);
            emit(row_named("add", Form::AluImm), t, 0, 0, off);
            if (chance(30)) {
                // a store through it first: the pointer is still needed after it
                uint8_t v = readable();
                while (v == t) {
                    v = readable();
                }
                store_from(t, 0, w, v);
            }
            load_into(t, t, 0, w);
        } else {
            load_into(writable(), 10, off, w);
        }
    }

    void load_into(uint8_t dst, uint8_t base, int16_t off, unsigned w) {
        std::vector<const OpInfo*> fit;
        for (const OpInfo* r : loads_) {
            if (r->width == w) {
                fit.push_back(r);
            }
        }
        emit(*fit[pick(fit.size())], dst, base, off, 0);
    }

    void store_from(uint8_t base, int16_t off, unsigned w, uint8_t src) {
        const bool imm = chance(30);
        for (const OpInfo* r : stores_) {
            if (r->width == w && (r->form == Form::StoreImm) == imm) {
                emit(*r, base, imm ? 0 : src, off, imm ? interesting() : 0);
                return;
            }
        }
    }

    void buffer_access() {
        const unsigned w = width();
        if (chance(50)) {
            const int16_t off = aligned(o_.buffer_size, w);
            if (chance(50)) {
                load_into(writable(), kBuffer, off, w);
            } else {
                store_from(kBuffer, off, w, readable());
            }
            return;
        }
        // An index computed from data, masked into the buffer.
        const uint8_t t = writable();
        emit(row_named("mov32", Form::AluReg), t, readable(), 0, 0);
        emit(row_named("and", Form::AluImm), t, 0, 0, static_cast<int32_t>(o_.buffer_size - w));
        if (chance(30)) {
            // the pointer in another register: rU = buffer; rU += index (then the access)
            uint8_t u = writable();
            while (u == t) {
                u = writable();
            }
            emit(row_named("mov", Form::AluReg), u, kBuffer, 0, 0);
            emit(row_named("add", Form::AluReg), u, t, 0, 0);
            if (chance(40)) {
                // two accesses through the pointer: it is still needed after the first
                uint8_t v = writable();
                while (v == u) {
                    v = writable();
                }
                load_into(v, u, 0, w);
                load_into(u, u, 0, w);
                return;
            }
            if (chance(50)) {
                load_into(u, u, 0, w);
            } else {
                uint8_t v = readable();
                while (v == u) {
                    v = readable();
                }
                store_from(u, 0, w, v);
                mov_imm(u, interesting());
            }
            return;
        }
        emit(row_named("add", Form::AluReg), t, kBuffer, 0, 0);
        if (chance(50)) {
            load_into(t, t, 0, w);
        } else {
            uint8_t v = readable();
            while (v == t) {
                v = readable();
            }
            store_from(t, 0, w, v);
            mov_imm(t, interesting());
        }
    }

    void atomic() {
        const OpInfo& row = *atomics_[pick(atomics_.size())];
        const unsigned w = row.width;
        const bool stack = chance(50);
        const uint8_t base = stack ? 10 : kBuffer;
        const int16_t off = stack ? stack_slot(w) : aligned(o_.buffer_size, w);
        // Fetching forms write src (and cmpxchg writes r0).
        const bool writes_src = row.sem != Sem::AtomicAdd && row.sem != Sem::AtomicOr && row.sem != Sem::AtomicAnd &&
                                row.sem != Sem::AtomicXor;
        emit(row, base, writes_src ? writable() : readable(), off, 0);
    }

    // x = v; [one instruction]; if (c) goto +1; x = 1 - v | x |= bit | x = w (then maybe y += x,
    // clang's y += c); or if (c) goto +2; x = y; x op= imm, with a shift by k of y where c is
    // y < 2^k (clang's log2 by halving). Often c is the last select's test again, as written or
    // in another form (inverted, or x > K as x >= K + 1): clang's selects of one condition.
    void select() {
        const OpInfo* row = cond_[pick(cond_.size())];
        uint8_t tested = readable();
        int32_t imm = row->form == Form::CondImm ? interesting() : 0;
        if (last_test_.row != nullptr && chance(45)) {
            row = last_test_.row;
            tested = last_test_.reg;
            imm = last_test_.imm;
            other_form(row, imm);
        }
        if (chance(30)) {
            copy_select(row, tested, imm);
            return;
        }
        const uint8_t x = writable();
        const bool wide = chance(50);
        const OpInfo& mov = row_named(wide ? "mov" : "mov32", Form::AluImm);
        const uint64_t shape = pick(3);
        const int32_t v = shape == 2 ? interesting() : static_cast<int32_t>(pick(2));
        emit(mov, x, 0, 0, v);
        if (chance(40)) {
            alu();  // (may read or write x)
        }
        const std::size_t jump = emit(*row, tested, row->form == Form::CondReg ? readable() : 0, 0, imm);
        remember(*row, tested, imm);
        if (shape == 0) {
            emit(mov, x, 0, 0, 1 - v);
        } else if (shape == 1) {
            emit(row_named(wide ? "or" : "or32", Form::AluImm), x, 0, 0, int32_t{1} << pick(31));
        } else {
            emit(mov, x, 0, 0, interesting());
        }
        code_[jump].off = 1;
        const uint8_t y = writable();
        if (shape == 0 && y != x && chance(40)) {
            // clang's y += c: an add of x, often its last read (x written again)
            emit(row_named(chance(50) ? "add" : "add32", Form::AluReg), y, x, 0, 0);
            if (chance(70)) {
                mov_imm(x, interesting());
            }
        }
    }
    // if (c) goto +2; x = y; x op= imm (two writes).
    void copy_select(const OpInfo* row, uint8_t tested, int32_t imm) {
        static constexpr std::string_view kOps[] = {"add", "sub", "or", "and", "xor", "lsh", "rsh", "arsh"};
        const bool wide = chance(50);
        uint8_t y = readable();
        std::string_view op = kOps[pick(std::size(kOps))];
        int32_t value = interesting();
        if (chance(50)) {
            // The log2 shape: c is y < 2^k (or an equivalent), the op y >> k, at c's width.
            // (k up to 30: 2^k is a positive immediate)
            const auto k = static_cast<int32_t>(1 + pick(30));
            static constexpr std::string_view kTests[] = {"jlt", "jle", "jge", "jgt"};
            const std::string_view t = kTests[pick(std::size(kTests))];
            row = &row_named(std::string(t) + (wide ? "" : "32"), Form::CondImm);
            y = tested;
            imm = t == "jlt" || t == "jge" ? int32_t{1} << k : (int32_t{1} << k) - 1;
            op = "rsh";
            value = k;
        }
        uint8_t x = writable();
        if (x == y) {
            x = y == 9 ? 8 : 9;
            if (std::find(counters_.begin(), counters_.end(), x) != counters_.end()) {
                x = writable();
            }
        }
        if (op == "lsh" || op == "rsh" || op == "arsh") {
            value = static_cast<int32_t>(static_cast<uint32_t>(value) % (wide ? 64 : 32));
        }
        const std::size_t jump = emit(*row, tested, row->form == Form::CondReg ? readable() : 0, 0, imm);
        remember(*row, tested, imm);
        emit(row_named(wide ? "mov" : "mov32", Form::AluReg), x, y, 0, 0);
        emit(row_named(std::string(op) + (wide ? "" : "32"), Form::AluImm), x, 0, 0, value);
        code_[jump].off = 2;
    }
    void remember(const OpInfo& row, uint8_t reg, int32_t imm) {
        last_test_ = {row.form == Form::CondImm ? &row : nullptr, reg, imm};
    }
    // The same test in another form, now and then: inverted (then the jump is taken where it
    // was not), or against the next constant (x > K as x >= K + 1, x <= K as x < K + 1).
    void other_form(const OpInfo*& row, int32_t& imm) {
        static constexpr std::pair<std::string_view, std::string_view> kInverse[] = {
            {"jeq", "jne"}, {"jlt", "jge"}, {"jgt", "jle"}, {"jslt", "jsge"}, {"jsgt", "jsle"}};
        static constexpr std::pair<std::string_view, std::string_view> kNext[] = {
            {"jgt", "jge"}, {"jle", "jlt"}, {"jsgt", "jsge"}, {"jsle", "jslt"}};
        const std::string_view m = row->mnemonic;
        const bool w32 = m.size() > 2 && m.substr(m.size() - 2) == "32";
        const std::string_view base = w32 ? m.substr(0, m.size() - 2) : m;
        const std::string suffix = w32 ? "32" : "";
        const uint64_t how = pick(3);
        if (how == 1) {
            for (const auto& [a, b] : kInverse) {
                if (base == a || base == b) {
                    row = &row_named(std::string(base == a ? b : a) + suffix, Form::CondImm);
                    return;
                }
            }
        } else if (how == 2 && imm != -1 && imm != INT32_MAX) {
            for (const auto& [a, b] : kNext) {
                if (base == a) {
                    row = &row_named(std::string(b) + suffix, Form::CondImm);
                    imm += 1;
                    return;
                }
            }
        }
    }
    struct Test {
        const OpInfo* row = nullptr;  // a CondImm row, or none
        uint8_t reg = 0;
        int32_t imm = 0;
    };
    Test last_test_;

    void branch(unsigned depth) {
        const OpInfo& row = *cond_[pick(cond_.size())];
        uint8_t tested = readable();
        if (chance(25)) {
            // clang's habit: a copy made for the compare only (then dead on both paths), maybe
            // with an instruction between (which may touch the source)
            const uint8_t t = writable();
            emit(row_named(chance(50) ? "mov" : "mov32", Form::AluReg), t, readable(), 0, 0);
            if (chance(50)) {
                alu();
            }
            tested = t;
            const uint8_t other = row.form == Form::CondReg ? readable() : 0;
            const std::size_t jump = emit(row, t, other, 0, row.form == Form::CondImm ? interesting() : 0);
            mov_imm(t, interesting());  // dead on the fall-through path...
            block(1 + static_cast<unsigned>(pick(3)), depth + 1);
            code_[jump].off = static_cast<int16_t>(code_.size() - jump - 1);
            mov_imm(t, interesting());  // ...and where the jump lands
            return;
        }
        const std::size_t jump = emit(row, tested, row.form == Form::CondReg ? readable() : 0, 0,
                                      row.form == Form::CondImm ? interesting() : 0);
        block(1 + static_cast<unsigned>(pick(4)), depth + 1);
        if (chance(40)) {
            // if/else: the then-part jumps over the else-part (ja or its 32-bit form).
            const bool wide = chance(30);
            const std::size_t over =
                emit(row_named(wide ? "ja32" : "ja", wide ? Form::Jump32 : Form::Jump), 0, 0, 0, 0);
            code_[jump].off = static_cast<int16_t>(code_.size() - jump - 1);
            block(1 + static_cast<unsigned>(pick(3)), depth + 1);
            const auto distance = static_cast<int32_t>(code_.size() - over - 1);
            if (wide) {
                code_[over].imm = distance;
            } else {
                code_[over].off = static_cast<int16_t>(distance);
            }
        } else {
            code_[jump].off = static_cast<int16_t>(code_.size() - jump - 1);
        }
    }

    void loop(unsigned depth) {
        uint8_t c = 7;
        for (uint8_t r : {7, 8, 9}) {
            if (std::find(counters_.begin(), counters_.end(), r) == counters_.end()) {
                c = r;
            }
        }
        mov_imm(c, 1 + static_cast<int32_t>(pick(6)));
        counters_.push_back(c);
        const std::size_t head = code_.size();
        block(1 + static_cast<unsigned>(pick(4)), depth + 1);
        counters_.pop_back();
        if (chance(25)) {
            // the decrement as clang sometimes spreads it: t = c - 1 in a copy, the old c still
            // read, then c = t (t dead afterwards)
            uint8_t t = writable();
            while (t == c) {
                t = writable();
            }
            emit(row_named("mov", Form::AluReg), t, c, 0, 0);
            const bool add = chance(50);
            emit(row_named(add ? "add" : "sub", Form::AluImm), t, 0, 0, add ? -1 : 1);
            uint8_t u = writable();
            while (u == c || u == t) {
                u = writable();
            }
            emit(row_named("mov", Form::AluReg), u, c, 0, 0);
            if (chance(20)) {
                emit(row_named("or", Form::AluImm), c, 0, 0, 0);  // c written (same value) between
            }
            emit(row_named("mov", Form::AluReg), c, t, 0, 0);
            if (chance(70)) {
                mov_imm(t, interesting());  // t dead (else still read, maybe)
            }
        } else if (chance(50)) {
            emit(row_named("sub", Form::AluImm), c, 0, 0, 1);
        } else {
            emit(row_named("add", Form::AluImm), c, 0, 0, -1);
        }
        if (chance(30)) {
            // as clang lays out some loops: leave when done, else jump back
            static constexpr const char* kDone[] = {"jeq", "jsle", "jle", "jeq32", "jsle32"};
            const std::size_t done = emit(row_named(kDone[pick(std::size(kDone))], Form::CondImm), c, 0, 1, 0);
            const std::size_t back = emit(row_named("ja", Form::Jump), 0, 0, 0, 0);
            (void)done;
            code_[back].off = static_cast<int16_t>(static_cast<int64_t>(head) - static_cast<int64_t>(back) - 1);
            return;
        }
        static constexpr const char* kBack[] = {"jne", "jsgt", "jgt", "jne32", "jsgt32"};
        const std::size_t back = emit(row_named(kBack[pick(std::size(kBack))], Form::CondImm), c, 0, 0, 0);
        code_[back].off = static_cast<int16_t>(static_cast<int64_t>(head) - static_cast<int64_t>(back) - 1);
    }

    // A loop that walks the buffer by a fixed stride, in the shapes checked mode's windows
    // (jit/src/windows.hpp) run without checks: a pointer stepped by a constant, an index added
    // to the buffer (64- or 32-bit), or clang's rotated loop where the index is set from a
    // counter before the counter steps. Hostile programs walk past either end, or start the
    // rotated index off its counter.
    void walk() {
        uint8_t c = 7;
        for (uint8_t r : {7, 8, 9}) {
            if (std::find(counters_.begin(), counters_.end(), r) == counters_.end()) {
                c = r;
            }
        }
        auto other = [&](std::initializer_list<uint8_t> taken) {
            for (;;) {
                const uint8_t r = writable();
                if (std::find(taken.begin(), taken.end(), r) == taken.end()) {
                    return r;
                }
            }
        };
        const uint8_t p = other({c});
        const uint8_t t = other({c, p});
        const uint8_t a = other({c, p, t});
        const uint8_t j = other({c, p, t, a});
        const unsigned w = width();
        const auto slots = static_cast<int64_t>(o_.buffer_size / w);
        const int64_t step = chance(70) ? 1 : 2;  // in slots of w bytes
        const bool down = chance(25);
        int64_t n = 1 + static_cast<int64_t>(pick(static_cast<uint64_t>((slots - 1) / step + 1)));
        const int64_t first = down ? slots - 1 - static_cast<int64_t>(pick(static_cast<uint64_t>(slots - (n - 1) * step)))
                                   : static_cast<int64_t>(pick(static_cast<uint64_t>(slots - (n - 1) * step)));
        if (o_.hostile && chance(40)) {
            n += 1 + static_cast<int64_t>(pick(4));  // past the end (or the start)
        }
        const auto start = static_cast<int32_t>(first * w);
        const auto stride = static_cast<int32_t>((down ? -step : step) * static_cast<int64_t>(w));
        const bool store = chance(25);
        auto access = [&](uint8_t base) {
            if (store) {
                store_from(base, 0, w, a);
            } else {
                load_into(t, base, 0, w);
                emit(row_named(chance(50) ? "add" : "xor", Form::AluReg), a, t, 0, 0);
            }
        };
        mov_imm(a, interesting());
        mov_imm(c, static_cast<int32_t>(n));
        const uint64_t shape = pick(3);
        if (shape == 0) {
            emit(row_named("mov", Form::AluReg), p, kBuffer, 0, 0);
            emit(row_named("add", Form::AluImm), p, 0, 0, start);
            const std::size_t head = code_.size();
            access(p);
            emit(row_named("add", Form::AluImm), p, 0, 0, stride);
            emit(row_named("add", Form::AluImm), c, 0, 0, -1);
            const std::size_t back = emit(row_named("jne", Form::CondImm), c, 0, 0, 0);
            code_[back].off = static_cast<int16_t>(static_cast<int64_t>(head) - static_cast<int64_t>(back) - 1);
        } else if (shape == 1) {
            const bool w32 = chance(50);
            mov_imm(p, start);
            const std::size_t head = code_.size();
            emit(row_named("mov", Form::AluReg), t, kBuffer, 0, 0);
            emit(row_named("add", Form::AluReg), t, p, 0, 0);
            access(t);
            emit(row_named(w32 && !down ? "add32" : "add", Form::AluImm), p, 0, 0, stride);
            emit(row_named("add", Form::AluImm), c, 0, 0, -1);
            const std::size_t back = emit(row_named("jne", Form::CondImm), c, 0, 0, 0);
            code_[back].off = static_cast<int16_t>(static_cast<int64_t>(head) - static_cast<int64_t>(back) - 1);
        } else {
            // j = start + stride; i = start; goto B; A: i = j; j += stride; B: access at i ...
            int32_t j0 = start + stride;
            if (o_.hostile && chance(30)) {
                j0 = static_cast<int32_t>(w * pick(static_cast<uint64_t>(slots)));
            }
            const bool w32 = !down && j0 >= 0 && chance(50);
            mov_imm(j, j0);
            mov_imm(p, start);
            const std::size_t over = emit(row_named("ja", Form::Jump), 0, 0, 0, 0);
            const std::size_t again = code_.size();
            emit(row_named(w32 ? "mov32" : "mov", Form::AluReg), p, j, 0, 0);
            emit(row_named(w32 ? "add32" : "add", Form::AluImm), j, 0, 0, stride);
            code_[over].off = static_cast<int16_t>(code_.size() - over - 1);
            emit(row_named("mov", Form::AluReg), t, kBuffer, 0, 0);
            emit(row_named("add", Form::AluReg), t, p, 0, 0);
            access(t);
            emit(row_named("add", Form::AluImm), c, 0, 0, -1);
            const std::size_t back = emit(row_named("jne", Form::CondImm), c, 0, 0, 0);
            code_[back].off = static_cast<int16_t>(static_cast<int64_t>(again) - static_cast<int64_t>(back) - 1);
            mov_imm(j, interesting());
        }
        // No pointer is left behind.
        mov_imm(p, interesting());
        mov_imm(t, interesting());
    }

    void call_local() { call_local(current_ + 1 + static_cast<unsigned>(pick(starts_.size() - 1 - current_))); }
    void call_local(unsigned callee) {
        emit(row_named("mov", Form::AluReg), 1, kBuffer, 0, 0);
        for (uint8_t r : {2, 3, 4}) {
            emit(row_named("mov", Form::AluReg), r, readable(), 0, 0);
        }
        emit(row_named("mov", Form::AluReg), 5, 10, 0, 0);
        emit(row_named("add", Form::AluImm), 5, 0, 0, stack_slot(8));
        call_fixes_.emplace_back(emit(row_named("call", Form::CallLocal), 0, 1, 0, 0), callee);
        init_registers({1, 2, 3, 4, 5});  // the kernel's rule: r1-r5 are unreadable after a call
    }

    void call_helper() {
        if (chance(25)) {
            mov_imm(0, kMixHelper);
            emit(row_named("call", Form::Callx), 0, 0, 0, 0);
        } else {
            emit(row_named("call", Form::Call), 0, 0, 0, kMixHelper);
        }
        if (o_.reset_after_calls) {
            init_registers({1, 2, 3, 4, 5});
        }
    }

    void packet_load() {
        const OpInfo& row = *packet_[pick(packet_.size())];
        const auto imm = static_cast<int32_t>(pick(o_.buffer_size + 8));
        emit(row, 0, row.form == Form::LoadInd ? readable() : 0, 0, row.form == Form::LoadInd ? imm / 4 : imm);
    }

    // Hostile: accesses no engine may let through.
    void stray() {
        const uint8_t t = writable();
        switch (pick(5)) {
            case 0:
                load_into(t, kBuffer, static_cast<int16_t>(o_.buffer_size + pick(64)), width());
                break;
            case 1:
                emit(row_named("stxb", Form::StoreReg), 10, readable(), static_cast<int16_t>(pick(100)), 0);
                break;
            case 2:
                load_into(t, 10, static_cast<int16_t>(-520 - static_cast<int>(pick(64))), width());
                break;
            case 3:
                emit(row_named("lock add", Form::Atomic), kBuffer, readable(), static_cast<int16_t>(1 + 2 * pick(8)),
                     0);
                break;
            default:
                lddw(t, 0x7fff00000000ull + pick(1u << 20));
                load_into(t, t, 0, width());
                break;
        }
    }
};

uint64_t mix(uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4, uint64_t r5, vm::CallContext*) {
    uint64_t h = 0x9e3779b97f4a7c15ull;
    for (uint64_t v : {r1, r2, r3, r4, r5}) {
        h = (h ^ v) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    return h;
}

}  // namespace

vm::HelperTable mix_helpers() {
    vm::HelperTable t;
    (void)t.add(static_cast<uint32_t>(kMixHelper), "mix", mix);
    return t;
}

std::vector<RawInsn> random_program(uint64_t seed, const RandomProgramOptions& options) {
    return Generator(seed, options).run();
}

std::vector<uint8_t> random_buffer(uint64_t seed, std::size_t size) {
    std::mt19937_64 rng(seed ^ 0xb0ff3e5ull);
    std::vector<uint8_t> out(size);
    for (uint8_t& b : out) {
        b = static_cast<uint8_t>(rng());
    }
    return out;
}

}  // namespace bpfvm::test
