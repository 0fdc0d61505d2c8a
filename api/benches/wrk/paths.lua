-- wrk script: requests cycle through the URL paths of a file (one per line), each
-- thread starting at its own offset, so consecutive requests ask for different data
-- (different instance ids, event types …) and no cache flatters the numbers.
--
--   wrk -t2 -c16 -d20s --latency -s paths.lua http://127.0.0.1:8000 -- PATHS_FILE
--
-- At the end it prints one line for the benchmark script to parse:
--   RESULT requests=<n> rps=<n> p50_ms=<x> p99_ms=<x> non2xx=<n> socket_errors=<n>

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("thread_no", counter)
  table.insert(threads, thread)
end

local paths = {}
local idx = 0

function init(args)
  local file = args[1] or error("usage: wrk … -s paths.lua URL -- PATHS_FILE")
  for line in io.lines(file) do
    if #line > 0 then paths[#paths + 1] = line end
  end
  if #paths == 0 then error(file .. " has no paths") end
  -- Threads start far apart in the list.
  idx = ((thread_no or 1) - 1) * math.floor(#paths / 7 + 1) % #paths
end

function request()
  idx = idx % #paths + 1
  return wrk.format("GET", paths[idx])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d rps=%.1f p50_ms=%.2f p99_ms=%.2f non2xx=%d socket_errors=%d\n",
    summary.requests,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000,
    latency:percentile(99) / 1000,
    e.status,
    e.connect + e.read + e.write + e.timeout))
end
