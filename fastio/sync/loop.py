"""An asyncio event loop running in a daemon thread, and blocking calls into it from other threads."""
from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from typing import Any, Callable

from fastio.base.util import new_event_loop, start_eagerly

__all__ = ["LoopThread"]


class LoopThread:
    """A uvloop (or asyncio) event loop served by one daemon thread.

    ``call(factory, *args)`` runs ``factory(*args)`` on the loop (a coroutine is started at once
    and awaited there) and blocks the calling thread until it finishes; calls made from one
    thread run on the loop in the order they were made.

    The thread starts on first use, and again in a child process after ``fork()`` (threads do not
    survive a fork: gunicorn's ``--preload`` builds the application in the master process).
    """

    def __init__(self, name: str = "fastio-loop") -> None:
        self.name = name
        self._lock = threading.Lock()
        self._pid = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.closed = False

    def _ensure(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            if self.closed:
                raise RuntimeError("the server's event loop is closed")
            self._loop = new_event_loop()
            self._thread = threading.Thread(target=self._run, args=(self._loop,), name=self.name, daemon=True)
            self._thread.start()
            self._pid = os.getpid()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop (started on first use)."""
        self._ensure()
        assert self._loop is not None
        return self._loop

    @property
    def thread(self) -> threading.Thread:
        """The thread running the loop (started on first use)."""
        self._ensure()
        assert self._thread is not None
        return self._thread

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            try:
                pending = asyncio.all_tasks(loop)
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    def in_loop_thread(self) -> bool:
        """True when called from the loop's own thread."""
        return self._pid == os.getpid() and threading.current_thread() is self._thread

    def submit(self, factory: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
        """Run ``factory(*args)`` on the loop; the returned future completes with its outcome
        (with a coroutine's result once it finishes)."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def step() -> None:
            try:
                result = start_eagerly(factory(*args))
            except BaseException as exc:  # noqa: B902 - handed to the waiting thread
                future.set_exception(exc)
                return
            if isinstance(result, asyncio.Future):
                def done(task: asyncio.Future[Any]) -> None:
                    if task.cancelled():
                        future.cancel()
                    elif task.exception() is not None:
                        future.set_exception(task.exception())  # type: ignore[arg-type]
                    else:
                        future.set_result(task.result())
                result.add_done_callback(done)
            else:
                future.set_result(result)

        try:
            if self.closed:
                raise RuntimeError
            self.loop.call_soon_threadsafe(step)
        except RuntimeError:
            raise RuntimeError("the server's event loop is closed") from None
        return future

    def call(self, factory: Callable[..., Any], *args: Any, timeout: float | None = None) -> Any:
        """Run ``factory(*args)`` on the loop and wait for its outcome (see ``submit``)."""
        if self.in_loop_thread():
            raise RuntimeError("a blocking call cannot be made from the server's event loop thread")
        return self.submit(factory, *args).result(timeout)

    def is_running(self) -> bool:
        """True once the loop thread started in this process and until ``stop``."""
        return self._pid == os.getpid() and self._loop is not None and not self._loop.is_closed()

    def stop(self) -> None:
        """Stop the loop (pending tasks are cancelled) and wait for its thread to end; the loop
        is not started again."""
        self.closed = True
        loop, thread = self._loop, self._thread
        if self._pid != os.getpid() or loop is None or thread is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(loop.stop)
        except RuntimeError:  # closed meanwhile
            return
        if not self.in_loop_thread():
            thread.join(10)
