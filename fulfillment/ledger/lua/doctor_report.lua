-- doctor_report: keep the last fulfill doctor run's report, replacing the one before (a
-- snapshot for the metrics and the console, not order data). Not a record script: it takes
-- no prelude.
--
-- KEYS: [1] the last report
-- ARGV: [1] the report (JSON)
-- Returns 0.
redis.call('SET', KEYS[1], ARGV[1])
return 0
