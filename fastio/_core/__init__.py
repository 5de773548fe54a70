"""fastio's compiled core: framing, codecs, rooms and the connection protocol.

Every module here is a Cython extension; there is no pure-Python fallback.
"""
