#!/usr/bin/env bash
# The gateway's cache and pass-through speed against nginx, Varnish and
# HAProxy, on a 2-core box: the server under test and every anchor pinned to
# core 0, wrk on core 1 with the origin (an nginx answering the small bodies
# from memory in one write, as an application server would; the hit
# scenarios never reach it).
#
#   gw_hit   a cache hit of a small response vs nginx serving the same bytes
#            from a file (target >= 0.8x) and vs a Varnish hit (>= 2x)
#   memory   the gateway's RSS per idle keep-alive client connection
#            (BENCH_IDLE_CONNS of them, target <= 16 KiB), HAProxy's beside it
#   gw_pass  a `Cache-Control: no-store` answer passed through vs HAProxy and
#            nginx proxy_pass to the same origin (target >= 1x). The anchors
#            are configured to do the gateway's job: X-Forwarded-For, -Proto,
#            -Host, Forwarded and an X-Request-Id sent upstream and returned.
#            The bare anchors (no added header: less work than the gateway
#            does) are reported beside them, for information.
#
# Each scenario runs BENCH_ROUNDS times, the gateway and its anchors back to
# back in each round; a line gives the median ratio of the rounds and the CPU
# time each server spent per request (its process and children, from /proc).
# On this box wrk and the origin share core 1, which can bound the
# throughput of a fast proxy: the CPU ratio (anchor / gateway) is then the
# ratio of what each could serve on its core. Keeps wrk's output in
# build-release/bench/gateway/. Everything it starts is stopped by PID; no
# system service is touched (Varnish runs with its own -n directory, in the
# foreground).
#
# BENCH_DURATION (10s), BENCH_CONNECTIONS (64), BENCH_ROUNDS (3) override;
# GATEWAY_BIN runs another build of cruder (an older one, to compare) instead
# of building build-release/cruder.
set -euo pipefail

cd "$(dirname "$0")/.."
source bench/lib.sh
duration=${BENCH_DURATION:-10s}
connections=${BENCH_CONNECTIONS:-64}
rounds=${BENCH_ROUNDS:-3}
idle_conns=${BENCH_IDLE_CONNS:-10000}
bin=${GATEWAY_BIN:-build-release/cruder}
out=build-release/bench/gateway

bench_need wrk nginx haproxy varnishd taskset node

# The idle connections need descriptors, in the servers and in the client.
ulimit -n "$(ulimit -Hn)"
if (($(ulimit -n) < idle_conns + 1000)); then
    echo "bench: ulimit -n is $(ulimit -n), below the $idle_conns idle connections" >&2
    exit 1
fi

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
nginx_conf "$tmp/origin" "$origin_port" "
        location = /cached { add_header Cache-Control max-age=3600; return 200 '$body'; }
        location = /nostore { add_header Cache-Control no-store; return 200 '$body'; }
        location = /api/health { add_header Cache-Control no-store; return 200 '$body'; }"
start_nginx 1 "$tmp/origin"
wait_http "http://127.0.0.1:$origin_port/cached"

echo "== anchors and the gateway on core 0"
static_port=$(free_port)
nginx_conf "$tmp/static" "$static_port" ''
start_nginx 0 "$tmp/static"
declare -A pid_of
pid_of[$static_port]=${pids[-1]}

# The proxy anchors, each bare and doing the gateway's job (one process, two ports).
proxy_port=$(free_port)
proxy_full_port=$(free_port)
nginx_conf "$tmp/proxy" "$proxy_port" "
        location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
    }
    server {
        listen 127.0.0.1:$proxy_full_port;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$host;
            proxy_set_header Forwarded 'for=\$remote_addr;host=\"\$host\";proto=\$scheme';
            proxy_set_header X-Request-Id \$request_id;
            add_header X-Request-Id \$request_id always;
        }"
start_nginx 0 "$tmp/proxy"
pid_of[$proxy_port]=${pids[-1]}
pid_of[$proxy_full_port]=${pids[-1]}

varnish_port=$(free_port)
mkdir -p "$tmp/varnish"
chmod 777 "$tmp/varnish"
taskset -c 0 varnishd -F -n "$tmp/varnish" -a "127.0.0.1:$varnish_port" \
    -b "127.0.0.1:$origin_port" -s malloc,64m -p thread_pools=1 >"$out/varnish.log" 2>&1 &
pids+=("$!")
pid_of[$varnish_port]=$!

haproxy_port=$(free_port)
haproxy_full_port=$(free_port)
# HAProxy wants two descriptors a connection it admits, so the hard limit
# (20000 here) bounds the idle connections it can be shown.
haproxy_idle=$(((($(ulimit -Hn) - 1200) / 2) < idle_conns ? ($(ulimit -Hn) - 1200) / 2 : idle_conns))
cat >"$tmp/haproxy.cfg" <<CONF
global
    nbthread 1
    maxconn $((haproxy_idle + 400))
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    http-reuse always
frontend bare
    bind 127.0.0.1:$haproxy_port
    default_backend origin
frontend full
    bind 127.0.0.1:$haproxy_full_port
    option forwardfor
    unique-id-format %{+X}o\\ %ci%cp%fi%fp%Ts%rt
    unique-id-header X-Request-Id
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    http-request set-header Forwarded for=%[src];host=\\"%[req.hdr(host)]\\";proto=http
    http-response set-header X-Request-Id %[unique-id]
    default_backend origin
backend origin
    server o 127.0.0.1:$origin_port
CONF
taskset -c 0 haproxy -f "$tmp/haproxy.cfg" >"$out/haproxy.log" 2>&1 &
pids+=("$!")
pid_of[$haproxy_port]=$!
pid_of[$haproxy_full_port]=$!

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

for port in "$static_port" "$proxy_port" "$proxy_full_port" "$varnish_port" "$haproxy_port" \
    "$haproxy_full_port" "$gw_port"; do
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
median() { # numbers...
    printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
# rounds name port path [anchor anchor-port anchor-path target]...: the
# gateway and each anchor back to back, BENCH_ROUNDS times; one line an anchor.
rounds() {
    local name=$1 port=$2 path=$3
    shift 3
    local -a anchors=("$@")
    declare -A ratios cpu_ratios
    local gw_rps=() gw_cpu=() r i
    for ((r = 1; r <= rounds; r++)); do
        run_wrk "$name" "$port" "$path"
        gw_rps+=("${rps[$name]}")
        gw_cpu+=("${cpu_us[$name]}")
        for ((i = 0; i < ${#anchors[@]}; i += 4)); do
            local a=${anchors[i]}
            run_wrk "$a" "${anchors[i + 1]}" "${anchors[i + 2]}"
            ratios[$a]+="$(awk -v g="${rps[$name]}" -v b="${rps[$a]}" 'BEGIN {printf "%.3f", g / b}') "
            cpu_ratios[$a]+="$(awk -v g="${cpu_us[$name]}" -v b="${cpu_us[$a]}" 'BEGIN {printf "%.3f", b / g}') "
            eval "anchor_rps_$a+=(${rps[$a]})"
            eval "anchor_cpu_$a+=(${cpu_us[$a]})"
        done
    done
    for ((i = 0; i < ${#anchors[@]}; i += 4)); do
        local a=${anchors[i]} target="target >= ${anchors[i + 3]}x"
        [[ ${anchors[i + 3]} == info ]] && target="for information"
        local -n a_rps="anchor_rps_$a" a_cpu="anchor_cpu_$a"
        # shellcheck disable=SC2086 # the lists are space-separated numbers
        printf '%s: %.0f req/s (ratio %.2fx %s at %.0f req/s; %s; median of %d rounds: %s) CPU %.1f vs %.1f us/request (capacity %.2fx)\n' \
            "$name" "$(median "${gw_rps[@]}")" "$(median ${ratios[$a]})" "${a//_/ }" \
            "$(median "${a_rps[@]}")" "$target" "$rounds" "${ratios[$a]% }" \
            "$(median "${gw_cpu[@]}")" "$(median "${a_cpu[@]}")" "$(median ${cpu_ratios[$a]})"
    done
}
declare -a anchor_rps_nginx_static anchor_cpu_nginx_static anchor_rps_varnish_hit anchor_cpu_varnish_hit
declare -a anchor_rps_haproxy_pass anchor_cpu_haproxy_pass anchor_rps_nginx_proxy_pass anchor_cpu_nginx_proxy_pass
declare -a anchor_rps_haproxy_bare anchor_cpu_haproxy_bare anchor_rps_nginx_proxy_bare anchor_cpu_nginx_proxy_bare
rounds gw_hit "$gw_port" /cached \
    nginx_static "$static_port" /small.json 0.8 \
    varnish_hit "$varnish_port" /cached 2
rounds gw_pass "$gw_port" /nostore \
    haproxy_pass "$haproxy_full_port" /nostore 1 \
    nginx_proxy_pass "$proxy_full_port" /nostore 1 \
    haproxy_bare "$haproxy_port" /nostore info \
    nginx_proxy_bare "$proxy_port" /nostore info

echo "== memory: $idle_conns idle keep-alive client connections (target <= 16 KiB each)"
taskset -c 1 node bench/idle_conns.mjs "$gw_port" "${pid_of[$gw_port]}" "$idle_conns" |
    sed 's/^/gateway: /'
taskset -c 1 node bench/idle_conns.mjs "$haproxy_port" "${pid_of[$haproxy_port]}" "$haproxy_idle" |
    sed 's/^/haproxy: /'

node -e 'fetch(process.argv[1]).then((r) => r.text()).then((t) => process.stdout.write(t))' \
    "http://127.0.0.1:$gw_port/metrics" |
    awk '/^cruder_gateway_cache_(hits_total|misses_total|entries) / {printf "%s %s\n", $1, $2}'
