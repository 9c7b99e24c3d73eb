-- wrk script of bench/http.py: each request is a drop-off of its own (a fresh
-- Idempotency-Key) by one of the crowd's employees (their bearer token), round robin.
--   wrk ... -s bench/dropoffs.lua URL -- CROWD_FILE service|raw
-- CROWD_FILE has one line per employee: "<token> <station code> <user id>".

local crowd, mode, next_one, thread_id = {}, "service", 0, 0
local threads, counter = {}, 0

function setup(thread)
  counter = counter + 1
  thread:set("thread_id", counter)
  table.insert(threads, thread)
end

function init(args)
  mode = args[2] or "service"
  for line in io.lines(args[1]) do
    local token, code, user = line:match("^(%S+) (%S+) (%S+)$")
    if token then
      table.insert(crowd, { token = token, code = code, user = user })
    end
  end
  next_one = thread_id * 7919
  math.randomseed(os.time() + thread_id)
end

function request()
  next_one = next_one + 1
  local e = crowd[(next_one % #crowd) + 1]
  local body
  if mode == "raw" then
    body = string.format(
      '{"station_code":"%s","category":"ink_cartridge","quantity":1,"user_id":"%s"}',
      e.code, e.user)
  else
    body = string.format('{"station_code":"%s","category":"ink_cartridge","quantity":1}', e.code)
  end
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. e.token,
    ["Idempotency-Key"] = string.format("%d-%d-%08x%08x", thread_id, next_one,
      math.random(0, 0x7fffffff), math.random(0, 0x7fffffff)),
  }
  return wrk.format("POST", nil, headers, body)
end

function done(summary, latency, requests)
  local errors = summary.errors
  local failed = errors.connect + errors.read + errors.write + errors.status + errors.timeout
  io.write(string.format(
    'RESULT {"requests": %d, "errors": %d, "seconds": %f, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, failed, summary.duration / 1e6,
    latency:percentile(50), latency:percentile(99)))
end
