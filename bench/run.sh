#!/usr/bin/env bash
# `make bench`: throughput of the release build against nginx serving a static
# file of the same size, on a 2-core box: the server under test (and nginx)
# pinned to core 0 (but for its idle-priority hashing threads), wrk pinned to
# core 1. Then memory: idle RSS after start,
# and the cost of 10,000 idle keep-alive connections.
#
# Prints one line a scenario, "name: N req/s (ratio Xx anchor)", and keeps
# wrk's full output in build-release/bench/. Everything it starts is stopped by
# PID; the system nginx is never touched.
#
# BENCH_DURATION (10s), BENCH_CONNECTIONS (64), BENCH_IDLE_CONNS (10000) override.
# BENCH_ONLY picks sections (default "core login memory"), e.g. BENCH_ONLY=login;
# BENCH_BIN runs that binary instead of building the release one (A/B runs);
# BENCH_LOGIN_ROUNDS (3) pairs of health alone / health beside logins.
set -euo pipefail

cd "$(dirname "$0")/.."
source bench/lib.sh
root=$PWD
duration=${BENCH_DURATION:-10s}
connections=${BENCH_CONNECTIONS:-64}
idle_conns=${BENCH_IDLE_CONNS:-10000}
login_rounds=${BENCH_LOGIN_ROUNDS:-3}
only=" ${BENCH_ONLY:-core login memory} "
secs=${duration%s}
[[ $secs =~ ^[0-9]+$ ]] || { echo "bench: BENCH_DURATION in seconds, e.g. 5s" >&2; exit 1; }
section() { [[ $only == *" $1 "* ]]; }
bin=${BENCH_BIN:-build-release/cruder}
out=build-release/bench

# One line a scenario: name, target (nginx or cruder), anchor (the scenario the
# ratio is taken against, - for none), then wrk's arguments: the URL path last,
# optionally preceded by `-s bench/x.lua` (the script may read os.getenv: the
# setup step exports what it creates, e.g. tokens and record ids).
# Creates run last: they grow the table the reads run against.
scenarios=(
    "nginx_static  nginx   -             /health.json"
    "health        cruder  nginx_static  /api/health"
    "record_get    cruder  nginx_static  -s bench/get_record.lua /"
    "record_list   cruder  nginx_static  /api/collections/bench/records?perPage=30&sort=-score&filter=score%3E100"
    "ruled_get     cruder  nginx_static  -s bench/get_ruled.lua /"
    "record_create cruder  -             -s bench/create_record.lua /"
)

# Idle connections and wrk's sockets all need descriptors.
ulimit -n "$(ulimit -Hn)"
if (($(ulimit -n) < idle_conns + 1000)); then
    echo "bench: ulimit -n is $(ulimit -n), below the $idle_conns idle connections" >&2
    exit 1
fi

bench_need wrk nginx taskset node

if [[ -z ${BENCH_BIN:-} ]]; then
    echo "== build (release)"
    make --no-print-directory -j2 BUILD=build-release OPT='-O2 -DNDEBUG' "$bin"
fi
mkdir -p "$out"

bench_scratch core

# Waits for a 200 from url, then writes its body to file, byte for byte.
wait_http() {
    node -e '
const [url, file] = process.argv.slice(1), deadline = Date.now() + 10000;
(async () => {
  for (;;) {
    try {
      const r = await fetch(url);
      const b = Buffer.from(await r.arrayBuffer());
      if (r.status === 200) { require("fs").writeFileSync(file, b); return; }
    } catch {}
    if (Date.now() > deadline) { console.error("no 200 from " + url); process.exit(1); }
    await new Promise((r) => setTimeout(r, 20));
  }
})();' "$1" "$2"
}

rss_kib() {
    awk '/^VmRSS:/ {print $2}' "/proc/$1/status"
}

echo "== start cruder (1 loop, core 0)"
cruder_port=$(free_port)
taskset -c 0 "$bin" serve --loops 1 --http "127.0.0.1:$cruder_port" --dir "$tmp/data" \
    --access-log=false --auth-attempts-per-address 100000000 2>"$out/cruder.log" &
cruder_pid=$!
pids+=("$cruder_pid")
wait_http "http://127.0.0.1:$cruder_port/api/health" "$tmp/health.body"
# The loop and the rest stay on core 0; the work pool's batch threads
# (Argon2id, at SCHED_IDLE) may also take core 1's idle time, as on a server
# they take any core's: wrk there preempts them as a loop would.
for task in /proc/"$cruder_pid"/task/*; do
    if [[ $(cat "$task/comm" 2>/dev/null) == cruder-batch ]]; then
        taskset -p -c 0,1 "${task##*/}" >/dev/null
    fi
done
sleep 0.5
idle_rss=$(rss_kib "$cruder_pid")

# The record scenarios' data: 10,000 ~200-byte records in a public
# collection with an index on the sorted field; the wrk scripts read the
# superuser token and a record id from the environment.
echo "== seed 10,000 records"
eval "$(node bench/seed.mjs "http://127.0.0.1:$cruder_port" "$bin" "$tmp/data" 10000)"
export BENCH_TOKEN BENCH_RECORD_ID BENCH_USER_TOKEN BENCH_POST_ID

echo "== start nginx (1 worker, core 0)"
nginx_port=$(free_port)
mkdir -p "$tmp/nginx/www" "$tmp/nginx/tmp"
chmod -R 755 "$tmp/nginx"
cp "$tmp/health.body" "$tmp/nginx/www/health.json"
chmod 644 "$tmp/nginx/www/health.json"
write_nginx_conf() {
    cat >"$tmp/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    default_type application/json;
    client_body_temp_path $tmp/nginx/tmp/body;
    proxy_temp_path $tmp/nginx/tmp/proxy;
    fastcgi_temp_path $tmp/nginx/tmp/fastcgi;
    $1
    keepalive_requests 1000000;
    # The anchor is nginx at its best: no open()/fstat() per request.
    open_file_cache max=16 inactive=600s;
    open_file_cache_valid 600s;
    sendfile on;
    server {
        listen 127.0.0.1:$nginx_port;
        root $tmp/nginx/www;
    }
}
CONF
}
# nginx-light leaves out the uwsgi and scgi modules; fuller builds need their paths.
write_nginx_conf "uwsgi_temp_path $tmp/nginx/tmp/uwsgi; scgi_temp_path $tmp/nginx/tmp/scgi;"
if ! nginx -t -q -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" 2>/dev/null; then
    write_nginx_conf ""
fi
taskset -c 0 nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" &
pids+=("$!")
wait_http "http://127.0.0.1:$nginx_port/health.json" "$tmp/static.body"
cmp -s "$tmp/health.body" "$tmp/static.body" || { echo "bench: nginx serves other bytes" >&2; exit 1; }

echo "== throughput: wrk -t1 -c$connections -d$duration on core 1 ($(stat -c %s "$tmp/health.body")-byte bodies)"
# The machine is shared, so its speed drifts: each scenario with an anchor
# runs right after a fresh run of that anchor, and the ratio is taken between
# the two adjacent runs.
declare -A rps
run_wrk() { # name target args -> sets rps[name]
    local name=$1 target=$2 args=$3 port=$cruder_port
    [[ $target == nginx ]] && port=$nginx_port
    local path=${args##* } wrk_opts=${args% *}
    [[ $wrk_opts == "$args" ]] && wrk_opts=
    # shellcheck disable=SC2086 # wrk_opts are separate words by design
    taskset -c 1 wrk -t1 -c"$connections" -d"$duration" --latency $wrk_opts \
        "http://127.0.0.1:$port$path" >"$out/$name.txt"
    rps[$name]=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out/$name.txt")
    grep -E 'Non-2xx|Socket errors' "$out/$name.txt" | sed "s/^ */  $name: WARNING /" || true
}
declare -A scenario_target scenario_args
section core || scenarios=()
for line in "${scenarios[@]}"; do
    read -r name target anchor args <<<"$line"
    scenario_target[$name]=$target
    scenario_args[$name]=$args
    if [[ $anchor == - ]]; then
        run_wrk "$name" "$target" "$args"
        echo "$name: ${rps[$name]} req/s"
        continue
    fi
    run_wrk "$anchor" "${scenario_target[$anchor]}" "${scenario_args[$anchor]}"
    run_wrk "$name" "$target" "$args"
    ratio=$(awk -v a="${rps[$name]}" -v b="${rps[$anchor]}" 'BEGIN {printf "%.2f", a / b}')
    echo "$name: ${rps[$name]} req/s (ratio ${ratio}x ${anchor//_/ } at ${rps[$anchor]} req/s)"
done

if section core; then
    commits=$(node -e 'fetch(process.argv[1]).then((r) => r.text()).then((t) => process.stdout.write(t))' \
        "http://127.0.0.1:$cruder_port/metrics" |
        awk '/^cruder_store_commit_batch_size_(sum|count)/ {v[$1]=$2} END {
            if (v["cruder_store_commit_batch_size_count"] > 0)
                printf "%.1f", v["cruder_store_commit_batch_size_sum"] / v["cruder_store_commit_batch_size_count"] }')
    echo "record_create: durability full, mean group commit ${commits} writes"
fi

if section login; then
    echo "== auth-with-password (Argon2id on the work pool) while /api/health is served"
    # The box is shared, so health alone and health beside logins alternate,
    # each pair adjacent, and the median of the pairs' ratios is reported.
    ratios=()
    for ((round = 1; round <= login_rounds; round++)); do
        run_wrk health cruder /api/health
        # Logins outlast the health run on both ends, so all of it runs beside them.
        taskset -c 1 wrk -t1 -c4 -d"$((secs + 2))s" --timeout 60s --latency -s bench/login.lua \
            "http://127.0.0.1:$cruder_port/" >"$out/login.txt" &
        login_wrk=$!
        sleep 1
        run_wrk health_during_logins cruder /api/health
        wait "$login_wrk"
        ratio=$(awk -v a="${rps[health_during_logins]}" -v b="${rps[health]}" 'BEGIN {printf "%.2f", a / b}')
        ratios+=("$ratio")
        awk -v round="$round" -v h="${rps[health_during_logins]}" -v alone="${rps[health]}" -v x="$ratio" \
            '/^Requests\/sec:/ {r=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2}
             END {printf "auth_login round %d: %.0f logins/s, latency p50 %s p99 %s (4 at a time); " \
                         "health %s req/s beside them, %s alone (%sx)\n", round, r, p50, p99, h, alone, x}' \
            "$out/login.txt"
    done
    median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{v[NR]=$1} END {print v[int((NR + 1) / 2)]}')
    echo "health while logging in: ${median}x health alone (median of ${ratios[*]})"
fi

if section memory; then
    echo "== memory"
    echo "cruder idle RSS after start: $idle_rss KiB"
    taskset -c 1 node bench/idle_conns.mjs "$cruder_port" "$cruder_pid" "$idle_conns"
fi
