"""``KEY=VALUE`` options, parsed one way for every command (``run --set``, ``score --set``,
``datasets show --param``): dotted keys, TOML values (``100``, ``1e-3``, ``true``,
``[0, 1]``, ``"text"``), and a bare word that is not TOML (``fast``) taken as a string."""

from __future__ import annotations

import tomllib
from typing import Any


def parse_override(
    text: str, option: str = "--set", example: str = "train.steps=100"
) -> tuple[list[str], Any]:
    """``train.steps=100`` -> (["train", "steps"], 100); an error names ``option``."""
    key, sep, value = text.partition("=")
    keys = [part.strip().strip('"') for part in key.split(".")]
    if not sep or not all(keys):
        raise ValueError(f"{option} {text!r}: expected KEY=VALUE, e.g. {example}")
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return keys, parsed
