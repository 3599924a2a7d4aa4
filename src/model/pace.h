#pragma once
// Pace points: a prefill gives the serving engine back between pieces of work, so running
// streams take their decode steps while a long prompt is admitted (continuous batching
// without a stall). They sit between layers and chunks of every prefill path (token-major
// forward, the layer-major compressed prefill, the draft's passes); outside a PaceScope they
// cost a thread-local read and do nothing. The scope is thread-confined and RAII, set by the
// thread that runs the prefill for its duration (as LibTorch's thread-local debug info is), so
// no method's signature has to carry the engine's scheduling. A yield never changes what is
// computed, only when.
#include <functional>

namespace dapx {

class PaceScope {
 public:
  // `yield` runs at every pace point of this thread while the scope lives (it may block
  // until the engine hands the thread its turn again).
  explicit PaceScope(std::function<void()> yield);
  ~PaceScope();
  PaceScope(const PaceScope&) = delete;
  PaceScope& operator=(const PaceScope&) = delete;

 private:
  std::function<void()> yield_;
  const std::function<void()>* previous_;
};

// Calls the innermost PaceScope's yield on this thread, if any.
void pace_point();

}  // namespace dapx
