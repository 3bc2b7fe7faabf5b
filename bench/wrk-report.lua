-- Prints wrk's summary as one JSON line (prefixed WRK_JSON) for bench/run.mjs.
-- Latencies are in microseconds, as wrk records them.
-- BENCH_METHOD and BENCH_BODY (set by bench/load.mjs) give every request's method and body.
local method = os.getenv("BENCH_METHOD")
if method ~= nil and method ~= "" then wrk.method = method end
local body = os.getenv("BENCH_BODY")
if body ~= nil and body ~= "" then wrk.body = body end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"durationUs":%.0f,"requests":%.0f,"bytes":%.0f,' ..
    '"errors":{"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,"timeout":%.0f},' ..
    '"latencyUs":{"min":%.0f,"mean":%.2f,"stdev":%.2f,"max":%.0f,"p50":%.0f,"p90":%.0f,"p99":%.0f,"p999":%.0f}}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
