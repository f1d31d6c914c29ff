/* The one clock of latency figures and time budgets: monotonic milliseconds (never jumps with the
 * wall clock, so a budget cannot expire early or last forever when the system time is set). */
#ifndef AUGURY_ENGINE_CLOCK_H
#define AUGURY_ENGINE_CLOCK_H

#include <time.h>

static inline double aug_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

#endif
