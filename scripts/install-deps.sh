#!/usr/bin/env bash
# Installs what building, testing and benchmarking Cruder needs on Debian 12,
# and nothing that is already there: one dpkg-query when everything is present,
# one `apt-get update` and one `apt-get install` otherwise. Then `npm ci` when
# node_modules is missing or older than package-lock.json. Safe to run again.
set -euo pipefail

cd "$(dirname "$0")/.."

packages=(
    build-essential pkg-config clang clang-format-14 libclang-rt-14-dev
    libuv1-dev libhttp-parser-dev libjansson-dev libsqlite3-dev libsodium-dev libcriterion-dev
    libvips-dev
    wrk nginx-light brotli
    varnish haproxy # bench/gateway_cache.sh: the cache and pass-through anchors
    chromium # the console's browser tests (tests/node/console.test.mjs) drive it headless
)
# Debian 12's nodejs is older than the one some machines already carry; keep theirs.
if ! command -v node >/dev/null 2>&1; then
    packages+=(nodejs npm)
fi

missing=()
installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${packages[@]}" 2>/dev/null || true)
for p in "${packages[@]}"; do
    if ! grep -qx "$p installed" <<<"$installed"; then
        missing+=("$p")
    fi
done

if ((${#missing[@]})); then
    echo "install-deps: installing ${missing[*]}"
    sudo=()
    if [[ $(id -u) != 0 ]]; then
        if ! command -v sudo >/dev/null 2>&1; then
            echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2
            exit 1
        fi
        sudo=(sudo)
    fi
    # Installing nginx-light must not start the system nginx on port 80: the
    # benchmark runs its own instance. A policy-rc.d that answers 101 tells
    # invoke-rc.d not to start services; we add one only if none exists.
    policy=/usr/sbin/policy-rc.d
    added_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        added_policy=1
    fi
    trap '[[ $added_policy == 1 ]] && "${sudo[@]}" rm -f "$policy"' EXIT
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" </dev/null
fi

# npm ci rewrites node_modules/.package-lock.json, so it is the marker of the last install.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
    echo "install-deps: npm ci"
    npm ci --no-audit --no-fund --loglevel=error </dev/null
    touch node_modules/.package-lock.json
fi
