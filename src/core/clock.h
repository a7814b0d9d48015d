/* Monotonic wall-clock seconds, for progress lines and the timings reports print. */
#ifndef ROTQ_CORE_CLOCK_H
#define ROTQ_CORE_CLOCK_H
#include <time.h>

static inline double rotq_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
#endif
