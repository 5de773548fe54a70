"""The single source of fastio's version."""

__version__ = "0.1.0"
