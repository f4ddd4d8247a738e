-- reset: back to received (an operator's replay, reconciliation's requeue).
--
-- KEYS: the record's keys (common.lua)
-- ARGV:
--   [1] member  [2] now  [3] new generation ('1' = a deliberate new try, a new
--   Idempotency-Key)  [4] event  [5] note  [6] only from: comma-separated states ('' = any)
-- Returns {action, previous state}: ok, refused (not in an allowed state), or missing.
local now, bump, event, text, only = tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local state = redis.call('HGET', RECORD, 'state')
if not state then return {'missing', ''} end
if only ~= '' and not string.find(',' .. only .. ',', ',' .. state .. ',', 1, true) then
  return {'refused', state}
end
if bump == '1' then redis.call('HINCRBY', RECORD, 'generation', 1) end
redis.call('HSET', RECORD, 'retries', 0, 'claims', 0, 'claim_task', '',
  'claim_worker', '', 'claim_until', 0)
set_state('received', now, event, text)
return {'ok', state}
