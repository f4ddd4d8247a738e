-- finish: store the vendor's outcome, if the claim still holds; and, when given the report
-- lock's token, start the report run in the same round trip (common.lua's begin_report).
--
-- KEYS: the record's keys (common.lua), then
--   KEYS[12]  the record's report lock (taken only when ARGV[9] gives its token)
--   KEYS[13]  the record's outcome list (optional: given when someone may wait for it)
-- ARGV:
--   [1] member  [2] now  [3] detail id  [4] claim token (claim.lua's ARGV[8])
--   [5] outcome (Success|Fail)  [6] external ids (JSON)  [7] metadata (JSON)
--   [8] message (the Fail's message, or a note)
--   [9] the report lock's token ('' = store the outcome only)  [10] the lock's ttl (ms)
-- Returns {action, previous state}: ok, or stale (the claim was lost); after an ok with
-- ARGV[9], then what begin_report returns (action, state, record, attempts).
local now, detail, token = tonumber(ARGV[2]), ARGV[3], ARGV[4]
local outcome, external_ids, metadata, message = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local state = redis.call('HGET', RECORD, 'state')
if not holds(state, detail, token) then return {'stale', state or ''} end
redis.call('HSET', RECORD, 'outcome', outcome, 'outcome_detail_id', detail,
  'external_ids', external_ids, 'metadata', metadata, 'result_message', message,
  'error', outcome == 'Fail' and message or '', 'claims', 0, 'claim_task', '',
  'claim_worker', '', 'claim_until', 0, 'call_until', 0, 'provisioned_at', now)
set_state(outcome == 'Fail' and 'failed' or 'provisioned', now, 'vendor', message)
notify_waiters(KEYS[13])
if ARGV[9] == '' then return {'ok', state} end
local start = begin_report(now, KEYS[12], ARGV[9], ARGV[10])
return {'ok', state, start[1], start[2], start[3], start[4]}
