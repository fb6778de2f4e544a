#include "core/timefmt.h"

#include <stdio.h>
#include <stdbool.h>
#include <string.h>

int64_t time_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t time_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t time_mono_ms(void)
{
    return time_mono_ns() / 1000000ull;
}

void time_format_pb(int64_t unix_ms, char out[TIMEFMT_PB_LEN + 1])
{
    time_t sec = (time_t)(unix_ms / 1000);
    int ms = (int)(unix_ms % 1000);
    if (ms < 0) {
        ms += 1000;
        sec -= 1;
    }
    struct tm tm;
    gmtime_r(&sec, &tm);
    /* Fixed-width digits written by hand: snprintf cannot prove the width. */
    int parts[] = {(tm.tm_year + 1900) % 10000,
                   tm.tm_mon + 1,
                   tm.tm_mday,
                   tm.tm_hour,
                   tm.tm_min,
                   tm.tm_sec,
                   ms};
    static const int widths[] = {4, 2, 2, 2, 2, 2, 3};
    static const char seps[] = "-- ::.Z";
    char *p = out;
    for (int i = 0; i < 7; i++) {
        for (int w = widths[i] - 1, v = parts[i]; w >= 0; w--, v /= 10)
            p[w] = (char)('0' + v % 10);
        p += widths[i];
        *p++ = seps[i];
    }
    *p = '\0';
}

void time_format_http(time_t t, char out[TIMEFMT_HTTP_LEN + 1])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, TIMEFMT_HTTP_LEN + 1, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int64_t time_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int time_parse_pb(const char *s, size_t n, int64_t *unix_ms)
{
    if (n < 10 || s[4] != '-' || s[7] != '-')
        return -1;
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > 31)
        return -1;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap))
        return -1;
    int h = 0, mi = 0, se = 0, ms = 0;
    size_t i = 10;
    if (i < n) {
        if ((s[i] != ' ' && s[i] != 'T') || n < i + 9 || s[i + 3] != ':' || s[i + 6] != ':')
            return -1;
        h = digits(s + i + 1, 2);
        mi = digits(s + i + 4, 2);
        se = digits(s + i + 7, 2);
        if (h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 || se > 59)
            return -1;
        i += 9;
        if (i < n && s[i] == '.') {
            i++;
            int scale = 100, nd = 0;
            while (i < n && s[i] >= '0' && s[i] <= '9') {
                if (nd < 3)
                    ms += (s[i] - '0') * scale;
                scale /= 10;
                nd++;
                i++;
            }
            if (nd == 0 || nd > 9)
                return -1;
        }
        if (i < n && s[i] == 'Z')
            i++;
    }
    if (i != n)
        return -1;
    *unix_ms = ((time_days_from_civil(y, mo, d) * 86400) + h * 3600 + mi * 60 + se) * 1000 + ms;
    return 0;
}
