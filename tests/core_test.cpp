// CO-RE relocations against a target BTF, and __kconfig externs, on clang-compiled objects.
#include <gtest/gtest.h>

#include <cstring>

#include "bpfvm/helpers/linked_object.hpp"
#include "bpfvm/loader/object.hpp"

namespace bpfvm::loader {
namespace {

std::string prog(const std::string& name) {
    return std::string(BPFVM_TEST_PROGS_DIR) + "/" + name;
}

vm::RunResult run(const Object& obj, const std::string& program, std::vector<uint8_t> mem) {
    std::vector<helpers::ProgramSource> sources;
    for (const ProgramInfo& p : obj.programs) {
        sources.push_back({p.name, p.type, p.insns});
    }
    Expected<std::unique_ptr<helpers::LinkedObject>> linked = helpers::LinkedObject::create(obj.maps, sources);
    EXPECT_TRUE(linked) << linked.error().message();
    Expected<const vm::Interpreter*> interp = (*linked)->program(program);
    EXPECT_TRUE(interp) << interp.error().message();
    std::vector<vm::Region> regions{vm::Region::of(std::span<uint8_t>(mem), "task")};
    vm::RunInput in;
    in.r1 = reinterpret_cast<uintptr_t>(mem.data());
    (*linked)->runtime().prepare(in, regions);
    return (*interp)->run(in, vm::RunOptions{vm::Mode::Checked, 10'000});
}

template <typename T>
std::vector<uint8_t> bytes_of(const T& v) {
    std::vector<uint8_t> out(sizeof v);
    std::memcpy(out.data(), &v, sizeof v);
    return out;
}

struct LocalTask {
    int32_t pad = 0;
    int32_t pid = 77;
    int16_t flags = 3;
};

struct TargetTask {  // core_target.bpf.c's layout
    int64_t start_time = 1;
    int64_t utime = 2;
    int32_t flags = 5;
    int32_t pid = 88;
    char comm[16] = {};
};

class Core : public ::testing::TestWithParam<const char*> {};

TEST_P(Core, WithoutATargetTheCompiledLayoutStands) {
    Expected<Object> obj = load_object_file(prog(std::string("core_access.") + GetParam() + ".o"));
    ASSERT_TRUE(obj) << obj.error().message();
    const vm::RunResult r = run(*obj, "read_task", bytes_of(LocalTask{}));
    ASSERT_TRUE(r.ok()) << r.trap->message();
    EXPECT_EQ(r.r0, 77u + 1000 * 2 + 100000 * sizeof(LocalTask) + 10000000 * 4);
}

TEST_P(Core, FieldsSizesAndEnumValuesFollowTheTargetBtf) {
    Expected<Btf> target = load_btf_file(prog(std::string("core_target.") + GetParam() + ".o"));
    ASSERT_TRUE(target) << target.error().message();
    LoadOptions options;
    options.target_btf = std::make_shared<const Btf>(std::move(*target));
    Expected<Object> obj = load_object_file(prog(std::string("core_access.") + GetParam() + ".o"), options);
    ASSERT_TRUE(obj) << obj.error().message();
    const vm::RunResult r = run(*obj, "read_task", bytes_of(TargetTask{}));
    ASSERT_TRUE(r.ok()) << r.trap->message();
    EXPECT_EQ(r.r0, 88u + 1000 * 4 + 100000 * sizeof(TargetTask) + 10000000 * 8);
}

TEST_P(Core, AnAccessWithNoMatchFailsOnlyWhenReached) {
    Expected<Btf> unrelated = load_btf_file(prog(std::string("parse_packet.") + GetParam() + ".o"));
    ASSERT_TRUE(unrelated) << unrelated.error().message();
    LoadOptions options;
    options.target_btf = std::make_shared<const Btf>(std::move(*unrelated));
    Expected<Object> obj = load_object_file(prog(std::string("core_access.") + GetParam() + ".o"), options);
    ASSERT_TRUE(obj) << obj.error().message();  // loading succeeds
    const vm::RunResult r = run(*obj, "read_task", bytes_of(TargetTask{}));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.trap->message(),
              "pc 0: reached a field or type access whose CO-RE relocation found no match in the target BTF");
}

TEST_P(Core, KconfigExternsTakeTheGivenValues) {
    const std::string path = prog(std::string("kconfig_user.") + GetParam() + ".o");
    Expected<Object> missing = load_object_file(path);
    ASSERT_FALSE(missing);
    // (externs are laid out as libbpf lays them out, the first missing one named: CONFIG_HZ)
    EXPECT_NE(missing.error().message().find("extern 'CONFIG_HZ': this __kconfig value was not given"),
              std::string::npos)
        << missing.error().message();
    LoadOptions options;
    options.kconfig = {{"LINUX_KERNEL_VERSION", (6u << 16) | (1u << 8)}, {"CONFIG_HZ", 250}};
    Expected<Object> obj = load_object_file(path, options);
    ASSERT_TRUE(obj) << obj.error().message();
    const vm::RunResult r = run(*obj, "kernel_info", std::vector<uint8_t>(8));
    ASSERT_TRUE(r.ok()) << r.trap->message();
    EXPECT_EQ(r.r0, 6u * 10000 + 250);
}

INSTANTIATE_TEST_SUITE_P(Variants, Core, ::testing::Values("v3", "v4"));

TEST(LoaderErrors, NameTheSourceLineOfAnInvalidInstruction) {
    for (const char* variant : {"v3", "v4"}) {
        const std::string path = prog(std::string("bad_jump.") + variant + ".o");
        Expected<Object> obj = load_object_file(path);
        ASSERT_FALSE(obj);
        const std::string m = obj.error().message();
        EXPECT_EQ(m.rfind(path + ": section 'xdp': program 'jumps_away': pc 0: jump target pc 1001 is outside the "
                                 "program",
                          0),
                  0u)
            << m;
        EXPECT_NE(m.find("bad_jump.bpf.c:6: asm volatile(\"goto +1000\");)"), std::string::npos) << m;
    }
}

TEST(CoreBtf, RefusesFilesWithoutBtf) {
    EXPECT_EQ(load_btf_file("/nonexistent").error().message(), "/nonexistent: cannot read: No such file or directory");
    const std::string conf = std::string(BPFVM_CONFORMANCE_DIR) + "/add.data";
    EXPECT_EQ(load_btf_file(conf).error().message(), conf + ": neither raw BTF nor an ELF file with a .BTF section");
}

}  // namespace
}  // namespace bpfvm::loader
