"""CI sessions: lint, typecheck, the tests on each database, coverage. Run all with ``nox``.

One session: ``nox -s lint``; one database: ``nox -s "tests(db='postgres')"``. The SQLite run is
measured by coverage (``.nox/coverage-data/.coverage.sqlite``); ``coverage`` (which runs the test
sessions first) reports it against the 90% floor. The default run checks the newest other Python
(``compat-3.13``); ``nox -s compat`` checks every one.
"""

import os
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_venv = "yes"
# The machines have the Python they need; never fetch an interpreter.
nox.options.download_python = "never"
# A missing interpreter fails the run instead of skipping what it was meant to check.
nox.options.error_on_missing_interpreters = True
# compat-3.12 on demand (`nox -s compat`): with it the whole CI would pass its 15 minutes.
nox.options.sessions = ["lint", "typecheck", "tests", "coverage", "compat-3.13"]

PYTHON = "3.11"
DATABASES = ("sqlite", "postgres", "mariadb")
# The backend whose run is measured by coverage (the whole suite runs there).
MEASURED = "sqlite"
# Not beside .coverage on purpose: coverage's report commands (7.x) combine and then delete any
# .coverage.* file found there, which would swallow the per-backend data half-way.
COVERAGE_DATA = Path(__file__).parent / ".nox" / "coverage-data"
# Bytecode of every session's interpreters, outside the source tree (see _cache_bytecode).
PYCACHE = Path(__file__).parent / ".nox" / "pycache"


# Most tests wait on server subprocesses: two pytest workers keep both cores busy. Coverage follows
# the workers because they are subprocesses (coverage's patch = ["subprocess"]).
PARALLEL = ("-n", "2")


def _coverage_file(db: str) -> str:
    return str(COVERAGE_DATA / f".coverage.{db}")


def _cache_bytecode(session: nox.Session) -> None:
    """Let Python keep the bytecode it compiles, in PYCACHE.

    uv installs no .pyc files, and where PYTHONDONTWRITEBYTECODE is set (as on these machines)
    every process compiled its ~600 modules again: about 1 s of CPU for each of the hundreds of
    servers and commands the tests start, half of a server start. The prefix keeps the source
    tree, and the projects the tests generate, free of __pycache__ folders.
    """
    session.env["PYTHONDONTWRITEBYTECODE"] = None
    session.env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    # sandbox: mypy checks the lazily imported testcontainers calls too.
    session.install("-e", ".[test,sandbox]")
    _cache_bytecode(session)
    session.run("mypy", "--strict", "hyperspot", "tests", "noxfile.py")


@nox.session(python=PYTHON)
@nox.parametrize("db", DATABASES)
def tests(session: nox.Session, db: str) -> None:
    # pip too: uv's environments have none, and the image test builds a wheel with it.
    # ai-local: the local embedding model's tests run for real, not skipped.
    session.install("pip", "-e", ".[test,sandbox,ai-local]")
    _cache_bytecode(session)
    if db != MEASURED:
        # The database-touching tests again, on this engine. The slow end-to-end tests ran on
        # SQLite (they test no database), and so did coverage: tracing costs these runs about
        # as much time again, which the whole CI's 15 minutes cannot spare.
        env = {"HYPERSPOT_TEST_DB": db}
        session.run("pytest", *PARALLEL, "-m", "not slow", *session.posargs, env=env)
        return
    COVERAGE_DATA.mkdir(parents=True, exist_ok=True)
    env = {"HYPERSPOT_TEST_DB": db, "COVERAGE_FILE": _coverage_file(db)}
    session.run("coverage", "erase", env=env)
    session.run("coverage", "run", "-m", "pytest", *PARALLEL, *session.posargs, env=env)
    # Server subprocesses write their own data files; fold them into this backend's one.
    session.run("coverage", "combine", "--quiet", env=env)


@nox.session(python=PYTHON, requires=["tests"])
def coverage(session: nox.Session) -> None:
    session.install("coverage[toml]>=7.5")
    session.run("coverage", "combine", "--quiet", _coverage_file(MEASURED))
    session.run("coverage", "report")


# Pony decompiles bytecode, so every Python minor version the package admits is tested: the
# matrix above on 3.11, and the whole suite on SQLite on the others.
OTHER_PYTHONS = ("3.12", "3.13")


def _expose_pyenv_pythons() -> None:
    """pyenv's shims answer only for the selected versions: select every one nox needs."""
    versions = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    if not versions.is_dir() or "PYENV_VERSION" in os.environ:
        return
    chosen = []
    for minor in (PYTHON, *OTHER_PYTHONS):
        found = sorted(
            versions.glob(f"{minor}.*"),
            key=lambda p: [int(n) for n in p.name.split(".") if n.isdigit()],
        )
        chosen += [found[-1].name] if found else []
    os.environ["PYENV_VERSION"] = ":".join(chosen)


_expose_pyenv_pythons()


@nox.session(python=OTHER_PYTHONS)
def compat(session: nox.Session) -> None:
    session.install("pip", "-e", ".[test]")
    _cache_bytecode(session)
    # What differs between Python versions here is the bytecode Pony decompiles: the data layer's
    # tests and the modules' storage, end to end. The rest of the suite runs on 3.11 (the whole
    # CI must stay within 15 minutes); `nox -s compat -- tests` runs all of it.
    data_layer = [
        f"tests/test_{name}.py"
        for name in ("database", "listing", "migrations", "tenancy", "tenants", "types_registry")
    ]
    env = {"HYPERSPOT_TEST_DB": "sqlite"}
    targets = session.posargs or data_layer
    session.run("pytest", "-q", *PARALLEL, "-m", "not slow", *targets, env=env)


@nox.session(python=PYTHON)
def fuzz(session: nox.Session) -> None:
    """A long schemathesis run (not a default session): ``nox -s fuzz [-- EXAMPLES]``.

    CI runs tests/test_schemathesis.py with a few examples per operation and a fixed seed; this
    runs many, with a new seed each time. HYPERSPOT_TEST_DB picks the backend as for the tests.
    """
    session.install("-e", ".[test]")
    examples = session.posargs[0] if session.posargs else "300"
    env = {"HYPERSPOT_SCHEMATHESIS_EXAMPLES": examples}
    session.run("pytest", "-q", "-p", "no:cacheprovider", "tests/test_schemathesis.py", env=env)
