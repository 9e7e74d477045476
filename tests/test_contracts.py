"""The plugin contract: each breach is a one-line error naming the plugin, the rule and what
was expected; in a study the run is recorded as failed and the others go on."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from disbench.api import Method, Metric, RegistryError, register
from disbench.registry import load_plugin
from disbench.run.contracts import ContractError, check_method
from disbench.run.runner import run_study
from disbench.run.store import ResultsStore
from disbench.run.study import ProfileError, load_profile

BREACHES = {
    "returns_dict": "method 'returns_dict' broke the contract: fit must return a "
    "Representation; expected an instance of a disbench.api.Representation subclass, "
    "got builtins.dict",
    "returns_one_row": "method 'returns_one_row' broke the contract: encode must return one "
    "row of codes per observation; expected shape [",
    "nan_codes": "method 'nan_codes' broke the contract: codes must be finite; expected no "
    "NaN or infinite values, got ",
    "complex_codes": "method 'complex_codes' broke the contract: codes must be real numbers; "
    "expected a float or integer dtype, got dtype complex128",
    "tensor_codes": "method 'tensor_codes' broke the contract: encode must return a numpy "
    "array; expected numpy.ndarray, got list",
}


def test_each_breach_fails_its_run_alone_with_a_message_naming_the_rule(tmp_path: Path) -> None:
    load_plugin("testing_methods")
    methods = "".join(f"[methods.{m}]\n" for m in BREACHES)
    profile = tmp_path / "study.toml"
    profile.write_text(
        'seeds = [0]\ndatasets = [{name = "blobs", positions = 8, sizes = 2}]\n'
        '[metrics]\nnames = ["mig"]\ncommon = {num_train = 300}\n'
        f"[methods.pca.grid]\nnum_points = 200\n{methods}"
    )
    out = tmp_path / "results"
    counts = run_study(load_profile(str(profile)), out, show_progress=False)
    assert counts == {"ok": 1, "failed": len(BREACHES), "skipped": 0}
    errors = {r["spec"]["method"]: r["error"] for r in ResultsStore(out).records()}
    assert errors.pop("pca") is None
    for method, message in BREACHES.items():
        assert errors[method].startswith(f"ContractError: {message}"), errors[method]
        assert "\n" not in errors[method]


def test_a_fit_that_ignores_its_seed_is_caught_where_determinism_is_declared() -> None:
    load_plugin("testing_methods")
    with pytest.raises(ContractError) as err:
        check_method("unseeded", "blobs", {"positions": 8, "sizes": 2})
    assert str(err.value).startswith(
        "method 'unseeded' broke the contract: it declares deterministic = True: the same seed "
        "must give the same codes; expected identical codes from two fits with seed 0, got a "
        "largest difference of "
    )
    done = check_method("pca", "blobs", {"positions": 8, "sizes": 2})
    assert done[-1] == "two fits with the same seed give identical codes"


def test_a_missing_attribute_is_refused_at_registration() -> None:
    class NoDescription(Method):
        name: ClassVar[str] = "no_description"

        def fit(self, *args: Any) -> Any:
            return None

    with pytest.raises(
        RegistryError,
        match=r"^register: method 'no_description' needs a class "
        r"attribute `description` \(str\), got None$",
    ):
        register(NoDescription)

    class NoCompute(Metric):
        name: ClassVar[str] = "no_compute"
        description: ClassVar[str] = "a metric that forgot compute"
        primary: ClassVar[str] = "x"

    with pytest.raises(
        RegistryError,
        match=r"^register: metric 'no_compute' does not implement "
        r"compute$",
    ):
        register(NoCompute)


def test_a_grid_key_the_method_does_not_know_names_method_and_key(tmp_path: Path) -> None:
    profile = tmp_path / "study.toml"
    profile.write_text(
        'seeds = [0]\ndatasets = ["blobs"]\n[metrics]\nnames = ["mig"]\n'
        "[methods.pca.grid]\nnum_pointz = 200\n"
    )
    with pytest.raises(ProfileError) as err:
        load_profile(str(profile))
    assert str(err.value) == (
        f"profile {profile}: methods.pca.grid: method 'pca': unknown hyperparameter(s) "
        "['num_pointz']; known: ['n_components', 'num_points']"
    )
