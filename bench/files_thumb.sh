#!/usr/bin/env bash
# Thumbnails: a 12-megapixel JPEG (4000x3000 gaussian noise, made here with
# libvips: no image ships with the repo) uploaded to a file field listing
# BENCH_THUMB (300x300). Reports the time of the first ?thumb= request (the
# generation, timed by curl), then the cached path under wrk against nginx
# serving the cached thumbnail file cruder wrote (sendfile, open_file_cache;
# goal >= 0.8x nginx), and, to tell the thumbnail path's own cost from a
# download's, the same thumbnail bytes uploaded as a record file and
# downloaded plainly. Server and nginx on core 0, curl and wrk on core 1.
#
# BENCH_DURATION (5s a run), BENCH_ROUNDS (3), BENCH_CONNECTIONS (64) and
# BENCH_THUMB override.
set -euo pipefail

cd "$(dirname "$0")/.."
source bench/lib.sh
duration=${BENCH_DURATION:-5s}
connections=${BENCH_CONNECTIONS:-64}
size=${BENCH_THUMB:-300x300}
bin=build-release/cruder
out=build-release/bench

bench_need wrk nginx taskset curl node cc pkg-config
make --no-print-directory -j2 BUILD=build-release OPT='-O2 -DNDEBUG' "$bin"
mkdir -p "$out"

bench_scratch thumb

# The vips command-line tool is not installed with libvips' headers, so the
# image is made by a few lines against the library the server links anyway.
cat >"$tmp/mkjpeg.c" <<'C'
#include <vips/vips.h>
int main(int argc, char **argv)
{
    VipsImage *noise, *rgb, *u8;
    double green_blue[] = {96.0, 200.0};
    if (argc != 2 || VIPS_INIT(argv[0]))
        return 1;
    if (vips_gaussnoise(&noise, 4000, 3000, "mean", 128.0, "sigma", 40.0, NULL) ||
        vips_bandjoin_const(noise, &rgb, green_blue, 2, NULL) || vips_cast_uchar(rgb, &u8, NULL) ||
        vips_jpegsave(u8, argv[1], "Q", 90, NULL))
        return 1;
    return 0;
}
C
# shellcheck disable=SC2046 # pkg-config prints several words on purpose
cc -O1 -o "$tmp/mkjpeg" "$tmp/mkjpeg.c" $(pkg-config --cflags --libs vips)
"$tmp/mkjpeg" "$tmp/photo.jpg"

cport=$(free_port)
taskset -c 0 "$bin" serve --loops 1 --http "127.0.0.1:$cport" --dir "$tmp/data" --access-log=false \
    2>"$out/thumb-cruder.log" &
pids+=("$!")
wait_up "http://127.0.0.1:$cport/api/health"
"$bin" superuser upsert bench@example.com password123 --dir "$tmp/data" >/dev/null
token=$(curl -s -H 'Content-Type: application/json' \
    -d '{"identity":"bench@example.com","password":"password123"}' \
    "http://127.0.0.1:$cport/api/collections/_superusers/auth-with-password" |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).token))')
curl -sf -o /dev/null -H "Authorization: $token" -H 'Content-Type: application/json' \
    -d "{\"name\":\"photos\",\"type\":\"base\",\"createRule\":\"\",\"viewRule\":\"\",\"fields\":[{\"name\":\"img\",\"type\":\"file\",\"maxSelect\":1,\"maxSize\":104857600,\"thumbs\":[\"$size\"]}]}" \
    "http://127.0.0.1:$cport/api/collections"
rec=$(curl -sf -F "img=@$tmp/photo.jpg;type=image/jpeg" "http://127.0.0.1:$cport/api/collections/photos/records")
read -r rid cid fname <<<"$(node -e 'const r=JSON.parse(process.argv[1]);console.log(r.id, r.collectionId, r.img)' "$rec")"
path="/api/files/$cid/$rid/$fname?thumb=$size"

first=$(taskset -c 1 curl -sf -o "$tmp/first.jpg" -w '%{time_total}' "http://127.0.0.1:$cport$path")
cached="$cid/$rid/thumbs_$fname/${size}_$fname"
[ -s "$tmp/data/storage/$cached" ] || { echo "bench: no cached thumbnail at storage/$cached" >&2; exit 1; }
cmp -s "$tmp/first.jpg" "$tmp/data/storage/$cached" || { echo "bench: first answer is not the cached thumbnail" >&2; exit 1; }
second=$(taskset -c 1 curl -sf -o /dev/null -w '%{time_total}' "http://127.0.0.1:$cport$path")
echo "thumb_first_${size}: $(awk -v s="$first" 'BEGIN {printf "%.0f", s * 1000}') ms" \
    "(12 MP JPEG, $(stat -c %s "$tmp/photo.jpg") bytes; second request $(awk -v s="$second" 'BEGIN {printf "%.1f", s * 1000}') ms)"

plain=$(curl -sf -F "img=@$tmp/first.jpg;type=image/jpeg" "http://127.0.0.1:$cport/api/collections/photos/records")
plain_path=$(node -e 'const r=JSON.parse(process.argv[1]);console.log(["/api/files",r.collectionId,r.id,r.img].join("/"))' "$plain")

nport=$(free_port)
mkdir -p "$tmp/nginx/tmp"
chmod -R 755 "$tmp/data"
cat >"$tmp/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    types { image/jpeg jpg; }
    client_body_temp_path $tmp/nginx/tmp/body;
    proxy_temp_path $tmp/nginx/tmp/proxy;
    fastcgi_temp_path $tmp/nginx/tmp/fastcgi;
    uwsgi_temp_path $tmp/nginx/tmp/uwsgi;
    scgi_temp_path $tmp/nginx/tmp/scgi;
    keepalive_requests 1000000;
    open_file_cache max=16 inactive=600s;
    open_file_cache_valid 600s;
    sendfile on;
    server { listen 127.0.0.1:$nport; root $tmp/data/storage; }
}
CONF
taskset -c 0 nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" &
pids+=("$!")
wait_up "http://127.0.0.1:$nport/$cached"

# The box may be shared: each round runs nginx and both cruder paths back to
# back (so a burst of other load hits one round, not one side), and the
# ratios reported are the median round's. Beside throughput, each run's CPU
# time of the serving process per request (utime + stime from /proc, in
# microseconds) tells cost apart from what other load took.
cpid=${pids[0]}
npid=$(pgrep -P "${pids[1]}" | head -n1)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
run() { # name url pid -> "req/s cpu_us_per_req"
    local t0 t1
    t0=$(ticks "$3")
    taskset -c 1 wrk -t1 -c"$connections" -d"$duration" --latency "$2" >"$out/thumb-$1.txt"
    t1=$(ticks "$3")
    awk -v t="$((t1 - t0))" -v hz="$hz" '/^Requests\/sec:/ {rps = $2} /requests in/ {n = $1}
        END {printf "%.0f %.1f", rps, n ? t * 1e6 / hz / n : 0}' "$out/thumb-$1.txt"
}
rounds=${BENCH_ROUNDS:-3}
echo "== wrk -t1 -c$connections -d$duration x $rounds rounds, $(stat -c %s "$tmp/data/storage/$cached")-byte thumbnail"
: >"$out/thumb-rounds.txt"
for r in $(seq "$rounds"); do
    read -r n ncpu <<<"$(run "nginx_thumb_$r" "http://127.0.0.1:$nport/$cached" "$npid")"
    read -r c ccpu <<<"$(run "cruder_thumb_$r" "http://127.0.0.1:$cport$path" "$cpid")"
    read -r p pcpu <<<"$(run "cruder_plain_$r" "http://127.0.0.1:$cport$plain_path" "$cpid")"
    echo "round $r: nginx $n req/s (${ncpu} us cpu/req), thumb $c ($ccpu), plain $p ($pcpu)"
    echo "$n $c $p $ncpu $ccpu $pcpu" >>"$out/thumb-rounds.txt"
done
median() { # column of thumb-rounds.txt, as a ratio to column 1 (or itself if $2 is "raw")
    awk -v k="$1" -v raw="${2:-}" '{print raw ? $k : $k / $1}' "$out/thumb-rounds.txt" |
        sort -g | awk -v raw="${2:-}" '{v[NR] = $1} END {printf raw ? "%.1f" : "%.2f", v[int((NR + 1) / 2)]}'
}
echo "nginx_thumb_cached: $(median 1 raw) req/s (median), $(median 4 raw) us cpu/req"
echo "thumb_cached: ratio $(median 2)x nginx (median of $rounds rounds; goal >= 0.8x), $(median 5 raw) us cpu/req"
echo "download_small_plain: ratio $(median 3)x nginx (the same bytes without ?thumb=), $(median 6 raw) us cpu/req"
grep -lE 'Socket errors|Non-2xx' "$out"/thumb-*.txt | sed 's/^/WARNING: errors in /' || true
