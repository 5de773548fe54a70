"""An asyncio event loop running in a daemon thread, and blocking calls into it from other threads."""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any, Callable

from fastio.base.util import new_event_loop, start_eagerly

__all__ = ["LoopThread"]


class LoopThread:
    """A uvloop (or asyncio) event loop served by one daemon thread.

    ``call(factory, *args)`` runs ``factory(*args)`` on the loop (a coroutine is started at once
    and awaited there) and blocks the calling thread until it finishes; calls made from one
    thread run on the loop in the order they were made.
    """

    def __init__(self, name: str = "fastio-loop") -> None:
        self.loop = new_event_loop()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            try:
                pending = asyncio.all_tasks(self.loop)
                for task in pending:
                    task.cancel()
                if pending:
                    self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            finally:
                self.loop.close()

    def in_loop_thread(self) -> bool:
        """True when called from the loop's own thread."""
        return threading.current_thread() is self.thread

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
            self.loop.call_soon_threadsafe(step)
        except RuntimeError:
            raise RuntimeError("the server's event loop is closed") from None
        return future

    def call(self, factory: Callable[..., Any], *args: Any, timeout: float | None = None) -> Any:
        """Run ``factory(*args)`` on the loop and wait for its outcome (see ``submit``)."""
        if self.in_loop_thread():
            raise RuntimeError("a blocking call cannot be made from the server's event loop thread")
        return self.submit(factory, *args).result(timeout)

    def stop(self) -> None:
        """Stop the loop (pending tasks are cancelled) and wait for its thread to end."""
        if not self.loop.is_closed():
            try:
                self.loop.call_soon_threadsafe(self.loop.stop)
            except RuntimeError:  # closed meanwhile
                return
            if not self.in_loop_thread():
                self.thread.join(10)
