"""nox sessions: tests (what CI runs), tests-capped-isa, benchmark (the main job), lint, perf."""

from __future__ import annotations

import shutil
from pathlib import Path

import nox

nox.options.sessions = ["tests"]
# The tests run against the torch release they were validated with; on a machine without
# a GPU this also keeps the download small where a CPU wheel is at hand.
CONSTRAINTS = ("-c", ".ci/constraints.txt")


# A second numerics path on the same machine: PyTorch's kernels and oneDNN capped at AVX2
# (on an AVX-512 CPU this changes training results in their low bits, deterministically).
CAPPED_ISA = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite, with disentanglement_lib installed for the agreement tests and
    Debian's headless Chromium for the HTML leaderboard test (installed when missing)."""
    _install_for_tests(session)
    session.run("pytest", "-q", *session.posargs)


@nox.session(name="tests-capped-isa")
def tests_capped_isa(session: nox.Session) -> None:
    """The test suite on another numerics path (``CAPPED_ISA``), as a CPU without AVX-512
    would run it: no assertion may depend on one instruction set's rounding."""
    _install_for_tests(session)
    check = "import torch; c = torch.backends.cpu.get_cpu_capability(); assert c == 'AVX2', c"
    session.run("python", "-c", check, env=CAPPED_ISA)
    session.run("pytest", "-q", *session.posargs, env=CAPPED_ISA)


def _install_for_tests(session: nox.Session) -> None:
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
