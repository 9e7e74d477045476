"""nox sessions: tests (what CI runs), benchmark (the main job), lint, perf."""

from __future__ import annotations

import shutil
from pathlib import Path

import nox

nox.options.sessions = ["tests"]
# The tests run against the torch release they were validated with; on a machine without
# a GPU this also keeps the download small where a CPU wheel is at hand.
CONSTRAINTS = ("-c", ".ci/constraints.txt")


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite, with disentanglement_lib installed for the agreement tests and
    Debian's headless Chromium for the HTML leaderboard test (installed when missing)."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        session.run("apt-get", "update", "-qq", external=True)
        session.run(
            "apt-get",
            "install",
            "-y",
            "-qq",
            "chromium",
            "chromium-driver",
            external=True,
            env={"DEBIAN_FRONTEND": "noninteractive"},
        )
    session.install(*CONSTRAINTS, "-e", ".[test]")
    session.install("--no-deps", "-r", "tests/requirements-reference.txt")
    # The example plugins: numpy and PyTorch methods, a dataset, a metric, and the Flax
    # method with JAX, Flax and optax (CPU builds).
    examples = ["disbench-example-plugin", "disbench-torch-ae", "disbench-example-dataset"]
    examples += ["disbench-example-metric"]
    for example in examples:
        session.install("--no-deps", "-e", f"examples/{example}")
    session.install(*CONSTRAINTS, "-e", "examples/disbench-flax-vae")
    session.run("pytest", "-q", *session.posargs)


@nox.session
def benchmark(session: nox.Session) -> None:
    """Train and score the default profile (cpu, or gpu when CUDA is available), then report.

    Extra arguments go to ``disbench run``, e.g. ``nox -s benchmark -- --profile smoke``.
    """
    # Editable: the records then name disbench's full commit (and whether the code had local
    # changes); an installed copy can only name its version.
    session.install(*CONSTRAINTS, "-e", ".")
    # `disbench run` exits 1 when a run failed (it lists them); the report still shows them.
    session.run("disbench", "run", *session.posargs, success_codes=[0, 1])
    session.run("disbench", "report")


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.5")
    code = ["benchmark", "methods", "metrics", "tests", "perf", "examples", "noxfile.py"]
    session.run("ruff", "check", *code)
    session.run("ruff", "format", "--check", *code)


@nox.session
def perf(session: nox.Session) -> None:
    """Every speed benchmark under perf/ (each prints what it measured and on which machine)."""
    session.install(*CONSTRAINTS, "-e", ".")
    session.install("--no-deps", "-r", "tests/requirements-reference.txt")
    scripts = sorted(Path("perf").glob("*.py"))
    for script in session.posargs or [str(s) for s in scripts]:
        session.run("python", script)
