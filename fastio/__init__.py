"""fastio: a fast Socket.IO v5 / Engine.IO v4 server for Python.

A drop-in for python-socketio's asyncio server: ``import fastio as socketio``.
"""
from fastio._version import __version__
from fastio.native import run, serve, Server

__all__ = ["__version__", "run", "serve", "Server"]
