/* clock.h: time sources. Wall-clock milliseconds are what s2 stores (lease expiry must
 * survive a restart); monotonic nanoseconds are for measuring durations. */
#ifndef S2_CLOCK_H
#define S2_CLOCK_H

#include <stdint.h>

int64_t clock_wall_ms(void);
int64_t clock_mono_ns(void);
/* ISO 8601 UTC with milliseconds, e.g. 2026-11-24T17:20:00.123Z, into out (>= 25 bytes). */
void clock_format_iso(int64_t ms, char *out, int outlen);

#endif
