"""Typed hyperparameters: one ``attrs`` class per method, each field with its bounds.

A method declares ``Params``, a frozen attrs class whose fields are built with
:func:`param`; its ``defaults`` follow from it. :func:`validate` checks a run's values
field by field and answers with one line naming the method and the option at fault.
Values are checked, never converted: the hyperparameters a run spec hashes stay exactly
what the profile gave, so a typed class changes no run id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

_NUMBERS = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def param(
    default: Any,
    kind: type = float,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: Sequence[Any] | None = None,
    optional: bool = False,
    doc: str = "",
) -> Any:
    """A hyperparameter field: its default, its type (``float`` also takes integers, as TOML
    writes ``beta = 4``), bounds, allowed values, and whether ``None`` is allowed (meaning
    "derived from the budget or a preset")."""
    checks = {"kind": kind, "ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices}
    return attrs.field(
        default=default,
        validator=_check,
        metadata={"disbench": {**checks, "optional": optional or default is None}, "doc": doc},
    )


def _problem(value: Any, spec: Mapping[str, Any]) -> str | None:
    """Why ``value`` is not allowed by ``spec``, or None."""
    if value is None:
        return None if spec["optional"] else "must be set (it has no derived value)"
    kind = spec["kind"]
    if kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind)
    if not ok:
        return f"must be {_NUMBERS.get(kind, kind.__name__)}, got {value!r}"
    if spec["choices"] is not None and value not in spec["choices"]:
        return f"must be one of {list(spec['choices'])}, got {value!r}"
    for key, holds, text in (
        ("ge", lambda b: value >= b, ">="),
        ("gt", lambda b: value > b, ">"),
        ("le", lambda b: value <= b, "<="),
        ("lt", lambda b: value < b, "<"),
    ):
        bound = spec[key]
        if bound is not None and not holds(bound):
            return f"must be {text} {bound}, got {value!r}"
    return None


def _check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    why = _problem(value, attribute.metadata["disbench"])
    if why is not None:
        raise ValueError(f"{attribute.name} {why}")


def defaults(params: type) -> dict[str, Any]:
    """Field name -> default, in declaration order."""
    return {f.name: f.default for f in attrs.fields(params)}


def validate(params: type, values: Mapping[str, Any], method: str) -> Any:
    """The ``params`` instance of ``values``; a ValueError naming the method and the field."""
    try:
        return params(**values)
    except ValueError as exc:  # a field's check, or a rule between fields (__attrs_post_init__)
        raise ValueError(f"method {method!r}: hyperparameter {exc}") from None
    except TypeError as exc:  # an unknown or missing field
        raise ValueError(f"method {method!r}: {exc}") from None
