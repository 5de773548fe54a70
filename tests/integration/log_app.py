"""A server run by tests/integration/test_logging.py: ``fastio.run(..., log_level="info")`` with
servers made before it (``logger=True``), and a route that logs one line through each logger."""
import fastio
from plain_asgi import complete_lifespan

sio = fastio.AsyncServer(logger=True, engineio_logger=True)


async def other(scope, receive, send):
    if scope["type"] == "lifespan":
        await complete_lifespan(receive, send)
        return
    sio.logger.info("marker-socketio")
    sio.eio.logger.info("marker-engineio")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


if __name__ == "__main__":
    fastio.run(sio, "127.0.0.1", 0, app=other, log_level="info")
