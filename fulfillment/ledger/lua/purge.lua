-- purge: delete records still reported since before a cutoff (retention). Not a record
-- script: it takes no prelude.
--
-- KEYS:
--   KEYS[1]  the index zset         KEYS[2]  the reported state set
--   then five keys per record: its hash, attempts, history, report lock and outcome list
-- ARGV: [1] cutoff (a timestamp)  then one member per record, in the order of KEYS
-- Returns how many records were deleted.
local cutoff, purged = tonumber(ARGV[1]), 0
for i = 2, #ARGV do
  local member = ARGV[i]
  local base = 3 + (i - 2) * 5
  local key = KEYS[base]
  local state = redis.call('HGET', key, 'state')
  local since = tonumber(redis.call('HGET', key, 'state_at') or '0') or 0
  if state == 'reported' and since < cutoff then
    redis.call('DEL', key, KEYS[base + 1], KEYS[base + 2], KEYS[base + 3], KEYS[base + 4])
    redis.call('ZREM', KEYS[2], member)
    redis.call('ZREM', KEYS[1], member)
    purged = purged + 1
  elseif not state then
    redis.call('ZREM', KEYS[2], member)
    redis.call('ZREM', KEYS[1], member)
  end
end
return purged
