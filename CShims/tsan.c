// ThreadSanitizer annotations for the reactor-to-task handoff. The Swift concurrency runtime of
// this toolchain does not make a continuation's resume visible to TSan as synchronization (a
// value made on a plain thread and passed through `resume` is reported as a race), so HotPool
// states it with TSan's own hooks. The hooks are weak: outside a TSan build they are absent and
// these calls do nothing.
#include "CShims.h"

__attribute__((weak)) void __tsan_acquire(void *addr);
__attribute__((weak)) void __tsan_release(void *addr);

// The synchronization object every handoff names.
static char handoff;

void hp_tsan_handoff_release(void) {
    if (__tsan_release) __tsan_release(&handoff);
}

void hp_tsan_handoff_acquire(void) {
    if (__tsan_acquire) __tsan_acquire(&handoff);
}
