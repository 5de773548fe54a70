"""``fastio.run(..., log_level=...)`` prints each log line once, also for servers made (with
``logger=True``, which gives their loggers a stderr handler) before ``run`` configured logging."""
from __future__ import annotations

import logging
import sys

import httpx
import pytest
from integration_support import HERE, REPO_ROOT, ServerProcess

from fastio.base.util import make_logger


@pytest.mark.timeout(30)
async def test_run_log_level_prints_each_line_once():
    # (PYTHONPATH: the fastio under test, whatever the virtualenv has installed)
    srv = ServerProcess([sys.executable, str(HERE / "log_app.py")], env={"PYTHONPATH": str(REPO_ROOT)})
    try:
        await srv.start()
        assert await srv.wait_ready(), srv.describe()
        async with httpx.AsyncClient(timeout=10) as http:
            r = await http.get(f"http://127.0.0.1:{srv.port}/log")
            assert r.status_code == 200 and r.text == "ok"
        srv.send_signal(2)  # SIGINT: run() returns after a graceful shutdown
        assert await srv.wait() == 0, srv.describe()
    finally:
        await srv.stop()
    err = srv.stderr.decode()
    assert err.count("marker-socketio") == 1, err
    assert err.count("marker-engineio") == 1, err
    # through basicConfig's handler and format, not the fallback handler's bare message
    assert "fastio.socketio INFO marker-socketio" in err, err


def test_fallback_handler_stands_aside_once_logging_is_configured(capsys):
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers.clear()
    name = "fastio.test_fallback_%d" % id(capsys)
    try:
        log = make_logger(name, True)
        log.info("alone")
        assert capsys.readouterr().err == "alone\n"
        collected: list[str] = []

        class Collect(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                collected.append(record.getMessage())

        root.addHandler(Collect())
        log.info("configured")
        assert capsys.readouterr().err == ""
        assert collected == ["configured"]
    finally:
        root.handlers[:] = saved
        logging.getLogger(name).handlers.clear()
