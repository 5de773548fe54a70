"""Throughput of AsyncNodeRedisManager against the Redis at 127.0.0.1:6379 (not a test).

    python tests/interop/bench_node_redis_fleet.py [sharded]

Publishing: sio.emit and awaited operator emits to a room with no member here, timed until a
Redis subscriber has seen them all.  Receiving (classic mode only): room broadcasts published by a
raw Redis client, to a room with one member here (decode + fan-out) and to a room with no member
here (dropped before decoding).
"""
import asyncio, secrets, time, sys
import msgpack, redis.asyncio as aioredis
import socketio as pysio
import fastio

URL = "redis://127.0.0.1:6379/0"
N = 20000

async def main():
    key = "bench-" + secrets.token_hex(4)
    mgr = fastio.AsyncNodeRedisManager(URL, key=key, sharded="sharded" in sys.argv)
    sio = fastio.AsyncServer(client_manager=mgr)

    @sio.event
    async def connect(sid, environ, auth):
        await sio.enter_room(sid, "r")
    srv = await fastio.serve(sio, "127.0.0.1", 0)
    await mgr.ready("/")
    got = asyncio.Event(); count = [0]
    c = pysio.AsyncClient(reconnection=False)
    def on(*a):
        count[0] += 1
        if count[0] == N: got.set()
    c.on("e", on)
    await c.connect(srv.url, transports=["websocket"])
    # a subscriber counting what fastio publishes
    sub = aioredis.Redis.from_url(URL); ps = sub.pubsub(); await (ps.ssubscribe(f"{key}#/#", f"{key}#/#elsewhere#") if "sharded" in sys.argv else ps.psubscribe(f"{key}#/#*"))
    await ps.get_message(timeout=5)
    async def drain(n):
        k = 0
        while k < n:
            m = await ps.get_message(timeout=5)
            if m and m["type"] in ("pmessage", "smessage"): k += 1
    # 1. sio.emit (queued, pipelined) to a room with no local member
    d = asyncio.ensure_future(drain(N)); t = time.perf_counter()
    for i in range(N):
        await sio.emit("e", i, to="elsewhere")
    await d; dt = time.perf_counter() - t
    print(f"publish: sio.emit to a remote room, {N} msgs: {N/dt:,.0f} msg/s (until all seen by a Redis subscriber)")
    # 2. operator emit awaited one by one (each waits for Redis)
    n2 = N // 4
    d = asyncio.ensure_future(drain(n2)); t = time.perf_counter()
    for i in range(n2):
        await sio.to("elsewhere").emit("e", i)
    await d; dt = time.perf_counter() - t
    print(f"publish: await sio.to(room).emit one at a time, {n2} msgs: {n2/dt:,.0f} msg/s")
    if "sharded" in sys.argv:
        await c.disconnect(); await srv.close(); await mgr.aclose(); await ps.aclose(); await sub.aclose()
        return
    # 3. receive: raw publisher, room channel with a local member (decode + fan-out to 1 client)
    pub = aioredis.Redis.from_url(URL)
    body = msgpack.packb(["other", {"type": 2, "data": ["e", 1], "nsp": "/"}, {"rooms": ["r"], "except": [], "flags": {}}])
    t = time.perf_counter()
    p = pub.pipeline(transaction=False)
    for i in range(N): p.publish(f"{key}#/#r#", body)
    await p.execute()
    await asyncio.wait_for(got.wait(), 60); dt = time.perf_counter() - t
    print(f"receive: {N} room broadcasts from Redis delivered to 1 client: {N/dt:,.0f} msg/s")
    # 4. dropped before decoding: room with no member here; time until a marker behind them arrives
    got.clear(); count[0] = N - 1
    t = time.perf_counter()
    p = pub.pipeline(transaction=False)
    for i in range(N): p.publish(f"{key}#/#nobody#", body)
    p.publish(f"{key}#/#r#", body)
    await p.execute()
    await asyncio.wait_for(got.wait(), 60); dt = time.perf_counter() - t
    print(f"receive: {N} broadcasts for a room with no member here (dropped undecoded): {N/dt:,.0f} msg/s")
    await c.disconnect(); await srv.close(); await mgr.aclose(); await pub.aclose(); await ps.aclose(); await sub.aclose()

asyncio.run(main())
