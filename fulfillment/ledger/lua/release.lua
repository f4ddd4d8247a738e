-- release: provisioning -> queued before a countdown retry, counting the retry.
--
-- KEYS: the record's keys (common.lua)
-- ARGV: [1] member  [2] now  [3] detail id  [4] claim token  [5] error (why it is retried)
--   [6] '1' when the vendor answered (its call is over) or was never called, else the
--       call's deadline stays
--   [7] counted ('1'|'0'): whether the retry spends the vendor budget (not when the claim
--       only lacked replicas' confirmation, REDIS_WAIT_REPLICAS)
-- Returns {action, retries so far}: ok, or {stale, state} (the claim was lost).
local now, detail, token, error = tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
local state = redis.call('HGET', RECORD, 'state')
if not holds(state, detail, token) then return {'stale', state or ''} end
local retries = redis.call('HINCRBY', RECORD, 'retries', ARGV[7] == '0' and 0 or 1)
redis.call('HSET', RECORD, 'error', error, 'claims', 0, 'claim_task', '',
  'claim_worker', '', 'claim_until', 0)
if ARGV[6] == '1' then redis.call('HSET', RECORD, 'call_until', 0) end
set_state('queued', now, 'retry', error)
return {'ok', tostring(retries)}
