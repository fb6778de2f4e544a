#!/usr/bin/env bash
# The gateway's cache and pass-through speed against nginx, Varnish and
# HAProxy, on a 2-core box: the server under test and every anchor pinned to
# core 0, wrk on core 1 (with the origin, an nginx serving the small bodies,
# which the hit scenarios never reach).
#
#   gw_hit   a cache hit of a small response vs nginx serving the same bytes
#            from a file (target >= 0.8x) and vs a Varnish hit (>= 2x)
#   gw_pass  a `Cache-Control: no-store` answer passed through vs HAProxy and
#            nginx proxy_pass to the same origin
#
# Prints one line a scenario, each ratio against an adjacent anchor run, with
# the CPU time each server spent per request (its process and children, from
# /proc): on a box shared with other work the ratios move with the load, the
# CPU cost much less. Keeps wrk's output in build-release/bench/gateway/. Everything it starts is
# stopped by PID; no system service is touched (Varnish runs with its own -n
# directory, in the foreground).
#
# BENCH_DURATION (10s), BENCH_CONNECTIONS (64) override; GATEWAY_BIN runs
# another build of cruder (an older one, to compare) instead of building
# build-release/cruder.
set -euo pipefail

cd "$(dirname "$0")/.."
source bench/lib.sh
duration=${BENCH_DURATION:-10s}
connections=${BENCH_CONNECTIONS:-64}
bin=${GATEWAY_BIN:-build-release/cruder}
out=build-release/bench/gateway

bench_need wrk nginx haproxy varnishd taskset node

if [[ -z ${GATEWAY_BIN:-} ]]; then
    echo "== build (release)"
    make --no-print-directory -j2 BUILD=build-release OPT='-O2 -DNDEBUG' "$bin"
fi
mkdir -p "$out"

bench_scratch gateway

wait_http() { # url header-to-expect
    node -e '
const [url] = process.argv.slice(1), deadline = Date.now() + 10000;
(async () => {
  for (;;) {
    try { const r = await fetch(url); await r.arrayBuffer(); if (r.status === 200) return; } catch {}
    if (Date.now() > deadline) { console.error("no 200 from " + url); process.exit(1); }
    await new Promise((r) => setTimeout(r, 20));
  }
})();' "$1"
}

# A small JSON body, the size of a typical API answer.
body='{"status":"ok","items":[1,2,3,4,5,6,7,8,9,10],"note":"gateway cache bench"}'

nginx_conf() { # dir port server-block-body
    mkdir -p "$1/www" "$1/tmp"
    printf '%s' "$body" >"$1/www/small.json"
    cat >"$1/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    default_type application/json;
    client_body_temp_path $1/tmp/body;
    proxy_temp_path $1/tmp/proxy;
    fastcgi_temp_path $1/tmp/fastcgi;
    uwsgi_temp_path $1/tmp/uwsgi;
    scgi_temp_path $1/tmp/scgi;
    keepalive_requests 1000000;
    open_file_cache max=16 inactive=600s;
    open_file_cache_valid 600s;
    sendfile on;
    upstream origin { server 127.0.0.1:$origin_port; keepalive 64; }
    server {
        listen 127.0.0.1:$2;
        root $1/www;
        $3
    }
}
CONF
    chmod -R 755 "$1"
}
start_nginx() { # core dir
    taskset -c "$1" nginx -p "$2" -c "$2/nginx.conf" -e "$2/error.log" &
    pids+=("$!")
}

echo "== origin: nginx on core 1"
origin_port=$(free_port)
nginx_conf "$tmp/origin" "$origin_port" '
        location = /cached { add_header Cache-Control "max-age=3600"; try_files /small.json =404; }
        location = /nostore { add_header Cache-Control "no-store"; try_files /small.json =404; }'
start_nginx 1 "$tmp/origin"
wait_http "http://127.0.0.1:$origin_port/cached"

echo "== anchors and the gateway on core 0"
static_port=$(free_port)
nginx_conf "$tmp/static" "$static_port" ''
start_nginx 0 "$tmp/static"
declare -A pid_of
pid_of[$static_port]=${pids[-1]}

proxy_port=$(free_port)
nginx_conf "$tmp/proxy" "$proxy_port" '
        location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; }'
start_nginx 0 "$tmp/proxy"
pid_of[$proxy_port]=${pids[-1]}

varnish_port=$(free_port)
mkdir -p "$tmp/varnish"
chmod 777 "$tmp/varnish"
taskset -c 0 varnishd -F -n "$tmp/varnish" -a "127.0.0.1:$varnish_port" \
    -b "127.0.0.1:$origin_port" -s malloc,64m -p thread_pools=1 >"$out/varnish.log" 2>&1 &
pids+=("$!")
pid_of[$varnish_port]=$!

haproxy_port=$(free_port)
cat >"$tmp/haproxy.cfg" <<CONF
global
    nbthread 1
    maxconn 4000
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    http-reuse always
frontend fe
    bind 127.0.0.1:$haproxy_port
    default_backend origin
backend origin
    server o 127.0.0.1:$origin_port
CONF
taskset -c 0 haproxy -f "$tmp/haproxy.cfg" >"$out/haproxy.log" 2>&1 &
pids+=("$!")
pid_of[$haproxy_port]=$!

gw_port=$(free_port)
cat >"$tmp/gateway.conf" <<CONF
http = 127.0.0.1:$gw_port
loops = 1
access_log = false
health_interval_ms = 0
cache_max_bytes = 64m
upstream origin 127.0.0.1:$origin_port
route / origin
CONF
taskset -c 0 "$bin" gateway --config "$tmp/gateway.conf" 2>"$out/gateway.log" &
pids+=("$!")
pid_of[$gw_port]=$!

for port in "$static_port" "$proxy_port" "$varnish_port" "$haproxy_port" "$gw_port"; do
    wait_http "http://127.0.0.1:$port/$([[ $port == "$static_port" ]] && echo small.json || echo cached)"
done
# Warm both caches before the hit runs.
wait_http "http://127.0.0.1:$varnish_port/cached"
wait_http "http://127.0.0.1:$gw_port/cached"

echo "== throughput: wrk -t1 -c$connections -d$duration on core 1 (${#body}-byte bodies)"
declare -A rps cpu_us
descendants() { # pid
    local c
    for c in $(pgrep -P "$1"); do
        echo "$c"
        descendants "$c"
    done
}
tree_ticks() { # pid: user+system clock ticks of it and its descendants
    local t=0 p
    for p in "$1" $(descendants "$1"); do
        [[ -r /proc/$p/stat ]] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo "$t"
}
hz=$(getconf CLK_TCK)
run_wrk() { # name port path
    local t0 t1 n
    t0=$(tree_ticks "${pid_of[$2]}")
    taskset -c 1 wrk -t1 -c"$connections" -d"$duration" --latency "http://127.0.0.1:$2$3" \
        >"$out/$1.txt"
    t1=$(tree_ticks "${pid_of[$2]}")
    rps[$1]=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out/$1.txt")
    n=$(awk '/requests in/ {print $1}' "$out/$1.txt")
    cpu_us[$1]=$(awk -v d=$((t1 - t0)) -v n="$n" -v hz="$hz" 'BEGIN {printf "%.1f", d * 1e6 / hz / n}')
    grep -E 'Non-2xx|Socket errors' "$out/$1.txt" | sed "s/^ */  $1: WARNING /" || true
}
compare() { # name port path anchor anchor-port anchor-path target
    run_wrk "$4" "$5" "$6"
    run_wrk "$1" "$2" "$3"
    local ratio
    ratio=$(awk -v a="${rps[$1]}" -v b="${rps[$4]}" 'BEGIN {printf "%.2f", a / b}')
    echo "$1: ${rps[$1]} req/s (ratio ${ratio}x ${4//_/ } at ${rps[$4]} req/s; target >= $7x;" \
        "CPU ${cpu_us[$1]} vs ${cpu_us[$4]} us/request)"
}
compare gw_hit "$gw_port" /cached nginx_static "$static_port" /small.json 0.8
compare gw_hit "$gw_port" /cached varnish_hit "$varnish_port" /cached 2
compare gw_pass "$gw_port" /nostore haproxy_pass "$haproxy_port" /nostore 1
compare gw_pass "$gw_port" /nostore nginx_proxy_pass "$proxy_port" /nostore 1

node -e 'fetch(process.argv[1]).then((r) => r.text()).then((t) => process.stdout.write(t))' \
    "http://127.0.0.1:$gw_port/metrics" |
    awk '/^cruder_gateway_cache_(hits_total|misses_total|entries) / {printf "%s %s\n", $1, $2}'
