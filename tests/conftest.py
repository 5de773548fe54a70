"""Which event loops the async tests run on.

fastio serves on uvloop (``fastio.run``, the sync client) but also has to work on asyncio's own
loop (under uvicorn with ``loop="asyncio"``, aiohttp, Windows, or anywhere an application picks
it).  So the async tests of the suites listed in ``BOTH_LOOPS`` run twice, once per loop, with
the loop in the test id: ``test_x[uvloop]``, ``test_x[asyncio]``.

This uses pytest-asyncio's ``pytest_asyncio_loop_factories`` hook (pytest-asyncio >= 1.5; the
older ``event_loop_policy`` fixture override is deprecated there, and event loop policies are
deprecated in Python 3.14).  A test that can genuinely run on only one loop says so, with the
reason in a comment, by naming its loop::

    @pytest.mark.asyncio(loop_factories=["uvloop"])

Suites and the time they cost (a 2-core machine, full ``pytest -q``): the functional, client and
integration suites run on both loops. The unit tests do not use pytest-asyncio at all (they also
run against built wheels, where it is not installed); the ones that need a loop drive uvloop and
asyncio's loop themselves (tests/unit/test_engine_requests.py). The interop suite (Node's engine.io and
socket.io clients against the server) and the benchmark smoke test stay on one loop, asyncio's:
they drive Node processes and mostly measure the same server paths the functional and client
suites already run on both loops, so doubling them would add minutes for little.
"""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Callable

import pytest

TESTS = Path(__file__).resolve().parent

# Top-level directories of tests/ whose async tests run on every loop in LOOPS.
BOTH_LOOPS = frozenset({"functional", "client", "integration"})


def _loops() -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    loops: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {}
    if sys.platform != "win32":  # uvloop has no Windows build (see pyproject's dependency marker)
        import uvloop

        loops["uvloop"] = uvloop.new_event_loop
    loops["asyncio"] = asyncio.new_event_loop
    return loops


LOOPS = _loops()


# optionalhook: the hook is pytest-asyncio's, and the unit tests also run where it is not installed.
@pytest.hookimpl(optionalhook=True)
def pytest_asyncio_loop_factories(config, item):
    """The loops ``item`` (an async test) runs on: every loop for the suites in BOTH_LOOPS,
    asyncio's alone elsewhere."""
    try:
        suite = Path(str(item.path)).resolve().relative_to(TESTS).parts[0]
    except (ValueError, IndexError):
        suite = ""
    if suite in BOTH_LOOPS:
        return LOOPS
    return {"asyncio": LOOPS["asyncio"]}


def pytest_configure(config):
    # An older pytest-asyncio has no such hook and would quietly run everything on one loop.
    if config.pluginmanager.has_plugin("asyncio"):
        caller = getattr(config.hook, "pytest_asyncio_loop_factories", None)
        if caller is None or getattr(caller, "spec", None) is None:
            raise pytest.UsageError(
                "the async tests run on uvloop and asyncio's loop through pytest-asyncio's "
                "pytest_asyncio_loop_factories hook: install pytest-asyncio >= 1.5")
