-- POST a ~200-byte record as the superuser seeded by bench/seed.mjs.
wrk.method = "POST"
wrk.path = "/api/collections/bench/records"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = os.getenv("BENCH_TOKEN")
wrk.body = '{"title":"a benchmark record","body":"lorem ipsum dolor sit amet lorem ipsum dolor sit amet lorem ipsum dolor sit amet lorem ipsum dolor sit amet","score":42,"active":true}'
