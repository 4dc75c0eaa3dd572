"""queuert-redis-notify: the queuert notify adapter for Redis and Valkey (redis-py asyncio)."""

from queuert_redis.notify import RedisNotifyAdapter

__all__ = ["RedisNotifyAdapter"]
