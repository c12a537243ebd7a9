#include "bpfvm/vm/assembler.hpp"

#include <charconv>
#include <limits>
#include <map>
#include <optional>

namespace bpfvm::vm {

namespace {

struct Token {
    std::string_view text;
    std::size_t column;  // 1-based
};

struct Line {
    std::size_t number;
    std::vector<Token> tokens;
};

// Mnemonic -> table rows with that spelling (several forms share a mnemonic).
const std::multimap<std::string_view, Op>& mnemonics() {
    static const std::multimap<std::string_view, Op> map = [] {
        std::multimap<std::string_view, Op> m;
        for (const OpInfo& row : kOpTable) {
            m.emplace(row.mnemonic, row.op);
        }
        return m;
    }();
    return map;
}

class Assembler {
public:
    Assembler(std::string_view text, std::string_view source) : text_(text), source_(source) {}

    Expected<std::vector<RawInsn>> run() {
        split_lines();
        // Pass 1: slot index of every label.
        std::size_t slot = 0;
        std::optional<std::size_t> first_exit;
        for (Line& line : lines_) {
            if (!line.tokens.empty() && line.tokens[0].text.back() == ':') {
                const Token label = line.tokens[0];
                const std::string name(label.text.substr(0, label.text.size() - 1));
                if (name.empty()) {
                    return error(line, label, "empty label name");
                }
                if (!labels_.emplace(name, slot).second) {
                    return error(line, label, "label '" + name + "' is defined twice");
                }
                line.tokens.erase(line.tokens.begin());
            }
            if (line.tokens.empty()) {
                continue;
            }
            if (line.tokens[0].text == "exit" && !first_exit) {
                first_exit = slot;
            }
            slot += line.tokens[0].text == "lddw" ? 2 : 1;
        }
        if (first_exit && labels_.find("exit") == labels_.end()) {
            labels_.emplace("exit", *first_exit);
        }
        // Pass 2: encode.
        for (const Line& line : lines_) {
            if (line.tokens.empty()) {
                continue;
            }
            Expected<Unit> r = encode(line);
            if (!r) {
                return r.error();
            }
        }
        return std::move(out_);
    }

private:
    std::string_view text_;
    std::string_view source_;
    std::vector<Line> lines_;
    std::map<std::string, std::size_t> labels_;
    std::vector<RawInsn> out_;

    Error error(const Line& line, const Token& at, std::string what) const {
        return make_error(std::string(source_) + ":" + std::to_string(line.number) + ":" + std::to_string(at.column),
                          std::move(what));
    }
    Error error_eol(const Line& line, std::string what) const {
        const Token& last = line.tokens.back();
        return error(line, Token{"", last.column + last.text.size()}, std::move(what));
    }

    void split_lines() {
        std::size_t number = 0;
        std::size_t pos = 0;
        while (pos <= text_.size()) {
            std::size_t end = text_.find('\n', pos);
            if (end == std::string_view::npos) {
                end = text_.size();
            }
            std::string_view raw = text_.substr(pos, end - pos);
            ++number;
            if (const std::size_t hash = raw.find('#'); hash != std::string_view::npos) {
                raw = raw.substr(0, hash);
            }
            Line line{number, {}};
            std::size_t i = 0;
            while (i < raw.size()) {
                while (i < raw.size() && (raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\r' || raw[i] == ',')) {
                    ++i;
                }
                const std::size_t start = i;
                while (i < raw.size() && raw[i] != ' ' && raw[i] != '\t' && raw[i] != '\r' && raw[i] != ',') {
                    ++i;
                }
                if (i > start) {
                    line.tokens.push_back(Token{raw.substr(start, i - start), start + 1});
                }
            }
            lines_.push_back(std::move(line));
            if (end == text_.size()) {
                break;
            }
            pos = end + 1;
        }
    }

    // ---- operand parsers -----------------------------------------------------------------

    static std::optional<uint8_t> parse_reg(std::string_view t) {
        if (t.size() < 3 || t[0] != '%' || t[1] != 'r') {
            return std::nullopt;
        }
        unsigned n = 0;
        auto [p, ec] = std::from_chars(t.data() + 2, t.data() + t.size(), n);
        if (ec != std::errc() || p != t.data() + t.size() || n > 15) {
            return std::nullopt;
        }
        return static_cast<uint8_t>(n);
    }

    // Integer with optional sign; "0x" means hex. The magnitude must fit in 64 bits.
    static std::optional<std::pair<bool, uint64_t>> parse_int(std::string_view t) {
        bool neg = false;
        if (!t.empty() && (t[0] == '-' || t[0] == '+')) {
            neg = t[0] == '-';
            t.remove_prefix(1);
        }
        int base = 10;
        if (t.size() > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) {
            base = 16;
            t.remove_prefix(2);
        }
        if (t.empty()) {
            return std::nullopt;
        }
        uint64_t v = 0;
        auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v, base);
        if (ec != std::errc() || p != t.data() + t.size()) {
            return std::nullopt;
        }
        return std::make_pair(neg, v);
    }

    static bool is_hex(std::string_view t) {
        return t.find("0x") != std::string_view::npos || t.find("0X") != std::string_view::npos;
    }

    // 32-bit immediate: hex up to 0xffffffff (bits), or decimal in [-2^31, 2^32).
    Expected<int32_t> imm32(const Line& line, const Token& t) const {
        auto v = parse_int(t.text);
        if (!v) {
            return error(line, t, "expected an immediate, got '" + std::string(t.text) + "'");
        }
        const auto [neg, mag] = *v;
        if (neg ? mag > 0x80000000ull : mag > 0xffffffffull) {
            return error(line, t, "immediate " + std::string(t.text) + " does not fit in 32 bits");
        }
        const uint32_t bits = neg ? static_cast<uint32_t>(0u - static_cast<uint32_t>(mag)) : static_cast<uint32_t>(mag);
        return static_cast<int32_t>(bits);
    }

    Expected<uint64_t> imm64(const Line& line, const Token& t) const {
        auto v = parse_int(t.text);
        if (!v) {
            return error(line, t, "expected a 64-bit immediate, got '" + std::string(t.text) + "'");
        }
        const auto [neg, mag] = *v;
        if (neg && mag > 0x8000000000000000ull) {
            return error(line, t, "immediate " + std::string(t.text) + " does not fit in 64 bits");
        }
        return neg ? 0 - mag : mag;
    }

    Expected<uint8_t> reg(const Line& line, const Token& t) const {
        auto r = parse_reg(t.text);
        if (!r) {
            return error(line, t, "expected a register %r0..%r10, got '" + std::string(t.text) + "'");
        }
        return *r;
    }

    // [%rN], [%rN+off], [%rN-off]
    Expected<std::pair<uint8_t, int16_t>> mem(const Line& line, const Token& t) const {
        std::string_view s = t.text;
        if (s.size() < 2 || s.front() != '[' || s.back() != ']') {
            return error(line, t, "expected a memory operand like [%r1+8], got '" + std::string(s) + "'");
        }
        s = s.substr(1, s.size() - 2);
        const std::size_t sign = s.find_first_of("+-");
        auto r = parse_reg(s.substr(0, sign));
        if (!r) {
            return error(line, t, "expected a base register in '" + std::string(t.text) + "'");
        }
        int16_t off = 0;
        if (sign != std::string_view::npos) {
            auto v = parse_int(s.substr(sign));
            if (!v) {
                return error(line, t, "bad offset in '" + std::string(t.text) + "'");
            }
            const auto [neg, mag] = *v;
            if (is_hex(s) && !neg) {
                if (mag > 0xffff) {
                    return error(line, t, "offset in '" + std::string(t.text) + "' does not fit in 16 bits");
                }
                off = static_cast<int16_t>(static_cast<uint16_t>(mag));
            } else {
                if (neg ? mag > 0x8000 : mag > 0x7fff) {
                    return error(line, t, "offset in '" + std::string(t.text) + "' does not fit in 16 bits");
                }
                off = static_cast<int16_t>(neg ? -static_cast<int32_t>(mag) : static_cast<int32_t>(mag));
            }
        }
        return std::make_pair(*r, off);
    }

    // A label or a relative slot offset +N / -N; returns the offset from the next slot.
    Expected<int64_t> target(const Line& line, const Token& t, std::size_t slot) const {
        if (!t.text.empty() && (t.text[0] == '+' || t.text[0] == '-' || (t.text[0] >= '0' && t.text[0] <= '9'))) {
            auto v = parse_int(t.text);
            if (!v || v->second > (uint64_t{1} << 32)) {
                return error(line, t, "bad jump offset '" + std::string(t.text) + "'");
            }
            return v->first ? -static_cast<int64_t>(v->second) : static_cast<int64_t>(v->second);
        }
        auto it = labels_.find(std::string(t.text));
        if (it == labels_.end()) {
            return error(line, t, "undefined label '" + std::string(t.text) + "'");
        }
        return static_cast<int64_t>(it->second) - static_cast<int64_t>(slot) - 1;
    }

    Expected<int16_t> off16(const Line& line, const Token& t, int64_t v) const {
        if (v < std::numeric_limits<int16_t>::min() || v > std::numeric_limits<int16_t>::max()) {
            return error(line, t, "jump offset " + std::to_string(v) + " does not fit in 16 bits (use ja32)");
        }
        return static_cast<int16_t>(v);
    }
    Expected<int32_t> off32(const Line& line, const Token& t, int64_t v) const {
        if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max()) {
            return error(line, t, "offset " + std::to_string(v) + " does not fit in 32 bits");
        }
        return static_cast<int32_t>(v);
    }

    // ---- instructions --------------------------------------------------------------------

    Expected<Unit> encode(const Line& line) {
        const std::vector<Token>& tk = line.tokens;
        const Token& head = tk[0];
        std::string mnemonic(head.text);
        std::size_t first_operand = 1;
        if (head.text == "lock") {
            while (first_operand < tk.size() && tk[first_operand].text[0] != '[') {
                mnemonic += " " + std::string(tk[first_operand].text);
                ++first_operand;
            }
        }
        const std::vector<Token> ops(tk.begin() + static_cast<std::ptrdiff_t>(first_operand), tk.end());
        const std::size_t slot = out_.size();
        // Other spellings of the same instruction.
        if (mnemonic == "bswap16" || mnemonic == "bswap32" || mnemonic == "bswap64") {
            mnemonic.erase(0, 1);
        }

        if (mnemonic == "call") {
            return encode_call(line, ops, slot);
        }
        auto [lo, hi] = mnemonics().equal_range(mnemonic);
        if (lo == hi) {
            return error(line, head, "unknown instruction '" + mnemonic + "'");
        }
        // Choose among rows with this mnemonic by operand kind (register or immediate).
        const Form first_form = info(lo->second).form;
        bool want_reg = false;
        if (first_form == Form::AluImm || first_form == Form::AluReg) {
            if (ops.size() >= 2) {
                want_reg = parse_reg(ops[1].text).has_value();
            }
        } else if (first_form == Form::CondImm || first_form == Form::CondReg) {
            if (ops.size() >= 2) {
                want_reg = parse_reg(ops[1].text).has_value();
            }
        }
        std::optional<Op> chosen;
        for (auto it = lo; it != hi; ++it) {
            const Form f = info(it->second).form;
            const bool is_reg_form = f == Form::AluReg || f == Form::CondReg;
            const bool is_imm_form = f == Form::AluImm || f == Form::CondImm;
            if ((is_reg_form && !want_reg) || (is_imm_form && want_reg)) {
                continue;
            }
            chosen = it->second;
            break;
        }
        if (!chosen) {
            return error(line, ops.size() >= 2 ? ops[1] : head,
                         "'" + mnemonic + "' has no form with a " + (want_reg ? "register" : "immediate") + " operand");
        }
        const OpInfo& row = info(*chosen);
        RawInsn insn = with_selector(RawInsn{}, row);
        auto need = [&](std::size_t n) -> Expected<Unit> {
            if (ops.size() < n) {
                return error_eol(line, "'" + mnemonic + "' needs " + std::to_string(n) + " operand" +
                                           (n == 1 ? "" : "s") + ", got " + std::to_string(ops.size()));
            }
            if (ops.size() > n && !(row.form == Form::LoadImm64 && ops.size() == 3)) {
                return error(line, ops[n], "unexpected operand '" + std::string(ops[n].text) + "'");
            }
            return Unit{};
        };
#define TRY(var, expr)      \
    auto var = (expr);      \
    if (!var) {             \
        return var.error(); \
    }

        switch (row.form) {
            case Form::AluImm: {
                TRY(n, need(2));
                TRY(d, reg(line, ops[0]));
                TRY(i, imm32(line, ops[1]));
                insn.dst = *d;
                insn.imm = *i;
                break;
            }
            case Form::AluReg: {
                TRY(n, need(2));
                TRY(d, reg(line, ops[0]));
                TRY(s, reg(line, ops[1]));
                insn.dst = *d;
                insn.src = *s;
                break;
            }
            case Form::AluUnary:
            case Form::Endian:
            case Form::Callx: {
                TRY(n, need(1));
                TRY(d, reg(line, ops[0]));
                insn.dst = *d;
                break;
            }
            case Form::LoadMem: {
                TRY(n, need(2));
                TRY(d, reg(line, ops[0]));
                TRY(m, mem(line, ops[1]));
                insn.dst = *d;
                insn.src = m->first;
                insn.off = m->second;
                break;
            }
            case Form::StoreImm: {
                TRY(n, need(2));
                TRY(m, mem(line, ops[0]));
                TRY(i, imm32(line, ops[1]));
                insn.dst = m->first;
                insn.off = m->second;
                insn.imm = *i;
                break;
            }
            case Form::StoreReg:
            case Form::Atomic: {
                TRY(n, need(2));
                TRY(m, mem(line, ops[0]));
                TRY(s, reg(line, ops[1]));
                insn.dst = m->first;
                insn.off = m->second;
                insn.src = *s;
                break;
            }
            case Form::LoadImm64: {
                TRY(n, need(2));
                TRY(d, reg(line, ops[0]));
                TRY(v, imm64(line, ops[1]));
                insn.dst = *d;
                insn.imm = static_cast<int32_t>(static_cast<uint32_t>(*v));
                if (ops.size() == 3) {
                    auto k = parse_int(ops[2].text);
                    if (!k || k->first || k->second > 6) {
                        return error(line, ops[2],
                                     "lddw source kind must be 0..6, got '" + std::string(ops[2].text) + "'");
                    }
                    insn.src = static_cast<uint8_t>(k->second);
                }
                out_.push_back(insn);
                RawInsn second;
                second.imm = static_cast<int32_t>(static_cast<uint32_t>(*v >> 32));
                out_.push_back(second);
                return Unit{};
            }
            case Form::LoadAbs: {
                TRY(n, need(1));
                TRY(i, imm32(line, ops[0]));
                insn.imm = *i;
                break;
            }
            case Form::LoadInd: {
                TRY(n, need(2));
                TRY(s, reg(line, ops[0]));
                TRY(i, imm32(line, ops[1]));
                insn.src = *s;
                insn.imm = *i;
                break;
            }
            case Form::Jump: {
                TRY(n, need(1));
                TRY(t, target(line, ops[0], slot));
                TRY(o, off16(line, ops[0], *t));
                insn.off = *o;
                break;
            }
            case Form::Jump32: {
                TRY(n, need(1));
                TRY(t, target(line, ops[0], slot));
                TRY(o, off32(line, ops[0], *t));
                insn.imm = *o;
                break;
            }
            case Form::CondImm: {
                TRY(n, need(3));
                TRY(d, reg(line, ops[0]));
                TRY(i, imm32(line, ops[1]));
                TRY(t, target(line, ops[2], slot));
                TRY(o, off16(line, ops[2], *t));
                insn.dst = *d;
                insn.imm = *i;
                insn.off = *o;
                break;
            }
            case Form::CondReg: {
                TRY(n, need(3));
                TRY(d, reg(line, ops[0]));
                TRY(s, reg(line, ops[1]));
                TRY(t, target(line, ops[2], slot));
                TRY(o, off16(line, ops[2], *t));
                insn.dst = *d;
                insn.src = *s;
                insn.off = *o;
                break;
            }
            case Form::Exit: {
                TRY(n, need(0));
                break;
            }
            case Form::Call:
            case Form::CallLocal:
            case Form::CallBtf:
                BPFVM_ASSERT(false);  // handled by encode_call
        }
        out_.push_back(insn);
        return Unit{};
    }

    Expected<Unit> encode_call(const Line& line, const std::vector<Token>& ops, std::size_t slot) {
        RawInsn insn;
        if (ops.empty()) {
            return error_eol(line, "'call' needs a helper id, 'local TARGET', 'runtime ID' or a register");
        }
        const bool local = ops[0].text == "local";
        const bool runtime = ops[0].text == "runtime";
        std::size_t want = (local || runtime) ? 2 : 1;
        if (runtime && ops.size() == 3) {
            want = 3;  // call runtime ID, BTF_OBJECT_INDEX
        }
        if (ops.size() < want) {
            return error_eol(line, "'call " + std::string(ops[0].text) + "' needs an operand");
        }
        if (ops.size() > want) {
            return error(line, ops[want], "unexpected operand '" + std::string(ops[want].text) + "'");
        }
        if (local) {
            TRY(t, target(line, ops[1], slot));
            TRY(o, off32(line, ops[1], *t));
            insn = RawInsn{info(Op::CallLocal).opcode, 0, 1, 0, *o};
        } else if (runtime) {
            TRY(i, imm32(line, ops[1]));
            insn = RawInsn{info(Op::CallBtf).opcode, 0, 2, 0, *i};
            if (want == 3) {
                TRY(o, imm32(line, ops[2]));
                if (*o < std::numeric_limits<int16_t>::min() || *o > std::numeric_limits<int16_t>::max()) {
                    return error(line, ops[2], "BTF object index does not fit in 16 bits");
                }
                insn.off = static_cast<int16_t>(*o);
            }
        } else if (ops[0].text.size() > 1 && ops[0].text[0] == '%') {
            TRY(r, reg(line, ops[0]));
            insn = RawInsn{info(Op::Callx).opcode, *r, 0, 0, 0};
        } else {
            TRY(i, imm32(line, ops[0]));
            insn = RawInsn{info(Op::CallHelper).opcode, 0, 0, 0, *i};
        }
#undef TRY
        out_.push_back(insn);
        return Unit{};
    }
};

}  // namespace

Expected<std::vector<RawInsn>> assemble(std::string_view text, std::string_view source) {
    return Assembler(text, source).run();
}

}  // namespace bpfvm::vm
