-- A wrk script for tests/node/gateway_faults.test.mjs: GETs and record-creating
-- POSTs mixed, and a log of every request, so the test can tell which ones
-- failed and when. Run wrk with as many threads as connections: each thread
-- then owns one connection carrying one request at a time, so a request()
-- that comes while the previous request has had no response() means that
-- request failed (wrk reconnects after a socket error and asks for a new one).
--
-- Settings come from the environment (wrk's done() gets no script arguments):
--   WRK_GET_PATH   path of the GETs
--   WRK_POST_PATH  path of the POSTs, whose JSON body is {"id": ID}
--   WRK_POST_EVERY every Nth request of a connection is a POST
--   WRK_ID_PREFIX  2 characters [a-z0-9] starting every record id of this run
--   WRK_OUT        file done() writes the log to, a line per request:
--                  METHOD ID START_US END_US STATUS (status 0: socket error)
-- Requests still running when wrk stops are not logged.
--
-- wrk also calls request() once from its main thread, on the first thread's
-- state, to check the script: that call is told apart by the OS thread and
-- answered without being logged.

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } wrk_timespec;
int clock_gettime(int clk, wrk_timespec *ts);
unsigned long pthread_self(void);
]])
local ts = ffi.new("wrk_timespec")

-- Wall-clock microseconds (CLOCK_REALTIME, comparable with node's Date.now()).
local function now_us()
  ffi.C.clock_gettime(0, ts)
  return tonumber(ts.tv_sec) * 1000000 + math.floor(tonumber(ts.tv_nsec) / 1000)
end

-- The script body runs on wrk's main thread, as does the checking call.
local main_thread = tonumber(ffi.C.pthread_self())

local threads = {}
local next_index = 0

function setup(thread)
  thread:set("index", next_index)
  next_index = next_index + 1
  table.insert(threads, thread)
end

local get_path = os.getenv("WRK_GET_PATH")
local post_path = os.getenv("WRK_POST_PATH")
local post_every = tonumber(os.getenv("WRK_POST_EVERY"))
local id_prefix = os.getenv("WRK_ID_PREFIX")
local headers = { ["Content-Type"] = "application/json" }

local n = 0
local cur = nil -- the request on the wire: {method, id, start_us}
log = {}

local function record(status)
  log[#log + 1] = string.format("%s %s %d %d %d", cur[1], cur[2], cur[3], now_us(), status)
  cur = nil
end

function request()
  if tonumber(ffi.C.pthread_self()) == main_thread then
    return wrk.format("GET", get_path)
  end
  if cur then
    record(0)
  end
  n = n + 1
  if n % post_every == 0 then
    -- 15 characters of [a-z0-9], as record ids are: prefix, thread, counter.
    local id = string.format("%s%d%012d", id_prefix, index, n)
    cur = { "POST", id, now_us() }
    return wrk.format("POST", post_path, headers, '{"id":"' .. id .. '"}')
  end
  cur = { "GET", "-", now_us() }
  return wrk.format("GET", get_path)
end

function response(status, hdrs, body)
  if cur then
    record(status)
  end
end

function done(summary, latency, requests)
  local f = assert(io.open(os.getenv("WRK_OUT"), "w"))
  for _, t in ipairs(threads) do
    local lines = t:get("log")
    for i = 1, #lines do
      f:write(lines[i], "\n")
    end
  end
  f:close()
end
