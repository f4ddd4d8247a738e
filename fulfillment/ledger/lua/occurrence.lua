-- occurrence: a CloudBlue call's place in its subscription's sequence of operations. Not a
-- record script: it takes no prelude.
--
-- KEYS:
--   KEYS[1]  the subscription's sequence  hash  last (the latest call's fingerprint), seq
-- ARGV: [1] the call's fingerprint  [2] seconds the sequence is kept after its latest call
--       ('0' = forever)
-- Returns the sequence number: the latest one when the call repeats the latest call (a
-- retry of it), else the next one (a new operation, even if an earlier one looked the same).
local fingerprint, keep = ARGV[1], tonumber(ARGV[2])
local seq
if redis.call('HGET', KEYS[1], 'last') == fingerprint then
  seq = tonumber(redis.call('HGET', KEYS[1], 'seq')) or 1
else
  seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
  redis.call('HSET', KEYS[1], 'last', fingerprint)
end
if keep and keep > 0 then redis.call('EXPIRE', KEYS[1], math.ceil(keep)) end
return seq
