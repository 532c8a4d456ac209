-- bench:serve's request for Debian's wrk: POST the body in the file $WRK_BODY with the
-- content type $WRK_CONTENT_TYPE, and print one JSON line of the run's figures when done.
local f = assert(io.open(assert(os.getenv("WRK_BODY"), "WRK_BODY is not set"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = assert(os.getenv("WRK_CONTENT_TYPE"), "WRK_CONTENT_TYPE is not set")

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"durationUs":%d,"non2xx":%d,"socketErrors":%d,"p50Us":%d,"p99Us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
