-- report_begin: start a report run in one round trip: take the record's report lock, read
-- the record and its attempts, and mark ``posting`` the attempts whose result is about to
-- be POSTed (each mark before its POST, as mark_attempt.lua does one by one).
--
-- KEYS: the record's keys (common.lua), then
--   KEYS[12]  the record's report lock (lock_acquire.lua's rules: free, or already ours)
-- ARGV:
--   [1] member  [2] now  [3] the lock's token (its owner)  [4] the lock's ttl (ms)
-- Returns {action, state, record, attempts}:
--   missing: no record; unfinished: no outcome stored yet (the lock is not taken);
--   busy: another run holds the lock; locked: the lock is ours, and then
--   record is its HGETALL and attempts a flat list of (attempt id, its JSON as it was
--   before this script): of those, a Pax8 record's ``pending`` attempts of the outcome's
--   detail are now ``posting`` (the caller POSTs each; one that was ``posting`` already is
--   left so, and looked up at Pax8 before it is POSTed again).
local now, token, ttl = tonumber(ARGV[2]), ARGV[3], ARGV[4]
local state = redis.call('HGET', RECORD, 'state')
if not state then return {'missing', ''} end
if state ~= 'provisioned' and state ~= 'failed' then return {'unfinished', state} end
local lock = KEYS[12]
if not redis.call('SET', lock, token, 'NX', 'PX', ttl) then
  if redis.call('GET', lock) ~= token then return {'busy', state} end
  redis.call('PEXPIRE', lock, ttl)
end
local record = redis.call('HGETALL', RECORD)
local before = redis.call('HGETALL', ATTEMPTS)
if redis.call('HGET', RECORD, 'source') == 'pax8' then
  local detail = redis.call('HGET', RECORD, 'outcome_detail_id')
  for i = 2, #before, 2 do
    local a = cjson.decode(before[i])
    if a.detail == detail and a.status == 'pending' then
      a.status = 'posting'
      a.at = now
      redis.call('HSET', ATTEMPTS, before[i - 1], cjson.encode(a))
    end
  end
end
return {'locked', state, record, before}
