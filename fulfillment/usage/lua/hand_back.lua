-- hand_back: give a claimed job back for a retry, keeping where to resume.
-- KEYS[1]  the job's hash                   ff:usage:job:<day>:<job>
-- ARGV[1]  claim token
-- ARGV[2]  next batch to post (0: from the start)
-- ARGV[3]  the lines snapshot to resume with (JSON; "" for none)
-- ARGV[4]  the error
-- Returns 1, or 0 when the claim was no longer this token's.
if redis.call('HGET', KEYS[1], 'holder') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'next_batch', ARGV[2], 'lines', ARGV[3], 'error', ARGV[4])
redis.call('HDEL', KEYS[1], 'holder', 'lease_until')
return 1
