"""``disbench new-method NAME``: a ready-to-install method plugin package.

It writes ``disbench-NAME/`` with a pyproject that declares the ``disbench.methods`` entry
point, a method module that trains a small autoencoder (PyTorch, or JAX/Flax with optax)
and learns something, a test, and a README. ``pip install -e disbench-NAME`` and
``disbench run`` picks the method up.
"""

from __future__ import annotations

import argparse
import keyword
import sys
from pathlib import Path

import jinja2

from disbench.api import RegistryError

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("disbench", "templates/new_method"),
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,
)
FRAMEWORKS = {
    "torch": {
        "dependencies": ["disbench", "torch>=2.2"],
        "summary": "a fully connected autoencoder in PyTorch.",
    },
    "jax": {
        "dependencies": ["disbench", "jax>=0.4.30", "flax>=0.8", "optax>=0.2"],
        "summary": "a fully connected autoencoder in JAX/Flax with optax, its step jit-compiled.",
    },
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="the method's registered name (a Python identifier)")
    parser.add_argument("--framework", choices=sorted(FRAMEWORKS), default="torch")
    parser.add_argument(
        "--out", type=Path, default=Path("."), help="where to write disbench-NAME/ (default .)"
    )


def check_name(name: str) -> None:
    """A one-line refusal for a name that cannot be a new method."""
    if not name.isidentifier() or keyword.iskeyword(name) or name != name.lower():
        raise ValueError(
            f"new-method {name!r}: a method name must be a lower-case Python identifier "
            "(letters, digits, underscores; e.g. my_vae)"
        )
    from disbench.registry import METHODS  # the CLI imports the registry only when it runs

    if name in METHODS or name in METHODS.unavailable:
        raise ValueError(f"new-method {name!r}: a method of that name is already registered")


def write_package(name: str, framework: str, out: Path) -> Path:
    """Write the package; returns its folder. Refuses an existing folder."""
    check_name(name)
    root = out / f"disbench-{name.replace('_', '-')}"
    if root.exists():
        raise ValueError(f"new-method {name!r}: {root} already exists")
    package = f"disbench_{name}"
    context = {
        "name": name,
        "cls": "".join(part.capitalize() for part in name.split("_")) + "Method",
        "dist": f"disbench-{name.replace('_', '-')}",
        "package": package,
        "framework": framework,
        **FRAMEWORKS[framework],
    }
    files = {
        "pyproject.toml": "pyproject.toml.j2",
        "README.md": "README.md.j2",
        f"{package}/__init__.py": f"{framework}_method.py.j2",
        f"tests/test_{name}.py": "test_method.py.j2",
    }
    for path, template in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_ENV.get_template(template).render(**context))
    return root


def run(args: argparse.Namespace) -> int:
    try:
        root = write_package(args.name, args.framework, args.out)
    except (ValueError, RegistryError) as exc:
        print(f"disbench: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {root}; install it with: pip install -e {root}")
    return 0
