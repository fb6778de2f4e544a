#!/usr/bin/env bash
# `make test`: every step in order under a heading, then one summary line.
# A failed build skips the steps that need it; any other failure is reported
# and the remaining steps still run, so one pass shows everything that is broken.
# STEPS="unit node" make test runs a subset (deps and build always run);
# format-check fails on code that `make format` would change.
set -uo pipefail

cd "$(dirname "$0")/.."
make=(make --no-print-directory)
jobs=${JOBS:-2}
steps=(${STEPS:-format-check unit fuzz node asan})
results=()
failed=0
start_all=$SECONDS

run_step() {
    local name=$1
    shift
    local t0=$SECONDS
    printf '\n==== %s ====\n' "$name"
    if "$@"; then
        results+=("$name ok $((SECONDS - t0))s")
        return 0
    fi
    results+=("$name FAILED $((SECONDS - t0))s")
    failed=1
    return 1
}

run_step deps scripts/install-deps.sh || { echo "make test: FAILED (deps)"; exit 1; }
if run_step build "${make[@]}" -j"$jobs" build; then
    for s in "${steps[@]}"; do
        run_step "$s" "${make[@]}" "$s"
    done
else
    results+=("${steps[*]}: skipped")
fi

printf '\n==== summary ====\n'
summary=$(IFS=';'; echo "${results[*]}" | sed 's/;/, /g')
if ((failed)); then
    echo "make test: FAILED in $((SECONDS - start_all))s ($summary)"
    exit 1
fi
echo "make test: PASSED in $((SECONDS - start_all))s ($summary)"
