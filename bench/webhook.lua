-- wrk script for bench.receiver: POST a distinct Provision Notification on every request.
--
-- wrk -t1 -c8 -d10s -s bench/webhook.lua http://127.0.0.1:PORT/webhooks/pax8 -- HEADER SECRET NONCE [PACE_MS]
--
-- Every request carries fresh request, detail and attempt ids (the ledger would count a
-- repeat as a duplicate): NONCE (8 hex digits, new per wrk run) + thread number + a
-- per-thread counter make them unique; the rest is random. done() prints one line,
-- "WRKJSON {...}", with 2xx and other answers counted over all threads.

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

function init(args)
  header_name = args[1] or "pax8ApiTokenV1"
  secret = args[2] or ""
  nonce = args[3] or "00000000"
  -- Optional pacing: milliseconds each connection waits before its next request, so a
  -- few connections offer a chosen rate instead of as much as the server takes.
  pace_ms = tonumber(args[4] or "0") or 0
  math.randomseed(os.time() + tid * 7919)
  n = 0
  ok = 0
  bad = 0
end

local function uuid(kind)
  n = n + 1
  return string.format("%s-%04x-4%03x-%04x-%012x", nonce, tid * 4 + kind,
    math.random(0, 0xfff), 0x8000 + math.random(0, 0x3fff), n)
end

local template = [[{"isSimulation": false, "provisionRequest": {"id": "%s", ]] ..
  [["partnerId": "%s", "partnerName": "Example Partner Name", "companyId": "%s", ]] ..
  [["companyName": "Example Company Name", "companyDomain": "%s.example.com", ]] ..
  [["productId": "7b7e3a6e-0c1b-4d8e-9b43-1f0b2d9c4a11", "productName": "Product ABC", ]] ..
  [["quantity": 1, "subscriptionId": "%s", "type": "NetNew", "billingTerm": "Monthly"}, ]] ..
  [["provisionDetail": {"id": "%s", "provisionRequestId": "%s", "details": {}}, ]] ..
  [["provisionAttempt": {"id": "%s", "provisionDetailId": "%s", ]] ..
  [["webhookId": "5d0f7c1e-8a2b-4c3d-9e4f-a1b2c3d4e5f6", "status": "Acknowledged"}}]]

function delay()
  return pace_ms
end

function request()
  local rid, did, aid = uuid(1), uuid(2), uuid(3)
  local body = string.format(template, rid, uuid(0), uuid(0), string.sub(rid, 1, 8) ..
    string.sub(rid, -12), uuid(0), did, rid, aid, did)
  local headers = {["Content-Type"] = "application/json", [header_name] = secret}
  return wrk.format("POST", nil, headers, body)
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
  else
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local all_ok, all_bad = 0, 0
  for _, thread in ipairs(threads) do
    all_ok = all_ok + thread:get("ok")
    all_bad = all_bad + thread:get("bad")
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "ok": %d, "bad": %d, "connect": %d, ' ..
    '"read": %d, "write": %d, "timeout": %d, "status": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, all_ok, all_bad, e.connect, e.read, e.write,
    e.timeout, e.status, latency:percentile(50), latency:percentile(99)))
end
