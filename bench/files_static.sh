#!/usr/bin/env bash
# Static assets: cruder's embedded console asset under /_/ against nginx
# serving the same bytes from disk (sendfile, open_file_cache: nginx at its
# best). Scenarios: the fingerprinted asset (200), the same revalidated (304
# on If-None-Match, each server with its own ETag), and index.html (200).
# Server on core 0, wrk on core 1. Prints each round, then per path the
# median round's ratio to nginx; the goal is at least 0.9x nginx on each.
#
# BENCH_DURATION (5s a run), BENCH_ROUNDS (3) and BENCH_CONNECTIONS (64)
# override.
set -euo pipefail

cd "$(dirname "$0")/.."
source bench/lib.sh
duration=${BENCH_DURATION:-5s}
connections=${BENCH_CONNECTIONS:-64}
bin=build-release/cruder
out=build-release/bench

bench_need wrk nginx taskset curl
make --no-print-directory -j2 BUILD=build-release OPT='-O2 -DNDEBUG' "$bin"
mkdir -p "$out"

bench_scratch static
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

# The box may be shared: each round runs every scenario on nginx and on
# cruder back to back, so a burst of other load hits one round rather than
# one side, and the ratio reported is the median round's. Beside
# throughput, the serving process's CPU time per request (utime + stime from
# /proc, microseconds) tells cost apart from what other load took.
cpid=${pids[0]}
npid=$(pgrep -P "${pids[1]}" | head -n1)
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run() { # name pid port path [header] -> "req/s cpu_us_per_req"
    local name=$1 pid=$2 port=$3 path=$4 t0 t1
    shift 4
    t0=$(ticks "$pid")
    taskset -c 1 wrk -t1 -c"$connections" -d"$duration" --latency "$@" "http://127.0.0.1:$port$path" \
        >"$out/static-$name.txt"
    t1=$(ticks "$pid")
    awk -v t="$((t1 - t0))" -v hz="$hz" '/^Requests\/sec:/ {rps = $2} /requests in/ {n = $1}
        END {printf "%.0f %.1f", rps, n ? t * 1e6 / hz / n : 0}' "$out/static-$name.txt"
}
scenario() { # name round path [header for nginx] [header for cruder]
    local name=$1 r=$2 path=$3 nh=${4:-} ch=${5:-} n ncpu c ccpu
    read -r n ncpu <<<"$(run "nginx_${name}_$r" "$npid" "$nport" "$path" ${nh:+-H "$nh"})"
    read -r c ccpu <<<"$(run "cruder_${name}_$r" "$cpid" "$cport" "$path" ${ch:+-H "$ch"})"
    echo "$name $n $c $ncpu $ccpu" >>"$out/static-rounds.txt"
    echo "round $r $name: nginx $n req/s ($ncpu us cpu/req), cruder $c ($ccpu)"
}
report() { # name
    awk -v k="$1" '$1 == k {print $3 / $2, $2, $4, $5}' "$out/static-rounds.txt" | sort -g |
        awk -v k="$1" '{v[NR] = $0} END {split(v[int((NR + 1) / 2)], m, " ");
            printf "static_%s: ratio %.2fx nginx (median round; nginx %.0f req/s, %.1f us cpu/req; cruder %.1f us cpu/req)\n",
                k, m[1], m[2], m[3], m[4]}'
}

rounds=${BENCH_ROUNDS:-3}
echo "== wrk -t1 -c$connections -d$duration x $rounds rounds, $(stat -c %s "$tmp/nginx/www/_/$asset")-byte asset"
: >"$out/static-rounds.txt"
for r in $(seq "$rounds"); do
    scenario asset_200 "$r" "/_/$asset"
    scenario asset_304 "$r" "/_/$asset" "If-None-Match: $netag" "If-None-Match: $cetag"
    scenario index_200 "$r" "/_/"
done
for k in asset_200 asset_304 index_200; do report "$k"; done
echo "goal: >= 0.9x nginx on each path"
grep -lE 'Socket errors' "$out"/static-*.txt | sed 's/^/WARNING: errors in /' || true
