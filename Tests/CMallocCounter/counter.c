#include <stddef.h>
#include <errno.h>
#include <stdatomic.h>
#include <malloc.h>
#include "CMallocCounter.h"

#if defined(__has_feature)
#  if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#    define WSS_NO_MALLOC_COUNTER 1
#  endif
#endif

unsigned long wss_heap_size(const void *p) { return (unsigned long)malloc_usable_size((void *)p); }
unsigned long wss_heap_in_use(void) { return (unsigned long)mallinfo2().uordblks; }

#ifdef WSS_NO_MALLOC_COUNTER
/* Sanitizers replace malloc themselves: counting is unavailable. */
void wss_malloc_counting(int on) { (void)on; }
void wss_malloc_count_this_thread(void) {}
unsigned long wss_malloc_count(void) { return 0; }
int wss_malloc_counter_available(void) { return 0; }
#else
int wss_malloc_counter_available(void) { return 1; }

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static atomic_int counting;
static atomic_ulong count;
/* Only threads that opted in are counted: threads other tests left behind (a cooperative-pool
   task, a loop still winding down) must not make this test fail, nor hide its own counts. */
static _Thread_local int counted_thread;

static inline void note(void) {
    if (counted_thread && atomic_load_explicit(&counting, memory_order_relaxed))
        atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
}

void wss_malloc_count_this_thread(void) { counted_thread = 1; }

void wss_malloc_counting(int on) { atomic_store(&counting, on); }
unsigned long wss_malloc_count(void) { return atomic_load(&count); }

void *malloc(size_t n) { note(); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { note(); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { note(); return __libc_realloc(p, n); }
void free(void *p) { __libc_free(p); }
void *memalign(size_t al, size_t n) { note(); return __libc_memalign(al, n); }
void *aligned_alloc(size_t al, size_t n) { note(); return __libc_memalign(al, n); }
int posix_memalign(void **out, size_t al, size_t n) {
    note();
    void *p = __libc_memalign(al, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}
#endif
