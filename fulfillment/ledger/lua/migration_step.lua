-- migration_step: record where a migration under way stands (its target, the step it is at
-- and the cursor within that step), so a run that is interrupted resumes there. Not a record
-- script: it takes no prelude.
--
-- KEYS: [1] the migration's progress (hash)  [2] the migration lock
-- ARGV: [1] the caller's lock token  [2] the target version  [3] the step (from 0)
--       [4] the cursor within the step ('0' = from its start)  [5] the release running it
--       [6] now
-- Returns 1 when recorded; 0 (nothing written) when the caller no longer holds the lock.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('HSETNX', KEYS[1], 'started_at', ARGV[6])
redis.call('HSET', KEYS[1], 'to', ARGV[2], 'step', ARGV[3], 'cursor', ARGV[4],
  'release', ARGV[5], 'at', ARGV[6])
return 1
