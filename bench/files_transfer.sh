#!/usr/bin/env bash
# Large record files: a BENCH_FILE_MB (1024) file uploaded through the
# records API (multipart, streamed to disk) with the server's peak RSS
# (VmHWM, goal < 64 MB) beside dd writing the same size to the same disk
# (conv=fsync, as the upload fsyncs), then downloaded from /api/files/
# against nginx serving the same stored file (sendfile; goal >= 0.8x nginx).
# curl is the client, one transfer at a time; servers on core 0, curl on 1.
set -euo pipefail

cd "$(dirname "$0")/.."
source bench/lib.sh
mb=${BENCH_FILE_MB:-1024}
bin=build-release/cruder
bench_need nginx taskset curl dd node
make --no-print-directory -j2 BUILD=build-release OPT='-O2 -DNDEBUG' "$bin"

bench_scratch files
mbps() { awk -v b="$1" -v s="$2" 'BEGIN {printf "%.0f", b / s / 1048576}'; }

head -c $((mb << 20)) /dev/urandom >"$tmp/src.bin"
bytes=$(stat -c %s "$tmp/src.bin")

start=$(date +%s.%N)
dd if="$tmp/src.bin" of="$tmp/dd.bin" bs=1M conv=fsync status=none
dd_s=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {print b - a}')
rm -f "$tmp/dd.bin"

cport=$(free_port)
taskset -c 0 "$bin" serve --loops 1 --http "127.0.0.1:$cport" --dir "$tmp/data" --access-log=false \
    2>"$tmp/cruder.log" &
cpid=$!
pids+=("$cpid")
wait_up "http://127.0.0.1:$cport/api/health"
"$bin" superuser upsert bench@example.com password123 --dir "$tmp/data" >/dev/null
token=$(curl -s -H 'Content-Type: application/json' \
    -d '{"identity":"bench@example.com","password":"password123"}' \
    "http://127.0.0.1:$cport/api/collections/_superusers/auth-with-password" |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).token))')
curl -sf -o /dev/null -H "Authorization: $token" -H 'Content-Type: application/json' \
    -d "{\"name\":\"big\",\"type\":\"base\",\"createRule\":\"\",\"viewRule\":\"\",\"fields\":[{\"name\":\"f\",\"type\":\"file\",\"maxSelect\":1,\"maxSize\":$((bytes + 1))}]}" \
    "http://127.0.0.1:$cport/api/collections"
rss_before=$(awk '/VmHWM/ {print $2}' "/proc/$cpid/status")
# Start-up sets a high-water mark of its own (above what stays resident);
# reset it (Linux's clear_refs 5) so the peak is the upload's.
echo 5 >"/proc/$cpid/clear_refs"
rss_idle=$(awk '/VmRSS/ {print $2}' "/proc/$cpid/status")
up=$(taskset -c 1 curl -s -w '\n%{time_total}' -F "f=@$tmp/src.bin" \
    "http://127.0.0.1:$cport/api/collections/big/records")
up_s=$(tail -n1 <<<"$up")
rec=$(head -n1 <<<"$up")
rss_peak=$(awk '/VmHWM/ {print $2}' "/proc/$cpid/status")
id=$(node -e 'const r=JSON.parse(process.argv[1]);console.log(r.id, r.collectionId, r.f)' "$rec")
read -r rid cid fname <<<"$id"
echo "upload_${mb}MiB: $(mbps "$bytes" "$up_s") MiB/s (dd conv=fsync: $(mbps "$bytes" "$dd_s") MiB/s)," \
    "peak RSS $((rss_peak / 1024)) MB (goal < 64 MB; resident before: $((rss_idle / 1024)) MB;" \
    "start-up peak: $((rss_before / 1024)) MB)"

stored="$tmp/data/storage/$cid/$rid/$fname"
cmp -s "$stored" "$tmp/src.bin" || { echo "bench: stored bytes differ" >&2; exit 1; }
nport=$(free_port)
mkdir -p "$tmp/nginx/tmp"
chmod -R 755 "$tmp/data"
cat >"$tmp/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $tmp/nginx/tmp/body;
    proxy_temp_path $tmp/nginx/tmp/proxy;
    fastcgi_temp_path $tmp/nginx/tmp/fastcgi;
    uwsgi_temp_path $tmp/nginx/tmp/uwsgi;
    scgi_temp_path $tmp/nginx/tmp/scgi;
    sendfile on;
    server { listen 127.0.0.1:$nport; root $tmp/data/storage; }
}
CONF
taskset -c 0 nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" &
pids+=("$!")
wait_up "http://127.0.0.1:$nport/$cid/$rid/$fname"
get() { taskset -c 1 curl -s -o /dev/null -w '%{time_total}' "$1"; }
get "http://127.0.0.1:$nport/$cid/$rid/$fname" >/dev/null # warm the page cache
n_s=$(get "http://127.0.0.1:$nport/$cid/$rid/$fname")
c_s=$(get "http://127.0.0.1:$cport/api/files/$cid/$rid/$fname")
n=$(mbps "$bytes" "$n_s")
c=$(mbps "$bytes" "$c_s")
echo "download_${mb}MiB: $c MiB/s (ratio $(awk -v a="$c" -v b="$n" 'BEGIN {printf "%.2f", a / b}')x nginx at $n MiB/s; goal >= 0.8x)"
