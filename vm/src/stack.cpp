#include "bpfvm/vm/stack.hpp"

#include <memory>
#include <vector>

namespace bpfvm::vm {

namespace {

class StackPool {
public:
    uint8_t* acquire() {
        if (depth_ == stacks_.size()) {
            stacks_.push_back(std::make_unique<Stack>());
        }
        return stacks_[depth_++]->bytes;
    }
    void release() { --depth_; }

private:
    struct Stack {
        alignas(16) uint8_t bytes[kStackBytes]{};
    };
    std::vector<std::unique_ptr<Stack>> stacks_;
    std::size_t depth_ = 0;
};

thread_local StackPool t_stacks;

}  // namespace

StackLease::StackLease() : bytes_(t_stacks.acquire()) {}
StackLease::~StackLease() {
    t_stacks.release();
}

}  // namespace bpfvm::vm
