"""fastio on its native server as one node of a fleet on Redis (the cluster benchmark).

The fleet comes from the environment (bench/cluster_bench.py sets it):
``FASTIO_BENCH_REDIS`` (the Redis URL), ``FASTIO_BENCH_KEY`` (the channel prefix / key) and
``FASTIO_BENCH_MANAGER``: ``node-redis`` (``AsyncNodeRedisManager``, the protocol of Node's
``@socket.io/redis-adapter``) or ``redis`` (``AsyncRedisManager``, python-socketio's).
Same ``echo`` and ``broadcast`` handlers as fastio_native.py.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import fastio  # noqa: E402

from _common import add_bench_handlers, announce_when_listening, parse_args  # noqa: E402

URL = os.environ.get("FASTIO_BENCH_REDIS", "redis://127.0.0.1:6379/0")
KEY = os.environ.get("FASTIO_BENCH_KEY", "socket.io")
MANAGER = os.environ.get("FASTIO_BENCH_MANAGER", "node-redis")

if MANAGER == "node-redis":
    mgr: fastio.AsyncManager = fastio.AsyncNodeRedisManager(URL, key=KEY)
elif MANAGER == "redis":
    mgr = fastio.AsyncRedisManager(URL, channel=KEY)
else:
    raise SystemExit("FASTIO_BENCH_MANAGER must be node-redis or redis, not %r" % MANAGER)
sio = fastio.AsyncServer(client_manager=mgr, cors_allowed_origins="*")

add_bench_handlers(sio)


if __name__ == "__main__":
    a = parse_args(__doc__)
    announce_when_listening("fastio_cluster_" + MANAGER, a.host, a.port)
    fastio.run(sio, a.host, a.port)
