-- accept: record a notification; push its task message when it must be provisioned.
--
-- KEYS: the record's keys (common.lua), then
--   KEYS[12]  the task's queue (list), used only when ARGV[11] is a message
-- ARGV:
--   [1] member   [2] now        [3] id         [4] source   [5] type
--   [6] simulation ('1'|'0')    [7] detail id  [8] attempt id ('' = none to report)
--   [9] webhook id              [10] payload (the notification's JSON)
--   [11] message: the raw Celery message to push ('' = the caller publishes the task)
--   [12] route: the route decided for the order ('-': none takes it)
--   [13] previous route (a ChangeProduct's old product's)   [14] why no route takes it
-- Returns {action, previous state}: action is one of fulfillment.states.Accepted
--   queued (pushed here), provision (the caller publishes), report, inflight, duplicate;
--   or {'reroute', state, '0', route}: the record has another route (nothing changed: the
--   caller accepts again with that route's message).
local now, id, source, kind, simulation = tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local detail, attempt, webhook, payload, message = ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11]
local route, previous_route, refusal = ARGV[12], ARGV[13], ARGV[14]

-- Record and enqueue are atomic when the message is given: the record goes straight to
-- 'queued' (no script or reader ever sees it 'received', so it never enters that state's set),
-- and its history still tells both steps (``event``: the step that made it owed, when it had
-- one: 'notified', 'new-detail', 'new-attempt'), written by one LPUSH. Without the message it
-- stays 'received' until the caller has published the task (mark_queued.lua): a publish
-- that fails leaves it to be enqueued again.
local function provision(previous, event, text)
  if message == '' then
    if event then set_state('received', now, event, text) end
    return {'provision', previous}
  end
  redis.call('LPUSH', KEYS[12], message)
  local old = previous ~= '' and previous or nil
  if old and STATE_SET[old] then redis.call('ZREM', STATE_SET[old], MEMBER) end
  redis.call('ZADD', STATE_SET['queued'], now, MEMBER)
  redis.call('ZADD', INDEX, now, MEMBER)
  redis.call('HSET', RECORD, 'state', 'queued', 'updated_at', now, 'state_at', now)
  local enqueued = cjson.encode({at = now, state = 'queued', event = 'enqueued', note = ''})
  if event then
    -- Oldest first: the list is newest first.
    redis.call('LPUSH', HISTORY,
      cjson.encode({at = now, state = 'received', event = event, note = text or ''}), enqueued)
  else
    redis.call('LPUSH', HISTORY, enqueued)
  end
  redis.call('LTRIM', HISTORY, 0, 99)
  return {'queued', previous}
end

local state = redis.call('HGET', RECORD, 'state')
if state then
  -- An order keeps the route it was recorded with, whatever the routes file says now.
  local recorded = redis.call('HGET', RECORD, 'route') or ''
  if recorded == '' then
    -- Written before routes: the route decided now is its first.
    if route ~= '' then
      redis.call('HSET', RECORD, 'route', route, 'previous_route', previous_route,
        'route_refusal', refusal)
    end
  elseif recorded ~= route then
    return {'reroute', state, '0', recorded}
  end
end
local fresh = 0
if attempt ~= '' then
  fresh = redis.call('HSETNX', ATTEMPTS, attempt,
    cjson.encode({detail = detail, status = 'pending', at = now}))
  -- (a new record gets them with the rest below)
  if fresh == 1 and state then
    redis.call('HSET', RECORD, 'attempt_id', attempt, 'webhook_id', webhook)
  end
end
if not state then
  redis.call('HSET', RECORD, 'id', id, 'source', source, 'type', kind,
    'simulation', simulation, 'detail_id', detail, 'attempt_id', attempt, 'webhook_id', webhook,
    'payload', payload, 'created_at', now, 'retries', 0, 'claims', 0, 'generation', 0,
    'route', route, 'previous_route', previous_route, 'route_refusal', refusal)
  return provision('', 'notified', attempt)
end
if detail ~= redis.call('HGET', RECORD, 'detail_id') then
  redis.call('HSET', RECORD, 'detail_id', detail, 'payload', payload, 'type', kind,
    'retries', 0, 'report_retries', 0, 'claims', 0, 'claim_task', '', 'claim_worker', '',
    'error', '')
  return provision(state, 'new-detail', detail)
end
if state == 'received' then
  return provision(state)
end
if state == 'queued' or state == 'provisioning' then
  return {'inflight', state}
end
if state == 'dead' then
  if fresh == 1 then
    -- The payload stays the one first recorded for this detail: the call repeats with the
    -- same Idempotency-Key, so it must carry the same body (a vendor answers 422 otherwise).
    redis.call('HSET', RECORD, 'retries', 0, 'claims', 0, 'claim_task', '', 'claim_worker', '')
    return provision(state, 'new-attempt', attempt)
  end
  return {'duplicate', state}
end
if fresh == 1 then
  if state == 'reported' then
    local outcome = redis.call('HGET', RECORD, 'outcome')
    set_state(outcome == 'Fail' and 'failed' or 'provisioned', now, 'new-attempt', attempt)
  end
  return {'report', state}
end
return {'duplicate', state}
