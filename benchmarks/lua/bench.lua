-- bench.lua: the request and the per-response checks for every wrk scenario of the
-- fastasgi benchmark harness (benchmarks/wrk.py builds the command line).
--
-- Arguments after `--` on the wrk command line, all required, in this order:
--   method      GET, POST, ...
--   path        request target, e.g. /json
--   body_bytes  request body size; 0 for none (the body is a fixed 16-byte pattern)
--   depth       requests per write: 1, or e.g. 16 for TechEmpower-style pipelining
--   check       how each response body is checked:
--                 eq    the body must equal `expected`
--                 len   the body length must equal tonumber(expected)
--                 echo  the body must equal the request body
--                 none  no body check
--   expected    the value for `check` ("-" when unused)
--   headers     "hdr" to require Server and Date headers on every response, else "-"
--
-- Every response is counted; anything but a 2xx status, a body that fails the check or a
-- missing required header is counted per wrk thread and reported by done() on one line:
--   BENCH-CHECKS responses=N non2xx=N badbody=N nohdr=N
-- followed by wrk's own numbers in machine-readable form (BENCH-SUMMARY ...).
-- Strings in LuaJIT are interned, so `body == expected` is a pointer compare, even for 1 MiB.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local function make_body(n)
  local pattern = "0123456789abcdef"
  local body = string.rep(pattern, math.floor(n / #pattern))
  return body .. string.sub(pattern, 1, n - #body)
end

function init(args)
  if #args < 7 then
    error("bench.lua needs 7 arguments: method path body_bytes depth check expected headers")
  end
  local method, path = args[1], args[2]
  local body_bytes, depth = tonumber(args[3]), tonumber(args[4])
  check, expected, want_headers = args[5], args[6], args[7] == "hdr"
  expected_len = tonumber(expected)
  request_body = nil
  local headers = {}
  if body_bytes > 0 then
    request_body = make_body(body_bytes)
    headers["Content-Type"] = "application/octet-stream"
  end
  local one = wrk.format(method, path, headers, request_body)
  pipelined = string.rep(one, depth)
  responses, non2xx, badbody, nohdr = 0, 0, 0, 0
end

function request()
  return pipelined
end

function response(status, headers, body)
  responses = responses + 1
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
  if check == "eq" then
    if body ~= expected then badbody = badbody + 1 end
  elseif check == "len" then
    if body == nil or #body ~= expected_len then badbody = badbody + 1 end
  elseif check == "echo" then
    if body ~= request_body then badbody = badbody + 1 end
  end
  if want_headers then
    local server = headers["Server"] or headers["server"]
    local date = headers["Date"] or headers["date"]
    if not (server and date) then
      -- header names are case-insensitive (RFC 9110 5.1): look again, the slow way
      server, date = false, false
      for name, _ in pairs(headers) do
        local lower = string.lower(name)
        if lower == "server" then server = true elseif lower == "date" then date = true end
      end
      if not (server and date) then nohdr = nohdr + 1 end
    end
  end
end

function done(summary, latency, requests)
  local r, n, b, h = 0, 0, 0, 0
  for _, thread in ipairs(threads) do
    r = r + thread:get("responses")
    n = n + thread:get("non2xx")
    b = b + thread:get("badbody")
    h = h + thread:get("nohdr")
  end
  io.write(string.format("BENCH-CHECKS responses=%d non2xx=%d badbody=%d nohdr=%d\n", r, n, b, h))
  local e = summary.errors
  io.write(string.format(
    "BENCH-SUMMARY requests=%d duration_us=%d bytes=%d connect=%d read=%d write=%d status=%d timeout=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
