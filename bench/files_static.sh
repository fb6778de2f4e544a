#!/usr/bin/env bash
# Static assets: cruder's embedded console asset under /_/ against nginx
# serving the same bytes from disk (sendfile, open_file_cache: nginx at its
# best). Scenarios: the fingerprinted asset (200), the same revalidated (304
# on If-None-Match, each server with its own ETag), and index.html (200).
# Server on core 0, wrk on core 1. Prints "name: N req/s (ratio Xx anchor)";
# the goal is at least 0.9x nginx on each path.
#
# BENCH_DURATION (10s) and BENCH_CONNECTIONS (64) override.
set -euo pipefail

cd "$(dirname "$0")/.."
duration=${BENCH_DURATION:-10s}
connections=${BENCH_CONNECTIONS:-64}
bin=build-release/cruder
out=build-release/bench

for tool in wrk nginx taskset curl; do
    command -v "$tool" >/dev/null || { echo "bench: $tool missing (make deps)" >&2; exit 1; }
done
make --no-print-directory -j2 BUILD=build-release OPT='-O2 -DNDEBUG' "$bin"
mkdir -p "$out"

tmp=$(mktemp -d /tmp/cruder-bench-static.XXXXXX)
chmod 755 "$tmp"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
    node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}
wait_up() {
    for _ in $(seq 200); do curl -fso /dev/null "$1" && return 0; sleep 0.05; done
    echo "bench: no answer from $1" >&2
    exit 1
}
etag_of() { curl -sI "$1" | tr -d '\r' | awk 'tolower($1) == "etag:" {print $2}'; }

cport=$(free_port)
taskset -c 0 "$bin" serve --loops 1 --http "127.0.0.1:$cport" --dir "$tmp/data" --access-log=false \
    2>"$out/static-cruder.log" &
pids+=("$!")
wait_up "http://127.0.0.1:$cport/api/health"
asset=$(curl -s "http://127.0.0.1:$cport/_/" | grep -o 'assets/console\.[0-9a-f]\{10\}\.js')

nport=$(free_port)
mkdir -p "$tmp/nginx/www/_/assets" "$tmp/nginx/tmp"
curl -s "http://127.0.0.1:$cport/_/$asset" -o "$tmp/nginx/www/_/$asset"
curl -s "http://127.0.0.1:$cport/_/" -o "$tmp/nginx/www/_/index.html"
chmod -R 755 "$tmp/nginx"
cat >"$tmp/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    types { text/javascript js; text/html html; }
    client_body_temp_path $tmp/nginx/tmp/body;
    proxy_temp_path $tmp/nginx/tmp/proxy;
    fastcgi_temp_path $tmp/nginx/tmp/fastcgi;
    uwsgi_temp_path $tmp/nginx/tmp/uwsgi;
    scgi_temp_path $tmp/nginx/tmp/scgi;
    keepalive_requests 1000000;
    open_file_cache max=16 inactive=600s;
    open_file_cache_valid 600s;
    sendfile on;
    etag on;
    server {
        listen 127.0.0.1:$nport;
        root $tmp/nginx/www;
        location /_/assets/ { add_header Cache-Control "public, max-age=31536000, immutable"; }
        location = /_/ { add_header Cache-Control "no-cache"; }
    }
}
CONF
taskset -c 0 nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" &
pids+=("$!")
wait_up "http://127.0.0.1:$nport/_/$asset"
cmp -s <(curl -s "http://127.0.0.1:$cport/_/$asset") "$tmp/nginx/www/_/$asset" ||
    { echo "bench: nginx serves other bytes" >&2; exit 1; }

cetag=$(etag_of "http://127.0.0.1:$cport/_/$asset")
netag=$(etag_of "http://127.0.0.1:$nport/_/$asset")

run() { # name port path [header]
    local name=$1 port=$2 path=$3
    shift 3
    taskset -c 1 wrk -t1 -c"$connections" -d"$duration" --latency "$@" "http://127.0.0.1:$port$path" \
        >"$out/static-$name.txt"
    awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out/static-$name.txt"
}
report() { # name rps anchor_rps
    echo "$1: $2 req/s (ratio $(awk -v a="$2" -v b="$3" 'BEGIN {printf "%.2f", a / b}')x nginx)"
}

echo "== wrk -t1 -c$connections -d$duration, $(stat -c %s "$tmp/nginx/www/_/$asset")-byte asset"
n200=$(run nginx_asset_200 "$nport" "/_/$asset")
echo "nginx_asset_200: $n200 req/s"
report static_asset_200 "$(run cruder_asset_200 "$cport" "/_/$asset")" "$n200"
n304=$(run nginx_asset_304 "$nport" "/_/$asset" -H "If-None-Match: $netag")
echo "nginx_asset_304: $n304 req/s"
report static_asset_304 "$(run cruder_asset_304 "$cport" "/_/$asset" -H "If-None-Match: $cetag")" "$n304"
nidx=$(run nginx_index_200 "$nport" "/_/")
echo "nginx_index_200: $nidx req/s"
report static_index_200 "$(run cruder_index_200 "$cport" "/_/")" "$nidx"
grep -lE 'Socket errors' "$out"/static-*.txt | sed 's/^/WARNING: errors in /' || true
