// Counts heap allocations by defining the C allocator's entry points in the executable and
// forwarding each call to glibc's own implementation. The executable exports them
// (--export-dynamic), so the dynamic linker binds every library's calls to them: the Swift
// runtime's, OpenSSL's, the pool's. (glibc's calls from inside itself, strdup's for one, bypass
// them and are not counted.)
#include "MallocCounter.h"

#include <errno.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stddef.h>
#include <unistd.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void __libc_free(void *pointer);
extern void *__libc_memalign(size_t alignment, size_t size);

static _Thread_local uint64_t thread_allocations;
static _Atomic uint64_t total_allocations;

static inline void count(void) {
    thread_allocations++;
    atomic_fetch_add_explicit(&total_allocations, 1, memory_order_relaxed);
}

uint64_t mc_thread_allocations(void) { return thread_allocations; }

uint64_t mc_total_allocations(void) { return atomic_load_explicit(&total_allocations, memory_order_relaxed); }

void mc_trim(void) { malloc_trim(0); }

void *malloc(size_t size) {
    count();
    return __libc_malloc(size);
}

void *calloc(size_t count_, size_t size) {
    count();
    return __libc_calloc(count_, size);
}

void *realloc(void *pointer, size_t size) {
    count();
    return __libc_realloc(pointer, size);
}

void free(void *pointer) { __libc_free(pointer); }

void *memalign(size_t alignment, size_t size) {
    count();
    return __libc_memalign(alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size) {
    count();
    return __libc_memalign(alignment, size);
}

int posix_memalign(void **result, size_t alignment, size_t size) {
    if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0) return EINVAL;
    count();
    void *pointer = __libc_memalign(alignment, size);
    if (!pointer) return ENOMEM;
    *result = pointer;
    return 0;
}

void *valloc(size_t size) {
    count();
    return __libc_memalign((size_t)sysconf(_SC_PAGESIZE), size);
}
