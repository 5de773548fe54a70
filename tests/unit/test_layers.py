"""The package's layering, checked on its source: each layer imports only the layers below it, no
module imports itself back through others, and no code reaches into another object's private
(underscore) attributes.

Layers, bottom up (docs/architecture.md): ``_core`` (compiled) -> ``base`` (with ``exceptions`` and
``_version``) -> ``engineio`` -> ``socketio`` -> ``client`` -> ``hosting`` -> ``sync`` -> ``cli``/``demo`` and
the package's public face (``fastio/__init__.py``).
"""
from __future__ import annotations

import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2] / "fastio"

LAYERS = {
    "fastio._core": 0,
    "fastio.base": 1, "fastio.exceptions": 1, "fastio._version": 1,
    "fastio.engineio": 2,
    "fastio.socketio": 3,
    "fastio.client": 4,
    "fastio.hosting": 5,
    "fastio.sync": 6,
    "fastio.cli": 7, "fastio.demo": 7, "fastio": 7,
}


def layer_of(module: str) -> int:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        layer = LAYERS.get(".".join(parts[:n]))
        if layer is not None:
            return layer
    raise AssertionError("module %s is in no layer" % module)


def module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources() -> list[pathlib.Path]:
    return sorted(p for p in ROOT.rglob("*.py") if "__pycache__" not in p.parts)


def imports(path: pathlib.Path, top_level_only: bool = False) -> list[tuple[int, str]]:
    """(line, module) for every fastio import in the file (inside functions too, unless told)."""
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    out = []
    for node in nodes:
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "fastio"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "fastio":
                continue
            for alias in node.names:
                # `from fastio.x import y` may name a submodule y.
                sub = mod + "." + alias.name
                is_module = (ROOT.parent / (sub.replace(".", "/") + ".py")).exists() or \
                    (ROOT.parent / sub.replace(".", "/")).is_dir()
                out.append((node.lineno, sub if is_module else mod))
    return out


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(ROOT.parent)))
def test_imports_only_lower_layers(path: pathlib.Path) -> None:
    me = module_name(path)
    mine = layer_of(me)
    wrong = ["line %d: %s (layer %d) imports %s (layer %d)" % (line, me, mine, mod, layer_of(mod))
             for line, mod in imports(path) if layer_of(mod) > mine]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles() -> None:
    graph: dict[str, set[str]] = {}
    for path in sources():
        me = module_name(path)
        graph[me] = {mod for _, mod in imports(path) if mod != me and not me.startswith(mod + ".")}
    # Importing fastio.x.y runs fastio.x's __init__ first: an edge to fastio.x too, for modules
    # outside that package (inside it, the package is already being initialised).
    for me, deps in graph.items():
        for mod in list(deps):
            parts = mod.split(".")
            for n in range(2, len(parts)):
                pkg = ".".join(parts[:n])
                if pkg in graph and not me.startswith(pkg + ".") and me != pkg:
                    deps.add(pkg)
    seen: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        seen[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if dep not in graph or dep == "fastio":
                continue
            if seen.get(dep) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(dep):] + [dep]))
            if dep not in seen:
                visit(dep)
        stack.pop()
        seen[node] = 2

    for node in sorted(graph):
        if node not in seen:
            visit(node)


# Private attributes of modules and objects outside fastio that fastio has to use.
FOREIGN_PRIVATE = {
    "_exit",            # os._exit
    "_getframe",        # sys._getframe
    "_asdict",          # namedtuple API
    "_asyncio_future_blocking",  # asyncio's protocol for objects a coroutine yields
}


def _private_reach(path: pathlib.Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        name = node.attr
        if not name.startswith("_") or name.startswith("__") or name in FOREIGN_PRIVATE:
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
            continue
        # A module's own private names used through a module alias are still another object's.
        out.append("line %d: %s.%s" % (node.lineno, ast.unparse(owner), name))
    return out


def _private_reach_pyx(path: pathlib.Path) -> list[str]:
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        code = line.split("#", 1)[0]
        for m in re.finditer(r"(?<![\w.])([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\.(_[A-Za-z]\w*)\b", code):
            owner, name = m.group(1), m.group(2)
            if owner in ("self", "cls") or name in FOREIGN_PRIVATE or owner.startswith("fastio"):
                continue
            out.append("line %d: %s.%s" % (n, owner, name))
    return out


@pytest.mark.parametrize("path", sorted(ROOT.glob("_core/*.pyx")), ids=lambda p: p.name)
def test_core_reaches_no_private_attributes(path: pathlib.Path) -> None:
    found = _private_reach_pyx(path)
    assert not found, "\n".join(found)


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(ROOT.parent)))
def test_no_reach_into_private_attributes(path: pathlib.Path) -> None:
    found = _private_reach(path)
    assert not found, "\n".join(found)
