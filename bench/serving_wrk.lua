-- wrk script of bench/serving_bench.py: POSTs JSON bodies read from $BODIES (one per line), cycling through them,
-- and prints a one-line JSON summary (latencies in microseconds) for the Python side to parse.
local reqs = {}
local i = 0

init = function(args)
  local headers = {["Content-Type"] = "application/json"}
  if os.getenv("AUTH") then  -- an Authorization header, when the server wants a token (the feature server bench)
    headers["Authorization"] = os.getenv("AUTH")
  end
  for line in io.lines(os.getenv("BODIES")) do
    reqs[#reqs + 1] = wrk.format("POST", nil, headers, line)
  end
end

request = function()
  i = i % #reqs + 1
  return reqs[i]
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "mean_us": %.1f, '
    .. '"max_us": %d, "errors_status": %d, "errors_connect": %d, "errors_read": %d, "errors_write": %d, '
    .. '"errors_timeout": %d}\n', summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(99), latency.mean, latency.max, e.status, e.connect, e.read, e.write, e.timeout))
end
