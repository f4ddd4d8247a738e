"""Test helpers: real processes (redis-server, sandbox, receiver, worker, beat) on loopback."""
