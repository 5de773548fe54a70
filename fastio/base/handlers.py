"""Handler registration and dispatch, shared by the servers and the clients.

Handlers are plain callables kept in public dictionaries (python-socketio's ``handlers`` and
``namespace_handlers``).  What this module adds:

- the number of positional arguments a handler accepts, measured once with
  :func:`inspect.signature` (functions, bound methods, ``functools.partial``, objects with
  ``__call__``, ``*args``) and remembered, so a handler written for an older form of an event
  (``disconnect(sid)`` without the reason, ``connect(sid, environ)`` without ``auth``) is called
  with the arguments it takes.  Nothing is ever called twice: a ``TypeError`` raised inside a
  handler is the handler's own error.
- python-socketio's lookup order: the namespace's handler for the event, the namespace's ``'*'``
  catch-all (given the event name first), the ``'*'`` namespace's handler (given the namespace
  first), the ``'*'`` namespace's catch-all, then a class-based namespace object.
"""
from __future__ import annotations

import inspect
import weakref
from typing import Any, Callable

__all__ = ["positional_capacity", "fit_args", "registrar", "HandlerRegistry", "trigger_method",
           "SERVER_OPTIONAL_ARGS", "CLIENT_OPTIONAL_ARGS"]

#: A server's ``connect(sid, environ[, auth])`` and ``disconnect(sid[, reason])``.
SERVER_OPTIONAL_ARGS: dict[str, int] = {"connect": 1, "disconnect": 1}
#: A client's ``disconnect([reason])``.
CLIENT_OPTIONAL_ARGS: dict[str, int] = {"disconnect": 1}

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_PASS_THROUGH = frozenset([inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD])

_capacities: "weakref.WeakKeyDictionary[Any, int | None]" = weakref.WeakKeyDictionary()


def _measure(handler: Any) -> int | None:
    try:
        # The wrapper's own signature (what gets called: Flask-SocketIO's handlers are
        # ``_handler(sid, *args)`` around ``on_connect(auth)``), unless it is a plain
        # ``(*args, **kwargs)`` pass-through, whose calls reach the function it wraps.
        signature = inspect.signature(handler, follow_wrapped=False)
        kinds = {p.kind for p in signature.parameters.values()}
        if kinds and kinds <= _PASS_THROUGH and hasattr(handler, "__wrapped__"):
            signature = inspect.signature(handler)
    except (TypeError, ValueError):  # no signature (some builtins): pass every argument
        return None
    count = 0
    for parameter in signature.parameters.values():
        if parameter.kind in _POSITIONAL:
            count += 1
        elif parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            return None
    return count


def _measure_cached(key: Any) -> int | None:
    try:
        if key in _capacities:
            return _capacities[key]
    except TypeError:  # neither hashable nor weakly referenceable: measured each time
        return _measure(key)
    capacity = _measure(key)
    try:
        _capacities[key] = capacity
    except TypeError:  # no weak references to it (__slots__ without __weakref__)
        pass
    return capacity


def positional_capacity(handler: Callable[..., Any]) -> int | None:
    """The most positional arguments ``handler`` accepts; None when it takes any number.

    Measured once per function: a bound method is measured through its function (so the
    ``on_<event>`` methods of a namespace object cost one measure per class, not per call)."""
    func = getattr(handler, "__func__", None)
    if func is not None and getattr(handler, "__self__", None) is not None:
        whole = _measure_cached(func)
        return None if whole is None else max(whole - 1, 0)
    return _measure_cached(handler)


def fit_args(handler: Callable[..., Any], args: tuple[Any, ...], optional: int = 0) -> tuple[Any, ...]:
    """``args`` without those of its last ``optional`` ones that ``handler`` does not accept.

    Only trailing optional arguments are ever dropped (``reason`` of ``disconnect``, ``auth`` of
    ``connect``); a handler that accepts fewer than the required ones gets them all and raises
    its own ``TypeError``."""
    if not optional:
        return args
    capacity = positional_capacity(handler)
    if capacity is None or len(args) <= capacity:
        return args
    return args[:max(capacity, len(args) - optional)]


def registrar(store: Callable[[Callable[..., Any]], None],
              handler: Callable[..., Any] | None) -> Any:
    """python-socketio's ``on()`` shape: with ``handler``, ``store`` it and return None;
    without, return a decorator that stores the function it decorates and returns it."""

    def set_handler(h: Callable[..., Any]) -> Callable[..., Any]:
        positional_capacity(h)  # measured now, at registration, not on the first event
        store(h)
        return h

    if handler is None:
        return set_handler
    set_handler(handler)
    return None


class HandlerRegistry:
    """``on``/``event`` and the handler lookup of a Socket.IO server or client.

    Subclasses set ``reserved_events`` (events a ``'*'`` catch-all never receives) and
    ``optional_args`` (event -> how many trailing arguments a handler may leave out), and call
    :meth:`init_handlers` from ``__init__``.
    """

    reserved_events: list[str] = []
    optional_args: dict[str, int] = {}
    handlers: dict[str, dict[str, Callable[..., Any]]]
    namespace_handlers: dict[str, Any]

    def init_handlers(self) -> None:
        """Create the empty ``handlers`` and ``namespace_handlers`` dictionaries."""
        self.handlers = {}
        self.namespace_handlers = {}

    def on(self, event: str, handler: Callable[..., Any] | None = None, namespace: str | None = None) -> Any:
        """Register ``handler`` for ``event`` (``'*'`` for any event) in ``namespace`` (``'*'``
        for any namespace); without ``handler`` this is a decorator."""
        namespace = namespace or "/"

        def store(h: Callable[..., Any]) -> None:
            self.handlers.setdefault(namespace, {})[event] = h

        return registrar(store, handler)

    def event(self, *args: Any, **kwargs: Any) -> Any:
        """Decorator registering a handler named after the function: ``@sio.event`` or
        ``@sio.event(namespace='/chat')``."""
        if len(args) == 1 and not kwargs and callable(args[0]):
            return self.on(args[0].__name__)(args[0])

        def decorator(h: Callable[..., Any]) -> Callable[..., Any]:
            return self.on(h.__name__, *args, **kwargs)(h)

        return decorator

    def find_handler(self, event: str, namespace: str,
                     args: tuple[Any, ...]) -> tuple[Callable[..., Any] | None, tuple[Any, ...]]:
        """The handler of ``event`` in ``namespace`` and the arguments to call it with.

        Catch-alls get the event name and/or the namespace first, as in python-socketio; a
        class-based namespace object is returned as its ``trigger_event``.  The arguments are
        already fitted to the handler (see :func:`fit_args`)."""
        handlers = self.handlers
        reserved = event in self.reserved_events
        handler = None
        in_ns = handlers.get(namespace)
        if in_ns is not None:
            handler = in_ns.get(event)
            if handler is None and not reserved:
                handler = in_ns.get("*")
                if handler is not None:
                    args = (event, *args)
        if handler is None:
            any_ns = handlers.get("*")
            if any_ns is not None:
                handler = any_ns.get(event)
                if handler is not None:
                    args = (namespace, *args)
                elif not reserved:
                    handler = any_ns.get("*")
                    if handler is not None:
                        args = (event, namespace, *args)
        if handler is not None:
            return handler, fit_args(handler, args, self.optional_args.get(event, 0))
        ns_object = self.namespace_handlers.get(namespace)
        if ns_object is not None:
            return ns_object.trigger_event, (event, *args)
        ns_object = self.namespace_handlers.get("*")
        if ns_object is not None:
            return ns_object.trigger_event, (event, namespace, *args)
        return None, args


def trigger_method(owner: Any, event: str, args: tuple[Any, ...], optional_args: dict[str, int],
                   missing: Any = None) -> Any:
    """Call ``owner.on_<event>(*args)`` (arguments fitted); ``missing`` when it has no such method.

    The ``trigger_event`` of every class-based namespace."""
    handler = getattr(owner, "on_" + (event or ""), None)
    if handler is None:
        return missing
    return handler(*fit_args(handler, args, optional_args.get(event, 0)))

