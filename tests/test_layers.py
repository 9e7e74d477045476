"""The import structure: one namespace, rooms that only point down, no import cycle.

Every ``import`` statement of the project is read from the source (those inside functions
too, so a lazy import cannot hide a cycle), mapped to disbench modules, and checked. The
rooms, each importing only the ones below it (and itself):

    disbench.api                                   the plugin API, no framework
    disbench.datasets / .methods / .metrics        the API and their own kind (the
                                                   per-framework helpers are in .methods)
    disbench.registry                              what is registered
    disbench.run                                   studies, workers, records
    disbench.report, disbench.papers               from the records alone: no registry
    disbench.cli, disbench, disbench.__main__      the command
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
# bottom to top; a module is in the room of the longest prefix that names it
ROOMS: dict[str, tuple[str, ...]] = {
    "api": ("disbench.api",),
    "component": COMPONENTS,
    "registry": ("disbench.registry",),
    "run": ("disbench.run",),
    "report": ("disbench.report", "disbench.papers"),
    "cli": ("disbench.cli", "disbench.__main__"),
}
ORDER = list(ROOMS)


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


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _room(module: str) -> str | None:
    if module == "disbench":  # the package itself: its docstring only
        return "cli"
    return next((r for r, pkgs in ROOMS.items() if any(_within(module, p) for p in pkgs)), None)


def _component(module: str) -> str:
    return next(c for c in COMPONENTS if _within(module, c))


def _arrow_up(module: str, target: str) -> bool:
    """Whether ``module`` importing ``target`` points up (or across two components)."""
    room, to = _room(module), _room(target)
    assert room is not None and to is not None
    if room == to == "component":
        return _component(module) != _component(target)
    return ORDER.index(to) > ORDER.index(room)


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


def test_every_module_is_in_a_room() -> None:
    homeless = sorted(m for m in _modules() if _room(m) is None)
    assert not homeless, f"add these to a room in ROOMS: {homeless}"


def test_rooms_only_point_down() -> None:
    wrong = [
        f"{module} ({_room(module)}) imports {target} ({_room(target)})"
        for module, targets in _imports(_modules()).items()
        for target in targets
        if _arrow_up(module, target)
    ]
    assert not wrong, "\n".join(wrong)


def test_an_arrow_up_and_one_across_components_are_seen() -> None:
    assert _arrow_up("disbench.run.worker", "disbench.cli.score")
    assert _arrow_up("disbench.registry", "disbench.run.study")
    assert _arrow_up("disbench.methods.pca", "disbench.metrics.mig")
    assert _arrow_up("disbench.api._method", "disbench.methods.frameworks")
    assert not _arrow_up("disbench.run.worker", "disbench.methods.frameworks")
    assert not _arrow_up("disbench.methods.pca", "disbench.methods._linear")


def _reachable(graph: dict[str, set[str]], start: set[str]) -> set[str]:
    seen, todo = set(start), list(start)
    while todo:
        for target in graph.get(todo.pop(), set()) - seen:
            seen.add(target)
            todo.append(target)
    return seen


def test_the_report_imports_no_registry() -> None:
    """Nothing the report or the claims pages import, lazily or not, reaches the registry:
    they read what the records hold."""
    graph = _imports(_modules())
    report = {m for m in graph if _room(m) == "report"}
    paths = _reachable(graph, report) & {"disbench.registry"}
    importers = sorted(m for m in _reachable(graph, report) if "disbench.registry" in graph[m])
    assert not paths, f"the report reaches disbench.registry through {importers}"


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
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'jax', 'flax')"
        " or m in ('disbench.registry', 'disbench.run.runner', 'disbench.run.study')"
        " or m.startswith('disbench.methods')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_no_method_module_imports_a_private_name_of_another_module() -> None:
    """Shared pieces are public: a method reaches into no other module's ``_private`` names."""
    wrong = []
    for module, path in _modules().items():
        if not module.startswith("disbench.methods"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("disbench"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                if private:
                    wrong.append(f"{module} imports {private} from {node.module}")
    assert not wrong, "\n".join(wrong)


def test_every_trained_builtin_trains_on_the_shared_loop() -> None:
    """Each built-in PyTorch method's ``fit`` (and ``fit_many``) is written in a module that
    calls ``loop.run``, or is the VAE base, whose loops (nn/vae.py, nn/batched.py) do."""
    from disbench.registry import BUILTINS, METHODS

    delegates = {"disbench.methods.nn.vae_method": ("vae.train(", "batched.fit_many(")}
    for module in ("disbench.methods.nn.vae", "disbench.methods.nn.batched"):
        assert "loop.run(" in _modules()[module].read_text(), module
    trained = [n for n in BUILTINS["method"] if METHODS.get(n).framework == "torch"]
    assert len(trained) >= 12
    for name in trained:
        for attr in ("fit", "fit_many"):
            owner = next(c for c in METHODS.get(name).__mro__ if attr in vars(c))
            if owner.__module__ == "disbench.api._method":
                continue  # the API's fit_many calls fit one job at a time
            source = _modules()[owner.__module__].read_text()
            calls = delegates.get(owner.__module__, ("loop.run",))
            assert all(c in source for c in calls), f"{name}.{attr} in {owner.__module__}"
