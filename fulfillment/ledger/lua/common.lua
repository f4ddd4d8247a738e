-- common: the prelude of every ledger script that changes one record (Python prepends it).
--
-- KEYS (the same layout in every such script; a script's own keys follow from KEYS[12]):
--   KEYS[1]      the record            hash   (fields of fulfillment.ledger.Record)
--   KEYS[2]      its attempts          hash   attempt id -> {detail, status, at, result}
--   KEYS[3]      its history           list   the last 100 changes, newest first
--   KEYS[4]      the index             zset   member by last update (recent orders)
--   KEYS[5..11]  the state sets        zsets  member by the time it entered the state, in
--                                             the order of STATES below
-- ARGV[1] is always the record's member name in those sets (its id).
--
-- STATES must list fulfillment.states.State in its order (a unit test checks it).
local STATES = {'received', 'queued', 'provisioning', 'provisioned', 'failed', 'reported', 'dead'}
local RECORD, ATTEMPTS, HISTORY, INDEX = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local STATE_SET = {}
for i, name in ipairs(STATES) do STATE_SET[name] = KEYS[4 + i] end
local MEMBER = ARGV[1]

local function push_history(now, state, event, text)
  redis.call('LPUSH', HISTORY,
    cjson.encode({at = now, state = state, event = event, note = text or ''}))
  redis.call('LTRIM', HISTORY, 0, 99)
end

-- Move the record to state ``new``: its state sets, the index, the hash and the history.
local function set_state(new, now, event, text)
  local old = redis.call('HGET', RECORD, 'state')
  if old and STATE_SET[old] then redis.call('ZREM', STATE_SET[old], MEMBER) end
  redis.call('ZADD', STATE_SET[new], now, MEMBER)
  redis.call('ZADD', INDEX, now, MEMBER)
  redis.call('HSET', RECORD, 'state', new, 'updated_at', now, 'state_at', now)
  push_history(now, new, event, text)
end

-- A history entry that keeps the state (an event worth an operator's eye, not a transition).
local function note(now, event, text)
  push_history(now, redis.call('HGET', RECORD, 'state') or '', event, text)
end

-- Whether the claim named by ``token`` (claim.lua's ARGV[8]) still holds the record for
-- ``detail``.
local function holds(state, detail, token)
  return state == 'provisioning' and redis.call('HGET', RECORD, 'claim_token') == token
    and redis.call('HGET', RECORD, 'detail_id') == detail
end

-- The record's outcome is known (stored, or given up on): wake whoever waits for it (the
-- receiver answering a CloudBlue call). ``key`` is the record's outcome list; callers pass it
-- only where someone may wait (a CloudBlue record), so a Pax8 order writes nothing more. The
-- token only wakes a waiter, which then reads the record itself; an hour outlives any wait.
local function notify_waiters(key)
  if not key then return end
  redis.call('LPUSH', key, '1')
  redis.call('LTRIM', key, 0, 9)
  redis.call('EXPIRE', key, 3600)
end

-- Set one attempt's status (and result id); the attempt's table, or false if unknown.
local function attempt_status(attempt, status, now, result)
  local raw = redis.call('HGET', ATTEMPTS, attempt)
  if not raw then return false end
  local a = cjson.decode(raw)
  a.status = status
  a.at = now
  if result then a.result = result end
  redis.call('HSET', ATTEMPTS, attempt, cjson.encode(a))
  return a
end

-- Start a report run (report_begin.lua; finish.lua, when given the lock, right after it
-- stored the outcome): take the record's report ``lock`` (free, or already ours: ``token``),
-- read the record and its attempts, and mark ``posting`` the attempts whose result is about
-- to be POSTed (each mark before its POST, as mark_attempt.lua does one by one).
-- Returns {action, state, record, attempts}:
--   missing: no record; unfinished: no outcome stored yet (the lock is not taken);
--   busy: another run holds the lock; locked: the lock is ours, and then
--   record is its HGETALL and attempts a flat list of (attempt id, its JSON as it was
--   before this script): of those, a Pax8 record's ``pending`` attempts of the outcome's
--   detail are now ``posting`` (the caller POSTs each; one that was ``posting`` already is
--   left so, and looked up at Pax8 before it is POSTed again).
local function begin_report(now, lock, token, ttl)
  local state = redis.call('HGET', RECORD, 'state')
  if not state then return {'missing', ''} end
  if state ~= 'provisioned' and state ~= 'failed' then return {'unfinished', state} end
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
end
