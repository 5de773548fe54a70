"""How ``AsyncServer.attach(app)`` reaches the integration for a web framework.

The integrations live in the hosting layer, above the servers; each registers an attacher here
when ``fastio`` is imported, so the Engine.IO and Socket.IO servers find it without importing
upward. The ASGI application classes are registered here the same way, so that
``fastio.engineio.ASGIApp`` (the Engine.IO layer's name for the hosting layer's class) resolves
without an upward import. Importing any ``fastio`` submodule imports ``fastio`` first, so the
registrations are made before anyone can look them up.
"""
from __future__ import annotations

from typing import Any, Callable

__all__ = ["Attacher", "register_attacher", "attach", "register_asgi_app", "asgi_app"]

#: ``attacher(engine, app, path)`` routes ``/<path>/`` of ``app`` to ``engine`` and returns True,
#: or returns False when ``app`` is not of its framework.
Attacher = Callable[[Any, Any, str], bool]

_attachers: list[Attacher] = []


def register_attacher(attacher: Attacher) -> None:
    """Make ``attacher`` one of those ``attach`` tries, in registration order."""
    if attacher not in _attachers:
        _attachers.append(attacher)


def attach(engine: Any, app: Any, path: str) -> None:
    """Route ``/<path>/`` of the web application ``app`` to the Engine.IO server ``engine``."""
    for attacher in _attachers:
        if attacher(engine, app, path):
            return
    raise TypeError("fastio cannot attach to %r: attach() takes an aiohttp web.Application; "
                    "use fastio.ASGIApp for ASGI frameworks" % (app,))


_asgi_apps: dict[str, type] = {}


def register_asgi_app(kind: str, cls: type) -> None:
    """Register the ASGI application class for ``kind`` (``"engineio"``)."""
    _asgi_apps[kind] = cls


def asgi_app(kind: str) -> type:
    """The ASGI application class registered for ``kind``."""
    try:
        return _asgi_apps[kind]
    except KeyError:
        raise AttributeError("no ASGI application registered for %r: import fastio" % kind) from None
