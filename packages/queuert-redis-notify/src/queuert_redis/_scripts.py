"""Lua scripts of the wake-hint budgets. Each touches exactly one key, so they run on Redis Cluster."""

from __future__ import annotations

__all__ = ["CONSUME_WAKE_HINT", "PROVIDE_WAKE_HINT"]

PROVIDE_WAKE_HINT = """
local budget = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return budget
"""
"""KEYS[1] the budget key; ARGV[1] how many wake-ups to add; ARGV[2] the budget's lifetime in ms."""

CONSUME_WAKE_HINT = """
local budget = tonumber(redis.call('GET', KEYS[1]))
if budget == nil then
  return 1
end
if budget > 0 then
  redis.call('DECR', KEYS[1])
  return 1
end
return 0
"""
"""KEYS[1] the budget key. 1: wake up (a unit was taken, or no budget is tracked); 0: budget exhausted."""
