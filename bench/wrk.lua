-- The wrk script of bench/http.py: every request its own, built from one line of a file,
-- round robin over the lines.
--   wrk ... -s bench/wrk.lua URL -- LINES_FILE dropoff|raw|order|pickup [FIRST_LINE]
-- LINES_FILE, one line per request source:
--   dropoff, raw: "<employee token> <station code> <user id>"   (a fresh Idempotency-Key each)
--   order:        "<employee token> <product id>"                (a fresh Idempotency-Key each)
--   pickup:       "<coordinator token> <pickup token>"           (each line once, in order,
--                                                                  from FIRST_LINE, 0-based)

local lines, mode, next_one, thread_id = {}, "dropoff", 0, 0
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("thread_id", counter)
end

function init(args)
  mode = args[2] or "dropoff"
  for line in io.lines(args[1]) do
    local fields = {}
    for field in line:gmatch("%S+") do
      table.insert(fields, field)
    end
    if #fields > 0 then
      table.insert(lines, fields)
    end
  end
  -- A pickup token is good once: go down the list from the first line not used yet.
  if mode == "pickup" then
    next_one = tonumber(args[3] or "0") - 1
  else
    next_one = thread_id * 7919
  end
  math.randomseed(os.time() + thread_id)
end

local function key()
  return string.format("%d-%d-%08x%08x", thread_id, next_one,
    math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
end

function request()
  next_one = next_one + 1
  local f = lines[(next_one % #lines) + 1]
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. f[1],
  }
  local body
  if mode == "pickup" then
    body = string.format('{"token":"%s"}', f[2])
  elseif mode == "order" then
    headers["Idempotency-Key"] = key()
    body = string.format('{"product_id":"%s","quantity":1}', f[2])
  elseif mode == "raw" then
    headers["Idempotency-Key"] = key()
    body = string.format(
      '{"station_code":"%s","category":"ink_cartridge","quantity":1,"user_id":"%s"}', f[2], f[3])
  else
    headers["Idempotency-Key"] = key()
    body = string.format('{"station_code":"%s","category":"ink_cartridge","quantity":1}', f[2])
  end
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
