"""Small helpers shared by the Python layers: eager handler calls, background tasks kept alive,
event loops, session context managers and logging set-up."""
from __future__ import annotations

import asyncio
import contextvars
import logging
import sys
import types
from typing import Any, Awaitable, Callable

from fastio._core.dispatch import set_continuation, start_coroutine

_Coroutine = types.CoroutineType
_Task = asyncio.Task

_tasks: set[asyncio.Task[Any]] = set()


def keep(task: asyncio.Task[Any]) -> asyncio.Task[Any]:
    """Hold a reference to ``task`` until it ends (the loop keeps only weak ones); returns it."""
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return task


async def cancel_and_wait(task: "asyncio.Future[Any]") -> None:
    """Cancel ``task`` and wait until it has ended; its cancellation or failure is not raised."""
    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, Exception):
        pass


def cancel_timers(timers: "set[asyncio.TimerHandle]") -> None:
    """Cancel every timer in ``timers`` and empty the set."""
    for timer in timers:
        timer.cancel()
    timers.clear()


async def close_after_loss(conn: Any, backoff: float) -> float:
    """After a lost backend connection: close ``conn`` (its errors are moot), wait ``backoff``
    seconds and return the next wait (doubled, at most 5 s)."""
    try:
        await conn.aclose()
    except Exception:
        pass
    await asyncio.sleep(backoff)
    return min(backoff * 2, 5.0)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new uvloop event loop, or the standard library's where uvloop is missing (Windows)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency where available
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()  # type: ignore[no-any-return]


class SessionContext:
    """``async with server.session(sid) as session:``: the session dict, saved on exit.

    ``load()`` returns the session (awaitable); ``save(session)`` stores it (awaitable)."""

    def __init__(self, load: Callable[[], Awaitable[dict[str, Any]]],
                 save: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        self.load = load
        self.save = save
        self.session: dict[str, Any] = {}

    async def __aenter__(self) -> dict[str, Any]:
        self.session = await self.load()
        return self.session

    async def __aexit__(self, *exc: Any) -> None:
        await self.save(self.session)


async def _drive(coro: Any, yielded: Any) -> Any:
    """Continue a coroutine that was started eagerly and suspended on ``yielded``."""
    while True:
        if yielded is None:
            await asyncio.sleep(0)
        else:
            yielded._asyncio_future_blocking = False
            try:
                await yielded
            except BaseException:
                # The coroutine itself sees the outcome when it resumes (Future.result()).
                pass
        try:
            yielded = coro.send(None)
        except StopIteration as stop:
            return stop.value


def _continue_driven(coro: Any, yielded: Any, ctx: contextvars.Context) -> asyncio.Task[Any]:
    """The task that finishes a coroutine the compiled ``start_coroutine`` started and that
    suspended on ``yielded``; it runs in the coroutine's own context ``ctx``."""
    return keep(ctx.run(asyncio.get_running_loop().create_task, _drive(coro, yielded)))


def _start_eagerly_task(result: Any) -> Any:
    if type(result) is not _Coroutine and not isinstance(result, _Coroutine):
        return result
    task = _Task(result, loop=asyncio.get_running_loop(), eager_start=True)  # type: ignore[call-arg]
    if task.done():
        return task.result()
    return keep(task)


if sys.version_info >= (3, 12):
    # An eagerly started Task: the handler runs at once, inside a real task, so everything
    # that needs the current task (asyncio.timeout, wait_for, TaskGroup) works from its
    # first line; a handler that finishes without suspending is never scheduled.
    start_eagerly = _start_eagerly_task
else:
    # Before 3.12 there is no eager Task: the coroutine is driven by hand up to its first
    # suspension, then continued by a task. Before that first suspension there is no
    # current task (asyncio.timeout() and TaskGroup need one; asyncio.wait_for does not).
    # The compiled start_coroutine drives it (no Python frame or StopIteration per call) and
    # hands a suspended one to _continue_driven.
    set_continuation(_continue_driven)
    start_eagerly = start_coroutine

start_eagerly.__doc__ = """Run a handler's coroutine up to its first suspension, synchronously.

Returns the coroutine's value when it finished without suspending (nothing is scheduled, which
is the common case for handlers that only emit), else a Task that finishes it. A
non-coroutine ``result`` is returned as is.
"""


def then(result: Any, callback: Callable[[Any], Any], on_error: Callable[[BaseException], Any]) -> None:
    """Call ``callback(value)`` with the outcome of ``start_eagerly``: now, or when its task ends."""
    if isinstance(result, _Task):
        def done(task: asyncio.Task[Any]) -> None:
            if task.cancelled():
                return
            exc = task.exception()
            if exc is not None:
                on_error(exc)
            else:
                callback(task.result())
        result.add_done_callback(done)
    else:
        callback(result)


class AsyncioHelpers:
    """python-engineio's async helper methods, on asyncio (shared by server and client)."""

    def start_background_task(self, target: Callable[..., Any], *args: Any, **kwargs: Any) -> "asyncio.Task[Any]":
        """Run ``target(*args, **kwargs)`` as an asyncio task."""
        return asyncio.ensure_future(target(*args, **kwargs))

    async def sleep(self, seconds: float = 0) -> None:
        """asyncio.sleep."""
        await asyncio.sleep(seconds)

    def create_queue(self, *args: Any, **kwargs: Any) -> "asyncio.Queue[Any]":
        """An asyncio.Queue."""
        return asyncio.Queue(*args, **kwargs)

    def get_queue_empty_exception(self) -> type[Exception]:
        """asyncio.QueueEmpty."""
        return asyncio.QueueEmpty

    def create_event(self, *args: Any, **kwargs: Any) -> asyncio.Event:
        """An asyncio.Event."""
        return asyncio.Event(*args, **kwargs)


class _FallbackHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The stderr handler ``make_logger`` gives a logger when logging is not configured yet.

    It stands aside once a handler further up takes the logger's records (say
    ``logging.basicConfig`` ran after the server was made, as ``fastio.run(log_level=...)``
    does), so that each record is printed once.
    """

    def __init__(self, owner: logging.Logger) -> None:
        super().__init__()
        self.owner = owner

    def handle(self, record: logging.LogRecord) -> Any:
        log: logging.Logger | None = self.owner
        while log is not None and log.propagate:
            log = log.parent
            if log is not None and log.handlers:
                return False
        return super().handle(record)


def make_logger(name: str, logger: Any) -> logging.Logger:
    """python-socketio's ``logger=`` semantics: a Logger object, True (INFO) or False (ERROR).

    When logging is not configured, the logger gets a stderr handler of its own, which stays
    silent once logging is configured later (each record is printed once).
    """
    if not isinstance(logger, bool):
        return logger
    log = logging.getLogger(name)
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO if logger else logging.ERROR)
        if not log.handlers and not logging.getLogger().handlers:
            log.addHandler(_FallbackHandler(log))
    return log
