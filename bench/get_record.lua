-- GET one record by id; the id comes from bench/seed.mjs.
local path = "/api/collections/bench/records/" .. os.getenv("BENCH_RECORD_ID")
request = function()
    return wrk.format("GET", path)
end
