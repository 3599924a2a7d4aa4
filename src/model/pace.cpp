#include "model/pace.h"

namespace dapx {
namespace {
thread_local const std::function<void()>* current_yield = nullptr;
}  // namespace

PaceScope::PaceScope(std::function<void()> yield)
    : yield_(std::move(yield)), previous_(current_yield) {
  current_yield = &yield_;
}

PaceScope::~PaceScope() { current_yield = previous_; }

void pace_point() {
  if (current_yield && *current_yield) (*current_yield)();
}

}  // namespace dapx
