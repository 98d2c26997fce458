/* clock.c: wall and monotonic clocks. */
#include "util/clock.h"

#include <stdio.h>
#include <time.h>

int64_t clock_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void clock_format_iso(int64_t ms, char *out, int outlen)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    int n = (int)strftime(out, (size_t)outlen, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, (size_t)(outlen - n), ".%03dZ", (int)(ms % 1000));
}
