"""Django's Redis cache, keeping one Redis client per connection pool; and its best-effort
variant, which serves without Redis when Redis does not answer.

Django's `RedisCacheClient.get_client()` builds a new `redis.Redis` on every cache call, and
redis-py's constructor fills a table of ~170 response callbacks each time: measured on the stock
ledger's hot path (one availability-version bump per reservation), that was ~0.1 ms of CPU per
call, a quarter of the reservation's Python time. A `redis.Redis` is safe to share (every command
takes a connection from the pool), so one per pool does the same work without the rebuild.
"""

import logging
import time

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient
from redis import exceptions as redis_exceptions

logger = logging.getLogger(__name__)


class _ReusingClient(RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        # The index is drawn once: reads pick a replica at random, and the client kept under
        # an index must be bound to that index's pool.
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            if index not in self._pools:
                self._pools[index] = self._pool_class.from_url(
                    self._servers[index], **self._pool_options
                )
            client = self._client(connection_pool=self._pools[index])
            self._clients[index] = client
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = _ReusingClient


# What a Redis that does not answer raises through Django's cache (redis-py's own errors, and
# the OSError of a refused connection).
REDIS_DOWN = (redis_exceptions.ConnectionError, redis_exceptions.TimeoutError, OSError)
_last_warned = [0.0]


def _warn_degraded(operation: str, exc: Exception) -> None:
    now = time.monotonic()
    if now - _last_warned[0] > 10:  # once per 10 s per process, not once per request
        _last_warned[0] = now
        logger.warning("Shared cache unreachable (%s: %s): serving without it", operation, exc)


class BestEffortRedisCache(RedisCache):
    """The shared cache for what can be recomputed (availability answers and their versions,
    reference-data versions, API-key last-used markers). When Redis does not answer, reads miss
    and writes are dropped, so requests are served from the database instead of failing; what
    must not fail open (the pickup-code lockout, rate limits) uses the strict `counters` cache.
    """

    def get(self, key, default=None, version=None):
        try:
            return super().get(key, default, version)
        except REDIS_DOWN as exc:
            _warn_degraded("get", exc)
            return default

    def get_many(self, keys, version=None):
        try:
            return super().get_many(keys, version)
        except REDIS_DOWN as exc:
            _warn_degraded("get_many", exc)
            return {}

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        try:
            return super().set(key, value, timeout, version)
        except REDIS_DOWN as exc:
            _warn_degraded("set", exc)

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        try:
            return super().set_many(data, timeout, version)
        except REDIS_DOWN as exc:
            _warn_degraded("set_many", exc)
            return list(data)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        try:
            return super().add(key, value, timeout, version)
        except REDIS_DOWN as exc:
            _warn_degraded("add", exc)
            return False

    def incr(self, key, delta=1, version=None):
        try:
            return super().incr(key, delta, version)
        except REDIS_DOWN as exc:
            _warn_degraded("incr", exc)
            return None

    def delete(self, key, version=None):
        try:
            return super().delete(key, version)
        except REDIS_DOWN as exc:
            _warn_degraded("delete", exc)
            return False
