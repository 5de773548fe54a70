"""The compiled core's source layout: every module has its declarations (.pxd) and its typed,
documented face (.pyi), and the build switches are setup.py's alone."""
import pathlib
import re

import pytest

CORE = pathlib.Path(__file__).resolve().parents[2] / "fastio" / "_core"
MODULES = sorted(p.stem for p in CORE.glob("*.pyx"))


def test_the_core_has_modules():
    assert {"conn", "eio", "packet", "protocol", "rooms", "wsframe"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_each_module_has_a_pxd_and_a_pyi(name):
    assert (CORE / (name + ".pxd")).is_file()
    assert (CORE / (name + ".pyi")).is_file()


@pytest.mark.parametrize("name", MODULES)
def test_no_module_overrides_the_debug_build_switches(name):
    """boundscheck/wraparound/initializedcheck are turned on by FASTIO_DEBUG=1 in setup.py; a
    `# cython:` header or a decorator that sets them would silently win over it."""
    text = (CORE / (name + ".pyx")).read_text()
    found = re.findall(r"(boundscheck|wraparound|initializedcheck)\s*[=(]", text)
    assert not found, "%s.pyx sets %s itself" % (name, ", ".join(sorted(set(found))))


@pytest.mark.parametrize("name", MODULES)
def test_docstrings_live_in_the_pyi(name):
    """One place for each docstring: the .pyi (the .pyx keeps short comments)."""
    text = (CORE / (name + ".pyx")).read_text()
    assert '"""' not in text
