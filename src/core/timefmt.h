/* Wall-clock time in the shapes Cruder prints: PocketBase's datetime
 * ("2006-01-02 15:04:05.000Z", UTC) and HTTP's IMF-fixdate. */
#ifndef CORE_TIMEFMT_H
#define CORE_TIMEFMT_H

#include <stdint.h>
#include <time.h>

enum { TIMEFMT_PB_LEN = 24, TIMEFMT_HTTP_LEN = 29 };

int64_t time_now_ms(void);
/* Monotonic milliseconds, for deadlines and latency. */
uint64_t time_mono_ms(void);
uint64_t time_mono_ns(void);
/* Writes TIMEFMT_PB_LEN characters and a NUL. */
void time_format_pb(int64_t unix_ms, char out[TIMEFMT_PB_LEN + 1]);
/* Writes TIMEFMT_HTTP_LEN characters and a NUL. */
void time_format_http(time_t t, char out[TIMEFMT_HTTP_LEN + 1]);
/* Parses "YYYY-MM-DD[ T]HH:MM:SS[.fff][Z]" or "YYYY-MM-DD"; 0 on success, -1 otherwise. */
int time_parse_pb(const char *s, size_t n, int64_t *unix_ms);
/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil); month 1-12. */
int64_t time_days_from_civil(int64_t y, int m, int d);

#endif
