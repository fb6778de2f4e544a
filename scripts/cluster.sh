#!/bin/sh
# A local cluster on loopback: `cruder gateway` in front of three `cruder serve`
# sharing one data directory.
#
#   scripts/cluster.sh start [DIR]   gateway on $GATEWAY_PORT (default 8080),
#                                    upstreams on 8091-8093; DIR default .cluster
#   scripts/cluster.sh stop  [DIR]   stops every process it started, by PID
set -eu
cmd=${1:-start}
dir=${2:-.cluster}
bin=${CRUDER:-build/cruder}
gw_port=${GATEWAY_PORT:-8080}
base=${UPSTREAM_BASE_PORT:-8091}

case "$cmd" in
start)
    mkdir -p "$dir/data"
    [ -x "$bin" ] || { echo "cluster: $bin not built (make)" >&2; exit 1; }
    targets=""
    for i in 0 1 2; do
        port=$((base + i))
        "$bin" serve --http "127.0.0.1:$port" --dir "$dir/data" >"$dir/serve$i.log" 2>&1 &
        echo $! >"$dir/serve$i.pid"
        targets="$targets 127.0.0.1:$port"
    done
    cat >"$dir/gateway.conf" <<CONF
http = 127.0.0.1:$gw_port
upstream api$targets
route / api
health_interval_ms = 1000
# The shared cache, with the fields cruder serve's public answers carry.
cache_max_bytes = 64m
cache_targeted_field = Cruder-Cache-Control
cache_tag_field = Cache-Tag
CONF
    "$bin" gateway --config "$dir/gateway.conf" >"$dir/gateway.log" 2>&1 &
    echo $! >"$dir/gateway.pid"
    echo "cluster: gateway on http://127.0.0.1:$gw_port, upstreams$targets (logs in $dir)"
    ;;
stop)
    for f in "$dir"/gateway.pid "$dir"/serve*.pid; do
        [ -f "$f" ] || continue
        kill "$(cat "$f")" 2>/dev/null || true
        rm -f "$f"
    done
    echo "cluster: stopped"
    ;;
*)
    echo "usage: $0 start|stop [DIR]" >&2
    exit 2
    ;;
esac
