#ifndef WSS_CMALLOCCOUNTER_H
#define WSS_CMALLOCCOUNTER_H
/* Counts heap allocations made while counting is on by the threads that called
   wss_malloc_count_this_thread(). Linked only into
   the test binary: its malloc family replaces libc's (executable symbols win at dynamic link)
   and forwards to glibc's __libc_* entry points. */
void wss_malloc_counting(int on);
/* Counts the calling thread's allocations from now on (e.g. the test thread and a server loop). */
void wss_malloc_count_this_thread(void);
unsigned long wss_malloc_count(void);
/* 0 under ASan/TSan, which own malloc. */
int wss_malloc_counter_available(void);
/* malloc_usable_size, for byte budgets of heap objects. */
unsigned long wss_heap_size(const void *p);
/* Bytes in use in the main malloc arena (mallinfo2), for per-object-group byte budgets. */
unsigned long wss_heap_in_use(void);
#endif
