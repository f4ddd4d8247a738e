-- migrate_common: the prelude of every migration step that rewrites records in batches
-- (Python prepends it; fulfillment/ledger/migrations.py walks the records).
--
-- KEYS:  [1] the migration's progress (hash)  [2] the migration lock
--        then, record after record, the same number of keys per record (ARGV[4])
-- ARGV:  [1] the caller's lock token  [2] the cursor after this batch  [3] now
--        [4] keys per record  then each record's member name (scope:id), in the order of its keys
-- A step's body calls each_record(fn) (fn gets the record's member name and its keys, in
-- the order the step's keys_of gives them) and ends with `return done(count)`: the cursor is
-- stored with the batch's writes, in the same script, so a batch is never half-applied nor
-- applied and then forgotten. Each fn must be idempotent (SCAN may return a record twice).
-- A caller that no longer holds the lock writes nothing.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return {'lost', 0} end
local NOW, PER_RECORD = tonumber(ARGV[3]), tonumber(ARGV[4])

local function each_record(fn)
  local count = 0
  for i = 5, #ARGV do
    local first = 3 + (i - 5) * PER_RECORD
    local keys = {}
    for k = 0, PER_RECORD - 1 do keys[k + 1] = KEYS[first + k] end
    if fn(ARGV[i], keys) then count = count + 1 end
  end
  return count
end

local function done(count)
  redis.call('HSET', KEYS[1], 'cursor', ARGV[2], 'at', ARGV[3])
  redis.call('HINCRBY', KEYS[1], 'changed', count)
  return {'done', count}
end
