#!/bin/sh
# Hit ratio of LRU vs S3-FIFO (the cache's default) on Zipf traces at equal
# byte bounds: bench/cache_policy.sh [OBJECTS [REQUESTS]] (defaults 100000,
# 2000000; about a minute). Compiles only the cache and core sources it uses.
set -eu
cd "$(dirname "$0")/.."
mkdir -p build
cc -std=c11 -D_GNU_SOURCE -O2 -Isrc bench/cache_policy.c src/gateway/cache.c \
    src/gateway/cache_parse.c src/gateway/cache_policy.c src/core/slice.c src/core/alloc.c \
    src/core/log.c src/core/timefmt.c -lpthread -lm -o build/cache_policy
exec build/cache_policy "$@"
