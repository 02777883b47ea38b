"""The Redis broker transport: kombu's own, publishing through one client per channel.

kombu builds a new redis-py client for every message it publishes (copying its response
callbacks each time), which costs more than the LPUSH itself, on every webhook that
queues a reply. A client is only a front for the channel's connection pool and is safe to
share between threads, so the channel keeps one per pool. Selected for `redis://` brokers
in config/settings/base.py.
"""

from kombu.transport import redis


class Channel(redis.Channel):
    _shared_client = None

    def _create_client(self, asynchronous=False):
        if asynchronous:  # the consumer's own client (BRPOP), created once per channel anyway
            return super()._create_client(asynchronous=True)
        pool = self.pool
        client = self._shared_client
        if client is None or client.connection_pool is not pool:
            client = self._shared_client = super()._create_client()
        return client


class Transport(redis.Transport):
    Channel = Channel
