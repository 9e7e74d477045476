"""The registry: built-ins, entry-point plugins, --plugin modules, helpful errors; each
module imported on first use, and one that fails to import leaves the rest of its kind."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

from disbench.api import register, registered
from disbench.registry import (
    BUILTINS,
    DATASETS,
    METHODS,
    METRICS,
    Registry,
    RegistryError,
    load_plugin,
)

PACKAGES = {
    "dataset": "disbench.datasets",
    "method": "disbench.methods",
    "metric": "disbench.metrics",
}


def test_builtins_are_registered() -> None:
    assert {"pca", "fastica"} <= set(METHODS.names())
    assert "blobs" in DATASETS.names()
    assert "mig" in METRICS.names()


def test_unknown_name_lists_known_names_and_closest_match() -> None:
    with pytest.raises(RegistryError) as err:
        METHODS.get("pcaa")
    msg = str(err.value)
    assert "unknown method 'pcaa'" in msg
    assert "did you mean 'pca'" in msg
    assert "fastica" in msg and "pca" in msg


def test_unknown_name_without_close_match_still_lists_names() -> None:
    with pytest.raises(RegistryError, match="known datasets: .*blobs"):
        DATASETS.get("zzzzzz")


def test_entry_point_plugin_is_found() -> None:
    """examples/disbench-example-plugin is installed in the test environment."""
    cls = METHODS.get("random_projection")
    assert METHODS.origin("random_projection") == "disbench_example_plugin"
    assert cls.defaults == {"num_codes": 10}


def test_local_plugin_module_registers(tmp_path, monkeypatch) -> None:
    (tmp_path / "my_local_plugin.py").write_text(
        "from disbench.api import register\n"
        "from disbench.datasets.blobs import Blobs\n"
        "@register\n"
        "class TinyBlobs(Blobs):\n"
        "    name = 'tiny_blobs'\n"
        "    def __init__(self):\n"
        "        super().__init__(positions=4, sizes=1)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    load_plugin("my_local_plugin")
    assert DATASETS.get("tiny_blobs")().factor_sizes == (4, 4, 1)


def test_missing_plugin_module_is_a_clear_error() -> None:
    with pytest.raises(RegistryError, match="--plugin 'no_such_module_xyz': module not found"):
        load_plugin("no_such_module_xyz")


def test_broken_plugin_module_names_itself(tmp_path, monkeypatch) -> None:
    (tmp_path / "broken_plugin_abc.py").write_text("raise ImportError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(RegistryError, match="broken_plugin_abc.*failed to import.*boom"):
        load_plugin("broken_plugin_abc")
    sys.modules.pop("broken_plugin_abc", None)


def test_duplicate_registration_is_refused() -> None:
    class OtherPCA(METHODS.get("pca")):
        pass

    with pytest.raises(RegistryError, match="method 'pca' is registered twice"):
        register(OtherPCA)


def test_register_refuses_what_is_not_a_plugin_class() -> None:
    with pytest.raises(RegistryError, match="not a subclass of Method, GroundTruthDataset or"):
        register(object)

    class Nameless(METHODS.get("pca")):
        name = "has space"

    with pytest.raises(RegistryError, match="needs a class attribute `name` that is a Python"):
        register(Nameless)


@pytest.mark.parametrize("kind", sorted(PACKAGES))
def test_the_builtin_table_is_what_the_modules_on_disk_register(kind: str) -> None:
    """A new built-in module, or a name a module stops registering, fails here."""
    package = PACKAGES[kind]
    on_disk = {
        f"{package}.{info.name}"
        for info in pkgutil.iter_modules(importlib.import_module(package).__path__)
        if not info.ispkg and not info.name.startswith("_")
    }
    assert set(BUILTINS[kind].values()) == on_disk
    for module in sorted(on_disk):
        importlib.import_module(module)
    found = {
        name: module
        for name, (_, module) in registered(kind).items()
        if module.startswith(package + ".")
    }
    assert found == BUILTINS[kind]


@pytest.mark.parametrize("kind", sorted(PACKAGES))
def test_the_listing_describes_every_builtin_as_its_class_does(kind: str) -> None:
    registry = Registry(kind, BUILTINS[kind])  # nothing of it imported through this one
    listed = {entry.name: entry for entry in registry.listing()}
    for name in BUILTINS[kind]:
        cls = registry.get(name)
        assert listed[name].description == cls.description, name
        assert listed[name].source == BUILTINS[kind][name] and listed[name].unavailable is None


def test_a_name_imports_its_own_module_and_no_other() -> None:
    code = (
        "import sys\n"
        "from disbench.registry import METHODS, METRICS\n"
        "assert METHODS.get('pca').name == 'pca' and METRICS.get('mig').name == 'mig'\n"
        "assert 'pca' in METHODS and METHODS.origin('pca') == 'disbench.methods.pca'\n"
        "mods = sorted(m for m in sys.modules if m.startswith(('disbench.methods.',"
        " 'disbench.metrics.', 'disbench.datasets.')) and not m.rpartition('.')[2][0] == '_')\n"
        "assert mods == ['disbench.methods.pca', 'disbench.metrics.mig'], mods\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _module(folder: Path, name: str, text: str) -> str:
    (folder / f"{name}.py").write_text(text)
    return name


def test_a_builtin_that_fails_to_import_is_unavailable_and_the_rest_of_its_kind_works(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    broken = _module(tmp_path, "c1_broken_builtin", "raise RuntimeError('no GPU driver\\nmore')\n")
    registry = Registry("method", {"pca": "disbench.methods.pca", "broken_one": broken})
    assert registry.get("pca").name == "pca"
    reason = (
        "built-in method module c1_broken_builtin failed to import: RuntimeError: no GPU driver"
    )
    with pytest.raises(RegistryError) as err:
        registry.get("broken_one")
    assert str(err.value) == f"method 'broken_one' is unavailable: {reason}"
    assert registry.unavailable == {"broken_one": reason}
    assert "broken_one" not in registry and "pca" in registry
    assert "pca" in registry.names() and "broken_one" not in registry.names()
    listed = {entry.name: entry for entry in registry.listing()}
    assert listed["broken_one"].unavailable == reason and listed["pca"].unavailable is None


def test_the_listing_marks_a_module_that_needs_a_missing_package_without_importing_it(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    needs = _module(
        tmp_path,
        "c1_needs_missing",
        "import os\ntry:\n    import optional_xyz\nexcept ImportError:\n    pass\n"
        "import no_such_framework_c1\n"
        "class M:\n    name = 'needs_it'\n    description = 'never imported'\n",
    )
    unparsable = _module(tmp_path, "c1_unparsable", "def f(:\n")
    registry = Registry(
        "dataset", {"needs_it": needs, "unparsable": unparsable, "absent": "c1_absent_module"}
    )
    listed = {entry.name: entry for entry in registry.listing()}
    assert listed["needs_it"].description == "never imported"
    assert listed["needs_it"].unavailable == (
        "needs the package 'no_such_framework_c1', which is not installed "
        "(built-in dataset module c1_needs_missing)"
    )
    assert listed["unparsable"].unavailable.startswith(
        "built-in dataset module c1_unparsable failed to import: SyntaxError: "
    )
    assert listed["absent"].unavailable == (
        "built-in dataset module c1_absent_module: module 'c1_absent_module' is not installed"
    )
    assert needs not in sys.modules and registry.unavailable == {}
    with pytest.raises(RegistryError, match="'needs_it' is unavailable: needs the package 'no_"):
        registry.get("needs_it")


def test_an_entry_point_that_fails_to_import_is_unavailable_with_its_reason(
    tmp_path, monkeypatch
) -> None:
    """An installed distribution (a dist-info folder on the path) whose module raises."""
    dist = tmp_path / "c1_raises-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: c1-raises\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[disbench.metrics]\nc1_raises = c1_raises_mod\n")
    _module(tmp_path, "c1_raises_mod", "raise ValueError('bad table')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry("metric", {"mig": "disbench.metrics.mig"})
    assert "c1_raises" in {entry.name for entry in registry.listing()}
    assert registry.get("mig").name == "mig" and "mig" in registry.names()
    assert registry.unavailable == {
        "c1_raises": "plugin c1_raises_mod in group disbench.metrics failed to import: "
        "ValueError: bad table"
    }
    with pytest.raises(RegistryError, match="metric 'c1_raises' is unavailable: plugin c1_"):
        registry.get("c1_raises")
