// A clang-compiled test object (tests/progs/<stem>.<cpu>.o) with a runtime for its maps, run
// under every (cpu variant x engine) parameter: each test asserts the same results on the
// interpreter and the JIT, checked and not.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <tuple>

#include "bpfvm/helpers/runtime.hpp"
#include "bpfvm/jit/engine.hpp"
#include "bpfvm/loader/object.hpp"
#include "bpfvm/vm/interpreter.hpp"

namespace bpfvm::test {

class ObjectTest : public ::testing::TestWithParam<std::tuple<const char*, jit::Engine>> {
protected:
    void load(const std::string& stem) {
        Expected<loader::Object> obj = loader::load_object_file(std::string(BPFVM_TEST_PROGS_DIR) + "/" + stem + "." +
                                                                std::get<0>(GetParam()) + ".o");
        ASSERT_TRUE(obj) << obj.error().message();
        object_ = std::move(*obj);
        Expected<std::unique_ptr<helpers::Runtime>> rt = helpers::Runtime::create(object_.maps);
        ASSERT_TRUE(rt) << rt.error().message();
        runtime_ = std::move(*rt);
    }

    [[nodiscard]] jit::Engine engine() const { return std::get<1>(GetParam()); }

    // A program of the object, linked against the runtime.
    std::optional<vm::Program> linked(const std::string& name) {
        const loader::ProgramInfo* p = object_.find_program(name);
        EXPECT_NE(p, nullptr) << name;
        if (p == nullptr) {
            return std::nullopt;
        }
        Expected<vm::Program> program = runtime_->link(p->insns, p->type);
        EXPECT_TRUE(program) << name << ": " << program.error().message();
        return program ? std::optional<vm::Program>(std::move(*program)) : std::nullopt;
    }

    // ... on the test's engine.
    std::unique_ptr<jit::Executable> executable(const std::string& name) {
        std::optional<vm::Program> program = linked(name);
        if (!program) {
            return nullptr;
        }
        Expected<jit::Executable> exe = jit::Executable::create(*program, runtime_->helpers(), engine());
        EXPECT_TRUE(exe) << exe.error().message();
        return exe ? std::make_unique<jit::Executable>(std::move(*exe)) : nullptr;
    }

    // ... on the interpreter (prog_array slots hold interpreters: tail-call targets).
    std::unique_ptr<vm::Interpreter> interpreter(const std::string& name) {
        std::optional<vm::Program> program = linked(name);
        if (!program) {
            return nullptr;
        }
        Expected<vm::Interpreter> interp = vm::Interpreter::create(*program, runtime_->helpers());
        EXPECT_TRUE(interp) << interp.error().message();
        return std::make_unique<vm::Interpreter>(std::move(*interp));
    }

    loader::Object object_;
    std::unique_ptr<helpers::Runtime> runtime_;
};

inline std::string variant_name(const ::testing::TestParamInfo<ObjectTest::ParamType>& info) {
    std::string engine(jit::to_string(std::get<1>(info.param)));
    std::replace(engine.begin(), engine.end(), '-', '_');
    return std::string(std::get<0>(info.param)) + "_" + engine;
}

inline auto object_variants() {
    return ::testing::Combine(::testing::Values("v3", "v4"), ::testing::ValuesIn(jit::available_engines()));
}

}  // namespace bpfvm::test
