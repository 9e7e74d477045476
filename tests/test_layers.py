"""The import structure: one namespace, layers that only point down, no import cycle.

Every ``import`` statement of the project is read from the source (those inside functions
too, so a lazy import cannot hide a cycle), mapped to disbench modules, and checked:

    disbench.api                                   imports only itself
    disbench.datasets / .methods / .metrics        the API and their own kind
    the harness (every other disbench module)      anything below it
"""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
FOLDERS = {"benchmark": "disbench", "methods": "disbench.methods", "metrics": "disbench.metrics"}
COMPONENTS = ("disbench.datasets", "disbench.methods", "disbench.metrics")


def _modules() -> dict[str, Path]:
    out = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([package, *parts])] = path
    return out


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the disbench modules its import statements name."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:  # `from pkg import submodule` names the submodule
                    sub = f"{node.module}.{alias.name}"
                    targets.add(sub if sub in modules else node.module)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def _layer(module: str) -> str:
    if module == "disbench.api" or module.startswith("disbench.api."):
        return "api"
    for component in COMPONENTS:
        if module == component or module.startswith(component + "."):
            return component
    return "harness"


def test_every_module_is_in_the_namespace_and_none_imports_the_old_names() -> None:
    modules = _modules()
    assert {
        "disbench.api",
        "disbench.run.runner",
        "disbench.methods.pca",
        "disbench.metrics.mig",
    } <= set(modules)
    for path in modules.values():
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            old = [n for n in names if n.split(".")[0] in FOLDERS]
            assert not old, f"{path}: imports {old}; use disbench"


def test_layers_only_point_down() -> None:
    wrong = []
    for module, targets in _imports(_modules()).items():
        layer = _layer(module)
        for target in targets:
            allowed = (
                _layer(target) == "api"
                if layer == "api"
                else _layer(target) in ("api", layer)
                if layer in COMPONENTS
                else True
            )
            if not allowed:
                wrong.append(f"{module} ({layer}) imports {target} ({_layer(target)})")
    assert not wrong, "\n".join(wrong)


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return None


def test_there_is_no_import_cycle() -> None:
    cycle = _cycle(_imports(_modules()))
    assert cycle is None, f"import cycle: {' -> '.join(cycle or [])}"


def test_the_cycle_check_sees_an_import_inside_a_function(tmp_path) -> None:
    (tmp_path / "a.py").write_text("from disbench import b\n")
    (tmp_path / "b.py").write_text("def f():\n    from disbench.a import thing\n")
    graph = _imports({"disbench.a": tmp_path / "a.py", "disbench.b": tmp_path / "b.py"})
    assert graph == {"disbench.a": {"disbench.b"}, "disbench.b": {"disbench.a"}}
    assert _cycle(graph) is not None


def test_importing_the_api_imports_neither_torch_nor_jax_nor_the_harness() -> None:
    code = (
        "import sys, disbench.api\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'jax')"
        " or m in ('disbench.registry', 'disbench.run.runner', 'disbench.run.study')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
