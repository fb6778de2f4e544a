# Shared by the bench scripts, sourced from the repository root: the tools
# check, a scratch directory whose processes (the PIDs in `pids`) stop with
# the script, free ports and waiting for a server to answer.

bench_need() { # tool...
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "bench: $tool missing (make deps)" >&2; exit 1; }
    done
}

bench_cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}

bench_scratch() { # name: sets tmp and pids
    tmp=$(mktemp -d "${BENCH_TMP:-/tmp}/cruder-bench-$1.XXXXXX")
    # nginx workers drop to an unprivileged user when started as root.
    chmod 755 "$tmp"
    pids=()
    trap bench_cleanup EXIT
}

free_port() {
    node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

wait_up() { # url: any 2xx within 10 s
    for _ in $(seq 200); do curl -fso /dev/null "$1" && return 0; sleep 0.05; done
    echo "bench: no answer from $1" >&2
    exit 1
}
