-- reconcile_run: count a reconciliation run, add its figures to the running totals and its
-- duration to the histogram, keep its summary. Not a record script: it takes no prelude.
--
-- KEYS: [1] the run counter  [2] the last run's summary  [3] the totals and the histogram
-- ARGV: [1] the summary (JSON)  [2] the duration's bucket (its upper bound, or '+Inf')
--       [3] the duration in seconds  then pairs: a total's name, what this run adds to it
-- Returns the number of runs so far.
local runs = redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1])
for i = 4, #ARGV, 2 do redis.call('HINCRBY', KEYS[3], ARGV[i], ARGV[i + 1]) end
redis.call('HINCRBY', KEYS[3], 'le:' .. ARGV[2], 1)
redis.call('HINCRBYFLOAT', KEYS[3], 'seconds', ARGV[3])
return runs
