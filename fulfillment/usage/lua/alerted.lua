-- alerted: note that the overdue alert of a period went out (once per period and scope).
-- KEYS[1]  the marker                       ff:usage:alerted:<period>:<scope>
-- ARGV[1]  seconds to keep it
-- Returns 1 the first time, 0 after.
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return 1
end
return 0
