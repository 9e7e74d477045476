"""The registry: built-ins, entry-point plugins, --plugin modules, helpful errors."""

from __future__ import annotations

import sys

import pytest

from disbench.api import register
from disbench.registry import DATASETS, METHODS, METRICS, RegistryError, load_plugin


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
