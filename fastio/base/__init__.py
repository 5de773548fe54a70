"""The base layer: helpers every layer above may use (logging, eager handler starts, handler plumbing).

Imports only the standard library and ``fastio.exceptions``.
"""
