// A clang-compiled test object (tests/progs/<stem>.<cpu>.o) with a runtime for its maps, run
// under every (cpu variant x interpreter mode) parameter.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <tuple>

#include "bpfvm/helpers/runtime.hpp"
#include "bpfvm/loader/object.hpp"
#include "bpfvm/vm/interpreter.hpp"

namespace bpfvm::test {

class ObjectTest : public ::testing::TestWithParam<std::tuple<const char*, vm::Mode>> {
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

    [[nodiscard]] vm::Mode mode() const { return std::get<1>(GetParam()); }

    // A program of the object, linked against the runtime, on the interpreter.
    std::unique_ptr<vm::Interpreter> interpreter(const std::string& name) {
        const loader::ProgramInfo* p = object_.find_program(name);
        EXPECT_NE(p, nullptr) << name;
        if (p == nullptr) {
            return nullptr;
        }
        Expected<vm::Program> linked = runtime_->link(p->insns, p->type);
        EXPECT_TRUE(linked) << name << ": " << linked.error().message();
        Expected<vm::Interpreter> interp = vm::Interpreter::create(*linked, runtime_->helpers());
        EXPECT_TRUE(interp) << interp.error().message();
        return std::make_unique<vm::Interpreter>(std::move(*interp));
    }

    loader::Object object_;
    std::unique_ptr<helpers::Runtime> runtime_;
};

inline std::string variant_name(const ::testing::TestParamInfo<ObjectTest::ParamType>& info) {
    return std::string(std::get<0>(info.param)) + (std::get<1>(info.param) == vm::Mode::Checked ? "_checked" : "_fast");
}

inline auto object_variants() {
    return ::testing::Combine(::testing::Values("v3", "v4"), ::testing::Values(vm::Mode::Checked, vm::Mode::Fast));
}

}  // namespace bpfvm::test
