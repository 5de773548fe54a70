"""Run the Node interop scripts (tests/interop/node/*.mjs) from asyncio tests.

A script gets its JSON config as argv[2], prints one JSON object per line on
stdout (each with an ``"event"`` key) and reads JSON commands from stdin (each
with a ``"cmd"`` key). :class:`NodeProcess` starts one, collects its events as
they arrive, lets a test await a given event, sends it commands, and always
kills and reaps it at the end -- only the process it started, by its PID.

Node and the npm packages are hard requirements of the interop suite: when
either is missing the tests fail with a message saying what to install,
rather than being skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = Path(__file__).resolve().parent / "node"
NODE_MODULES = REPO_ROOT / "node_modules"

#: npm packages the scripts import; they come from package-lock.json.
REQUIRED_PACKAGES = ("engine.io-client", "socket.io-client")

DEFAULT_TIMEOUT = 10.0

_STDERR_LIMIT = 64 * 1024
#: longest stdout line accepted (a binary message travels base64-encoded)
LINE_LIMIT = 64 * 1024 * 1024


def node_executable() -> str:
    """Return the path of ``node``, failing the test when it is missing."""
    override = os.environ.get("FASTIO_NODE")
    path = shutil.which(override) if override else shutil.which("node")
    if not path:
        pytest.fail(
            "interop tests need Node.js (>= 18) on PATH (or FASTIO_NODE=/path/to/node); "
            "install it, then run `npm ci` in the repository root",
            pytrace=False,
        )
    return path


def check_node_modules() -> None:
    """Fail the test when ``npm ci`` has not been run in the repository root."""
    missing = [p for p in REQUIRED_PACKAGES if not (NODE_MODULES / p / "package.json").is_file()]
    if missing:
        pytest.fail(
            f"interop tests need the npm packages {', '.join(missing)} in {NODE_MODULES}; "
            f"run `npm ci` in {REPO_ROOT}",
            pytrace=False,
        )


def script_path(name: str) -> Path:
    path = NODE_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"no Node interop script {path}")
    return path


async def reap(proc: asyncio.subprocess.Process, grace: float) -> None:
    """Wait up to ``grace`` seconds for ``proc`` to exit, then kill it (by its PID); reaps it."""
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except asyncio.TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


async def run_to_exit(
    argv: list[str],
    timeout: float,
    cwd: str | os.PathLike | None = None,
    env: dict[str, str] | None = None,
) -> tuple[int, bytes, bytes]:
    """Run ``argv`` (in ``cwd``, with the environment ``env`` when given) until it exits; returns
    its exit status, stdout and stderr. A process still running after ``timeout`` seconds is
    killed (by its PID) and reaped, and the timeout raised."""
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=None if cwd is None else str(cwd), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode, out, err


class NodeProcessError(AssertionError):
    """The script failed, exited early, or an awaited event did not come."""


class NodeProcess:
    """One running Node script and the events it printed.

    Every event printed so far is kept in :attr:`events`, in order.
    :meth:`expect` waits for the next matching event after the previous
    :meth:`expect` match (events in between are skipped but stay in
    :attr:`events`), so a series of ``expect`` calls asserts an order.
    """

    def __init__(self, script: str | os.PathLike, config: dict[str, Any], *, name: str | None = None):
        self.script = Path(script) if os.path.isabs(script) else script_path(str(script))
        self.config = dict(config)
        self.name = name or self.script.stem
        self.events: list[dict[str, Any]] = []
        self.returncode: int | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._cursor = 0
        self._changed: asyncio.Condition | None = None
        self._eof = False
        self._stderr = bytearray()
        self._bad_lines: list[str] = []
        self._reader_error: BaseException | None = None
        self._tasks: list[asyncio.Task] = []
        self._command_ids = 0

    # -- lifecycle ---------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    async def start(self) -> "NodeProcess":
        node = node_executable()
        check_node_modules()
        self._changed = asyncio.Condition()
        self._proc = await asyncio.create_subprocess_exec(
            node,
            str(self.script),
            json.dumps(self.config),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=str(REPO_ROOT),
            limit=LINE_LIMIT,
        )
        self._tasks = [
            asyncio.create_task(self._read_stdout(), name=f"{self.name}-stdout"),
            asyncio.create_task(self._read_stderr(), name=f"{self.name}-stderr"),
        ]
        return self

    async def aclose(self) -> None:
        """Stop the script (if still running) and reap it."""
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            if proc.stdin is not None and not proc.stdin.is_closing():
                proc.stdin.close()
            try:
                # a stopped process (see pause()) must run again to die cleanly
                os.kill(proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
            await reap(proc, 0.5)
        elif proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()
        self.returncode = proc.returncode
        for task in self._tasks:
            if not task.done():
                try:
                    await asyncio.wait_for(asyncio.shield(task), 1.0)
                except (asyncio.TimeoutError, Exception):
                    task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def __aenter__(self) -> "NodeProcess":
        return await self.start()

    async def __aexit__(self, *exc_info) -> None:
        await self.aclose()

    # -- reading -----------------------------------------------------------

    async def _read_stdout(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        try:
            while True:
                line = await self._proc.stdout.readline()
                if not line:
                    break
                text = line.decode("utf-8", "replace").strip()
                if not text:
                    continue
                try:
                    event = json.loads(text)
                    if not isinstance(event, dict) or "event" not in event:
                        raise ValueError("not an event object")
                except ValueError:
                    self._bad_lines.append(text)
                    continue
                async with self._changed:
                    self.events.append(event)
                    self._changed.notify_all()
        except Exception as exc:
            self._reader_error = exc
        finally:
            async with self._changed:
                self._eof = True
                self._changed.notify_all()

    async def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        while True:
            chunk = await self._proc.stderr.read(4096)
            if not chunk:
                break
            if len(self._stderr) < _STDERR_LIMIT:
                self._stderr += chunk[: _STDERR_LIMIT - len(self._stderr)]

    @property
    def stderr(self) -> str:
        return self._stderr.decode("utf-8", "replace")

    def describe(self) -> str:
        """A readable dump of everything the script said, for failure messages."""
        lines = [f"node script {self.script.name} (pid {self.pid}), config {json.dumps(self.config)}"]
        rc = self._proc.returncode if self._proc else None
        lines.append(f"exit status: {rc if rc is not None else 'still running'}")
        lines.append("events:")
        lines += [f"  {json.dumps(e)}" for e in self.events] or ["  (none)"]
        if self._reader_error is not None:
            lines.append(f"stdout reader failed: {self._reader_error!r}")
        if self._bad_lines:
            lines.append("non-JSON stdout:")
            lines += [f"  {t}" for t in self._bad_lines]
        if self._stderr:
            lines.append("stderr:")
            lines += [f"  {t}" for t in self.stderr.splitlines()]
        return "\n".join(lines)

    @staticmethod
    def _matches(event: dict[str, Any], name: str | tuple[str, ...], fields: dict[str, Any]) -> bool:
        names = (name,) if isinstance(name, str) else name
        if event.get("event") not in names:
            return False
        return all(event.get(k) == v for k, v in fields.items())

    def seen(self, name: str, **fields: Any) -> list[dict[str, Any]]:
        """All events so far named ``name`` whose fields equal ``fields``."""
        return [e for e in self.events if self._matches(e, name, fields)]

    async def expect(
        self,
        name: str | tuple[str, ...],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        **fields: Any,
    ) -> dict[str, Any]:
        """Wait for the next event called ``name`` (or any of a tuple of
        names) with the given field values, and return it.

        Raises :class:`NodeProcessError` (with the script's whole output) on
        timeout, when the script reports a fatal error, or when it exits
        first. Waiting for ``"fatal"`` or ``"exit"`` themselves is allowed.
        """
        names = (name,) if isinstance(name, str) else tuple(name)

        def next_match() -> dict[str, Any] | None:
            while self._cursor < len(self.events):
                event = self.events[self._cursor]
                self._cursor += 1
                if self._matches(event, names, fields):
                    return event
                if event.get("event") == "fatal" and "fatal" not in names:
                    raise NodeProcessError(f"script failed while waiting for {names} {fields}\n{self.describe()}")
            return None

        return await self._wait_for(next_match, names, fields, timeout)

    async def first(
        self,
        name: str | tuple[str, ...],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        **fields: Any,
    ) -> dict[str, Any]:
        """Like :meth:`expect`, but look at the whole history (the earliest
        match wins, waiting for one if there is none yet) and leave the
        :meth:`expect` position alone."""
        names = (name,) if isinstance(name, str) else tuple(name)

        def earliest_match() -> dict[str, Any] | None:
            return next((event for event in self.events if self._matches(event, names, fields)), None)

        return await self._wait_for(earliest_match, names, fields, timeout)

    async def _wait_for(
        self,
        find: Callable[[], dict[str, Any] | None],
        names: tuple[str, ...],
        fields: dict[str, Any],
        timeout: float,
    ) -> dict[str, Any]:
        """Call ``find`` now and each time the script prints more, until it returns an event.
        Raises :class:`NodeProcessError` (with the script's whole output) when the script ended
        or ``timeout`` passed first; ``names`` and ``fields`` say what was awaited."""
        if self._changed is None:
            raise RuntimeError("start() the process first")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with self._changed:
            while True:
                event = find()
                if event is not None:
                    return event
                if self._eof:
                    raise NodeProcessError(
                        f"script ended before printing {names} {fields}\n{self.describe()}"
                    )
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise NodeProcessError(
                        f"no {names} {fields} within {timeout} s\n{self.describe()}"
                    )
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except asyncio.TimeoutError:
                    pass

    async def wait_exit(self, timeout: float = DEFAULT_TIMEOUT) -> int:
        """Wait until the script exits by itself; return its status."""
        assert self._proc is not None
        try:
            rc = await asyncio.wait_for(self._proc.wait(), timeout)
        except asyncio.TimeoutError:
            raise NodeProcessError(f"script still running after {timeout} s\n{self.describe()}") from None
        # let the readers drain what the script printed last
        for task in self._tasks:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(task), 1.0)
        self.returncode = rc
        return rc

    async def expect_exit(self, code: int = 0, timeout: float = DEFAULT_TIMEOUT) -> None:
        rc = await self.wait_exit(timeout)
        if rc != code:
            raise NodeProcessError(f"script exited with {rc}, expected {code}\n{self.describe()}")

    # -- commands ----------------------------------------------------------

    async def send(self, cmd: str, **fields: Any) -> None:
        """Send the command ``{"cmd": cmd, **fields}`` on the script's stdin."""
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise RuntimeError("start() the process first")
        if proc.returncode is not None or proc.stdin.is_closing():
            raise NodeProcessError(f"cannot send {cmd!r}: the script has exited\n{self.describe()}")
        proc.stdin.write((json.dumps({"cmd": cmd, **fields}) + "\n").encode())
        try:
            await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise NodeProcessError(f"cannot send {cmd!r}: {exc}\n{self.describe()}") from None

    async def command(self, cmd: str, reply: str = "done", **fields: Any) -> dict[str, Any]:
        """Send command ``cmd`` with a fresh ``id`` and return the script's ``reply`` event with
        that id (the scripts answer every numbered command with one)."""
        self._command_ids += 1
        await self.send(cmd, id=self._command_ids, **fields)
        return await self.expect(reply, id=self._command_ids)

    def pause(self) -> None:
        """Freeze the script (SIGSTOP): it stops reading, writing and answering."""
        assert self._proc is not None
        os.kill(self._proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Undo :meth:`pause` (SIGCONT)."""
        assert self._proc is not None
        os.kill(self._proc.pid, signal.SIGCONT)


@contextlib.asynccontextmanager
async def run_node(script: str, config: dict[str, Any], **kwargs: Any) -> AsyncIterator[NodeProcess]:
    """``async with run_node("eio_client.mjs", cfg) as proc: ...``"""
    proc = NodeProcess(script, config, **kwargs)
    try:
        await proc.start()
        yield proc
    finally:
        await proc.aclose()


class NodeProcesses:
    """The Node scripts started for one test: :meth:`aclose` stops (by PID) and reaps them all,
    the last started first."""

    def __init__(self) -> None:
        self.procs: list[NodeProcess] = []

    async def start(self, proc: NodeProcess) -> NodeProcess:
        """Start ``proc`` and keep it to stop later; returns it."""
        self.procs.append(proc)
        await proc.start()
        return proc

    async def aclose(self) -> None:
        for proc in reversed(self.procs):
            await proc.aclose()


class UnorderedNodeProcess(NodeProcess):
    """A NodeProcess whose ``expect`` consumes events in any order: it returns the first
    matching event not returned before, wherever it is in the output (socket.io-client events
    of different sockets, the upgrade and acks interleave freely)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._taken: set[int] = set()

    async def expect(self, name, *, timeout: float = DEFAULT_TIMEOUT, **fields: Any) -> dict[str, Any]:
        names = (name,) if isinstance(name, str) else tuple(name)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for i, event in enumerate(self.events):
                if i not in self._taken and self._matches(event, names, fields):
                    self._taken.add(i)
                    return event
            if "fatal" not in names and self.seen("fatal"):
                raise NodeProcessError(f"script failed while waiting for {names} {fields}\n{self.describe()}")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise NodeProcessError(f"no {names} {fields} within {timeout} s\n{self.describe()}")
            # returns once a matching event was printed after the ones seen so far
            await super().expect(names, timeout=remaining, **fields)
