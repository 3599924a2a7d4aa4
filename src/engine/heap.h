#pragma once
// How the C heap treats the prefill's activation blocks (glibc; elsewhere these do nothing).

namespace dapx {

// Process set-up (the CLI's main): freed blocks of up to 32 MiB stay in the heap for the next
// chunk or layer instead of going back to the kernel. By default glibc maps large blocks
// (activation tensors of a prefill chunk are 1-20 MiB) with mmap and unmaps them on free, and
// trims the heap's top, so every chunk faults in fresh zeroed pages: 2.1 M page faults in a
// 4096-token prefill, 15 s of its 24 s on a 2-core KVM guest (9.6 s with this; same peak RSS
// within 2%), 14% of the time on another.
void keep_freed_blocks_for_reuse();

// Returns the heap's free pages to the kernel (malloc_trim): after a request, so that an idle
// server holds no more than its live data.
void release_free_heap();

// Calls release_free_heap() when it goes out of scope (declared first in a request, it runs
// after the request's own tensors are freed).
struct ReleaseFreeHeapOnExit {
  ReleaseFreeHeapOnExit() = default;
  ReleaseFreeHeapOnExit(const ReleaseFreeHeapOnExit&) = delete;
  ReleaseFreeHeapOnExit& operator=(const ReleaseFreeHeapOnExit&) = delete;
  ~ReleaseFreeHeapOnExit() { release_free_heap(); }
};

}  // namespace dapx
