"""The compiled core must be what is loaded: a build that fell back to slow code is a bug."""
import importlib
import importlib.machinery
import pathlib

import pytest

import fastio

MODULES = ["wsframe", "eio", "packet", "binary", "conn", "rooms", "protocol", "dispatch"]
SOURCES = sorted(p.stem for p in (pathlib.Path(fastio.__file__).parent / "_core").glob("*.pyx"))


def test_every_pyx_is_listed():
    assert set(SOURCES) <= set(MODULES)


@pytest.mark.parametrize("name", SOURCES)
def test_module_is_an_extension(name):
    mod = importlib.import_module("fastio._core." + name)
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    assert mod.__file__.endswith(suffixes), mod.__file__
    assert isinstance(mod.__loader__, importlib.machinery.ExtensionFileLoader)
