"""Build the compiled core (fastio/_core/*.pyx) with Cython.

Environment knobs:
  FASTIO_DEBUG=1   bounds/wraparound checks on, -O0 -g (a debug build)
  FASTIO_TRACE=1   Cython line tracing, for coverage of the .pyx sources
"""
import glob
import os
import sys

from setuptools import Extension, setup


def _flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes", "on")


DEBUG = _flag("FASTIO_DEBUG")
TRACE = _flag("FASTIO_TRACE")


def extensions():
    from Cython.Build import cythonize

    directives = {
        "language_level": "3",
        "boundscheck": DEBUG,
        "wraparound": DEBUG,
        "initializedcheck": DEBUG,
        "cdivision": True,
        "embedsignature": True,
    }
    macros = []
    if TRACE:
        directives["linetrace"] = True
        directives["profile"] = True
        macros += [("CYTHON_TRACE", "1"), ("CYTHON_TRACE_NOGIL", "1")]
    if sys.platform == "win32":
        cflags = ["/Od", "/Zi"] if DEBUG else ["/O2"]
    else:
        cflags = ["-O0", "-g3", "-UNDEBUG"] if DEBUG else ["-O2"]
    exts = []
    for path in sorted(glob.glob(os.path.join("fastio", "_core", "*.pyx"))):
        mod = path[:-4].replace(os.sep, ".")
        exts.append(
            Extension(mod, [path], extra_compile_args=cflags, define_macros=macros,
                      libraries=["z"] if mod.endswith(".wsframe") else [])
        )
    return cythonize(
        exts,
        compiler_directives=directives,
        include_path=["."],
        annotate=_flag("FASTIO_ANNOTATE"),
        force=DEBUG or TRACE,
    )


setup(ext_modules=extensions())
