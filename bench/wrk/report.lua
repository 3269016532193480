-- wrk's done() for every workload: one JSON line on stdout, which bench/load.py reads.
-- Latencies are in microseconds; "status" counts answers of 400 and over, "timeout" answers that
-- took longer than wrk's --timeout (their latency is then not in the percentiles).
return function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
      .. '"connect": %d, "read": %d, "write": %d, "timeout": %d, "status": %d}\n',
    summary.requests, summary.duration, math.floor(latency:percentile(50)), math.floor(latency:percentile(99)),
    errors.connect, errors.read, errors.write, errors.timeout, errors.status
  ))
end
