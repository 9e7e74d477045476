"""Typed hyperparameters: defaults follow from ``Params``, checks name the option at fault,
and values are never converted (they are what a run id hashes)."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import pytest

from disbench.api import FitContext, Method, param


@attrs.frozen(kw_only=True)
class _Params:
    beta: float = param(4.0, ge=0)
    num_latents: int = param(10, int, ge=1)
    code: str = param("mean", str, choices=("mean", "sample"))
    steps: int | None = param(None, int, ge=1)

    def __attrs_post_init__(self) -> None:
        if self.code == "sample" and self.beta == 0:
            raise ValueError("code 'sample' needs beta > 0")


class _Toy(Method):
    name: ClassVar[str] = "toy"
    description: ClassVar[str] = "a method to test typed hyperparameters"
    Params = _Params

    def fit(self, dataset: Any, hparams: Any, seed: int, budget: Any, ctx: FitContext) -> Any:
        raise NotImplementedError  # never trained here: only its hyperparameters are used


def test_defaults_follow_from_params_in_declaration_order() -> None:
    assert _Toy.defaults == {"beta": 4.0, "num_latents": 10, "code": "mean", "steps": None}


def test_values_are_checked_not_converted() -> None:
    hp = _Toy.resolve_hparams({"beta": 4})
    assert hp["beta"] == 4 and isinstance(hp["beta"], int)  # TOML's `beta = 4` stays 4
    assert _Toy.typed(hp).num_latents == 10


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"beta": -1}, "method 'toy': hyperparameter beta must be >= 0, got -1"),
        ({"num_latents": 2.5}, "method 'toy': hyperparameter num_latents must be an integer"),
        ({"num_latents": True}, "num_latents must be an integer, got True"),
        ({"code": "max"}, "code must be one of ['mean', 'sample'], got 'max'"),
        ({"beta": "abc"}, "beta must be a number, got 'abc'"),
        ({"code": "sample", "beta": 0}, "method 'toy': hyperparameter code 'sample' needs beta"),
        ({"gamma": 1}, "method 'toy': unknown hyperparameter(s) ['gamma']"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_option(given: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as info:
        _Toy.resolve_hparams(given)
    assert message in str(info.value) and "\n" not in str(info.value)
