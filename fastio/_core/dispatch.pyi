"""The compiled hop from an Engine.IO message to a Socket.IO event handler.

``CompiledEvents`` is the Socket.IO server's message sink: a session hands it each message with
a C call; it decodes the packet and, for a plain text event to a registered handler, builds the
handler's arguments, calls it and starts its coroutine without a Python frame of its own.  Any
other message (binary, another packet type, hooks or Admin UI active, INFO logging on, no
handler, a parse error) goes to the Python methods it was given, which do what the server
always did.

``start_coroutine`` runs a coroutine up to its first suspension in a copy of the current
context, without making a StopIteration: its value when it finished, else the Task that the
continuation set with ``set_continuation`` returns.
"""
from typing import Any, Callable, Coroutine

from fastio._core.conn import Conn

def set_continuation(fn: Callable[[Coroutine[Any, Any, Any], Any, Any], Any]) -> None:
    """Set what continues a coroutine that suspended in ``start_coroutine``:
    ``fn(coro, yielded, context)`` returns the Task that finishes it."""

def start_coroutine(coro: Any) -> Any:
    """Run ``coro`` (a coroutine; anything else is returned as is) up to its first suspension
    in a copy of the current context: its return value, or the continuation's Task."""

class CompiledEvents:
    """The Socket.IO server's message sink (``engine.message_sink``)."""
    def __init__(self, server: Any, handlers: dict[str, dict[str, Callable[..., Any]]],
                 reserved: Any, hooks: set[Any], start: Callable[[Any], Any],
                 encoder: Callable[..., Any],
                 python_sink: Callable[[Conn, bytes, bool], Any],
                 dispatch_packet: Callable[[Any, Any], Any], handle_event: Callable[[Any, Any], Any],
                 parse_error: Callable[[Conn, ValueError], Any], partial: Callable[[Conn], Any],
                 send_ack: Callable[[Conn, str, int, Any], Any],
                 after_task: Callable[[Any, str, Any, Any], Any],
                 handler_error: Callable[[str], Any]) -> None:
        """``server``: its ``admin`` and ``logger`` are read per event; ``handlers`` (namespace ->
        event -> handler), ``reserved`` (event names clients may not fire) and ``hooks``
        (namespaces with event middlewares or catch-all listeners) are the server's own,
        shared; ``encoder`` is the server's packet encoder (with the built-in one,
        acknowledgements are encoded and queued here); the other callables are the server's
        Python steps for everything else."""
    def __call__(self, conn: Conn, data: bytes, binary: bool) -> None:
        """Handle one Engine.IO message of ``conn`` (as the sink of a Python caller)."""
