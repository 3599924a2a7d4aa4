#include "engine/heap.h"

#include <cstddef>  // defines __GLIBC__ (through features.h) where it applies

#ifdef __GLIBC__
#include <malloc.h>
#endif

namespace dapx {

void keep_freed_blocks_for_reuse() {
#ifdef __GLIBC__
  // Blocks below this come from the heap (reused); larger ones are still mapped and unmapped.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  // Free memory at the heap's top is kept up to this much (a chunk's blocks, freed together).
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
#endif
}

void release_free_heap() {
#ifdef __GLIBC__
  malloc_trim(0);
#endif
}

}  // namespace dapx
