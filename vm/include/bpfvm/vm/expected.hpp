// Errors for untrusted input: a value or an error that says where and what (DESIGN.md, decision 9).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <variant>

namespace bpfvm {

struct Error {
    std::string where;  // "pc 17", "prog.s:3:9", "section 'xdp'"; may be empty
    std::string what;

    [[nodiscard]] std::string message() const { return where.empty() ? what : where + ": " + what; }
};

// Every error is made here, so one breakpoint catches them all.
[[nodiscard]] inline Error make_error(std::string where, std::string what) {
    return Error{std::move(where), std::move(what)};
}

template <typename T>
class [[nodiscard]] Expected {
public:
    Expected(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
    Expected(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

    [[nodiscard]] bool has_value() const { return v_.index() == 0; }
    explicit operator bool() const { return has_value(); }

    T& value() & { return std::get<0>(v_); }
    const T& value() const& { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    [[nodiscard]] const Error& error() const { return std::get<1>(v_); }

private:
    std::variant<T, Error> v_;
};

struct Unit {};

// A broken internal invariant: not a user error, so stop with the file and line.
[[noreturn]] inline void invariant_failed(const char* cond, const char* file, int line) {
    std::fprintf(stderr, "bpfvm: internal invariant failed: %s (%s:%d)\n", cond, file, line);
    std::abort();
}

}  // namespace bpfvm

#define BPFVM_ASSERT(cond)                                        \
    do {                                                          \
        if (!(cond)) {                                            \
            ::bpfvm::invariant_failed(#cond, __FILE__, __LINE__); \
        }                                                         \
    } while (0)
