"""``disbench score FILE.npz``: the metric suite on a researcher's own codes.

The file holds ``codes_train`` [N, D] (float), ``factors_train`` [N, K] (integer factor
values) and optionally ``codes_test`` / ``factors_test``. Every array metric runs with
disentanglement_lib's definitions and names on all the points given (``--set`` changes
any setting); the result is printed as JSON ``{metric: {key: value}}`` on stdout and as a
table on stderr. Without test arrays, metrics that need a test split use a deterministic
split of the train arrays (first 2/3 train, last 1/3 test) and say so.
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from disbench.api import EvalContext, RegistryError
from disbench.run.overrides import parse_override

REQUIRED = ("codes_train", "factors_train")
OPTIONAL = ("codes_test", "factors_test")


class ScoreInputError(ValueError):
    """A malformed input file or option; the message names it and says what is expected."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``disbench score``."""
    parser.add_argument(
        "file",
        type=Path,
        help="an .npz with codes_train, factors_train [, codes_test, factors_test]",
    )
    parser.add_argument(
        "--metrics",
        default="all",
        help="comma-separated metric names (default: every metric that works on arrays)",
    )
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="[METRIC.]KEY=VALUE",
        help="a metric setting, e.g. dci.mode=fast or num_bins=30 (all metrics "
        "that have it); repeatable",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="evaluation seed for the metrics' estimators (default 0)",
    )
    parser.add_argument("--output", type=Path, help="also write the JSON to this file")


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    """The checked arrays of ``path`` (see the module docstring)."""
    if not path.is_file():
        raise ScoreInputError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ScoreInputError(f"{path}: not a readable .npz file ({exc})") from exc
    for key in REQUIRED:
        if key not in arrays:
            raise ScoreInputError(
                f"{path}: missing array {key!r}; expected codes_train [N, D] and factors_train "
                f"[N, K] (optionally codes_test, factors_test); found {sorted(arrays)}"
            )
    if ("codes_test" in arrays) != ("factors_test" in arrays):
        raise ScoreInputError(f"{path}: codes_test and factors_test must be given together")
    out = {k: arrays[k] for k in REQUIRED + OPTIONAL if k in arrays}
    for split in ("train", "test"):
        if f"codes_{split}" not in out:
            continue
        codes, factors = out[f"codes_{split}"], out[f"factors_{split}"]
        if codes.ndim != 2 or codes.shape[0] == 0 or codes.shape[1] == 0:
            raise ScoreInputError(f"{path}: codes_{split} must be [N, D], got shape {codes.shape}")
        if factors.ndim != 2 or factors.shape[1] == 0:
            raise ScoreInputError(
                f"{path}: factors_{split} must be [N, K], got shape {factors.shape}"
            )
        if len(factors) != len(codes):
            raise ScoreInputError(
                f"{path}: codes_{split} has {len(codes)} rows but factors_{split} has "
                f"{len(factors)}; they must match"
            )
        if not np.issubdtype(codes.dtype, np.number) or np.issubdtype(
            codes.dtype, np.complexfloating
        ):
            raise ScoreInputError(f"{path}: codes_{split} must be real numbers, got {codes.dtype}")
        if not np.isfinite(codes).all():
            raise ScoreInputError(f"{path}: codes_{split} contains NaN or infinite values")
        if not np.issubdtype(factors.dtype, np.integer):
            whole = np.issubdtype(factors.dtype, np.floating) and np.all(
                np.isfinite(factors) & (factors == np.round(factors))
            )
            if not whole:
                raise ScoreInputError(
                    f"{path}: factors_{split} must hold integer factor values, got "
                    f"{factors.dtype} with non-integer entries"
                )
    if "codes_test" in out:
        for name, axis in (("codes", "D"), ("factors", "K")):
            a, b = out[f"{name}_train"], out[f"{name}_test"]
            if a.shape[1] != b.shape[1]:
                raise ScoreInputError(
                    f"{path}: {name}_train has {axis}={a.shape[1]} but {name}_test has "
                    f"{axis}={b.shape[1]}"
                )
    return out


def parse_settings(items: list[str], names: list[str]) -> dict[str, dict[str, Any]]:
    """``--set`` items -> {metric or "*": {key: value}}."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        try:
            keys, value = parse_override(item, example="dci.mode=fast")
        except ValueError as exc:
            raise ScoreInputError(str(exc)) from exc
        if len(keys) > 2:
            raise ScoreInputError(f"--set {item!r}: expected [METRIC.]KEY=VALUE")
        metric, setting = keys if len(keys) == 2 else ("*", keys[0])
        if metric != "*" and metric not in names:
            raise ScoreInputError(
                f"--set {item!r}: {metric!r} is not one of the chosen metrics ({', '.join(names)})"
            )
        out.setdefault(metric, {})[setting] = value
    return out


def score(
    arrays: dict[str, np.ndarray],
    names: list[str],
    overrides: dict[str, dict[str, Any]],
    seed: int = 0,
) -> tuple[dict[str, dict[str, float]], dict[str, str], list[str]]:
    """(scores, errors per metric, notes) of the chosen metrics on the arrays."""
    ctx = EvalContext.from_arrays(
        arrays["codes_train"],
        arrays["factors_train"],
        arrays.get("codes_test"),
        arrays.get("factors_test"),
        seed=seed,
    )
    n_train, n_test = len(ctx.points("train")[0]), len(ctx.points("test")[0])
    from disbench.registry import METRICS
    from disbench.run.evaluate import run_metrics

    known = {k for name in names for k in METRICS.get(name).defaults}
    unknown = sorted(set(overrides.get("*", {})) - known)
    if unknown:
        raise ScoreInputError(f"--set: no chosen metric has the setting(s) {unknown}")
    settings: dict[str, dict[str, Any]] = {}
    for name in names:
        metric = METRICS.get(name)
        given = {
            k: v
            for k, v in {"num_train": n_train, "num_test": n_test}.items()
            if k in metric.defaults
        }
        given.update({k: v for k, v in overrides.get("*", {}).items() if k in metric.defaults})
        given.update(overrides.get(name, {}))
        try:
            settings[name] = metric.settings(given)
        except ValueError as exc:
            raise ScoreInputError(f"--set: {exc}") from exc
    scores, errors, _ = run_metrics(ctx, settings)
    return scores, errors, list(ctx.notes)


def _chosen_metrics(text: str) -> list[str]:
    from disbench.registry import METRICS

    if text == "all":
        return [n for n in METRICS.names() if not METRICS.get(n).needs_dataset]
    names = [n.strip() for n in text.split(",") if n.strip()]
    for name in names:
        METRICS.get(name)  # unknown names raise with the known names and a suggestion
        if METRICS.get(name).needs_dataset:
            raise ScoreInputError(
                f"--metrics: {name!r} needs the dataset (to sample interventions or render "
                "observations) and cannot score fixed arrays"
            )
    return names


def table(scores: dict[str, dict[str, float]], errors: dict[str, str]) -> str:
    """A plain-text table for people: metric, key, value."""
    rows = [(m, k, f"{v:.4f}") for m, d in scores.items() for k, v in d.items()]
    rows += [(m, "error", e) for m, e in errors.items()]
    w1 = max([len("metric")] + [len(r[0]) for r in rows])
    w2 = max([len("key")] + [len(r[1]) for r in rows])
    lines = [f"{'metric':<{w1}}  {'key':<{w2}}  value", f"{'-' * w1}  {'-' * w2}  -----"]
    lines += [f"{a:<{w1}}  {b:<{w2}}  {c}" for a, b, c in rows]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """0 when every chosen metric scored, 1 when some failed, 2 on bad input."""
    try:
        names = _chosen_metrics(args.metrics)
        overrides = parse_settings(args.settings, names)
        arrays = load_arrays(args.file)
        scores, errors, notes = score(arrays, names, overrides, args.seed)
    except (ScoreInputError, RegistryError) as exc:
        print(f"disbench score: error: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(scores, indent=2)
    print(text)
    if args.output is not None:
        args.output.write_text(text + "\n")
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(table(scores, errors), file=sys.stderr)
    return 1 if errors else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="disbench score", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
