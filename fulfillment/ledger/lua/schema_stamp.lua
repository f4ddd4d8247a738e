-- schema_stamp: stamp the ledger's schema version, if it is still what the caller read and
-- the caller still holds the migration lock. Not a record script: it takes no prelude.
--
-- KEYS: [1] the schema stamp (hash)  [2] the migration's progress (hash)  [3] the migration lock
-- ARGV: [1] the version the caller read ('' = no stamp)  [2] the version to stamp
--       [3] the release that stamps  [4] now  [5] what the data was before: 'empty',
--       'unversioned' or a version  [6] the caller's lock token
-- Returns {'stamped', version}; {'moved', the version found ('' = none)} when another process
-- stamped first; {'lost', ''} when the caller no longer holds the lock. Only 'stamped' writes:
-- the stamp, and the end of the migration's progress.
if redis.call('GET', KEYS[3]) ~= ARGV[6] then return {'lost', ''} end
local found = redis.call('HGET', KEYS[1], 'version') or ''
if found ~= ARGV[1] then return {'moved', found} end
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'release', ARGV[3], 'at', ARGV[4],
  'from', ARGV[5])
redis.call('DEL', KEYS[2])
return {'stamped', ARGV[2]}
