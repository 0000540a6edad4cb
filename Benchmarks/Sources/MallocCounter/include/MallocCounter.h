#ifndef MALLOC_COUNTER_H
#define MALLOC_COUNTER_H

#include <stdint.h>

/// Heap allocations (malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign, valloc)
/// made by the calling thread since it started.
uint64_t mc_thread_allocations(void);

/// Heap allocations made by every thread of the process since it started.
uint64_t mc_total_allocations(void);

/// Returns freed heap memory to the system (malloc_trim(0)).
void mc_trim(void);

#endif
