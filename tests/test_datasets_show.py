"""``disbench datasets show``: the PNG has a sample grid and one traversal row per factor."""

from __future__ import annotations

import argparse

import matplotlib.image
import numpy as np
import pytest

from disbench.cli import show as dataset_show
from disbench.registry import DATASETS


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    dataset_show.add_arguments(parser)
    return parser.parse_args(argv)


def test_traversal_steps_cover_each_factor_range():
    ds = DATASETS.get("proc_dsprites")()
    base = np.array([1, 2, 3, 4, 5])
    rows = dataset_show.traversal_factors(ds, base, 0)
    np.testing.assert_array_equal(rows[:, 0], [0, 1, 2])  # all 3 shapes
    np.testing.assert_array_equal(rows[:, 1:], np.repeat(base[None, 1:], 3, axis=0))
    steps = dataset_show.traversal_factors(ds, base, 2)[:, 2]
    assert len(steps) == 10 and steps[0] == 0 and steps[-1] == 39


def test_show_writes_png_with_a_row_per_factor(tmp_path):
    ds = DATASETS.get("isometric_manifold")(num_factors=2, values=8)
    a = dataset_show.show_dataset(ds, tmp_path / "a.png", seed=1)
    b = dataset_show.show_dataset(ds, tmp_path / "b.png", seed=1)
    img = matplotlib.image.imread(a)
    # 2 sample rows + 2 factor rows at 0.9 inch and 100 dpi, plus the title margin
    assert img.shape[0] == int((4 * 0.9 + 0.4) * 100)
    np.testing.assert_array_equal(img, matplotlib.image.imread(b))  # same seed, same picture


def test_run_cli_entry(tmp_path, capsys):
    out = tmp_path / "m.png"
    args = parse(["isometric_manifold", "--out", str(out), "--param", "distribution=gaussian"])
    assert dataset_show.run(args) == 0
    assert out.is_file() and str(out) in capsys.readouterr().out
    assert dataset_show.parse_params(["values=8", "embedding=random"]) == {
        "values": 8,
        "embedding": "random",
    }


@pytest.mark.parametrize(
    "argv, message",
    [
        (["proc_dsprite"], "unknown dataset 'proc_dsprite' (did you mean 'proc_dsprites'?)"),
        (["isometric_manifold", "--param", "colour=red"], "bad --param"),
        (["isometric_manifold", "--param", "values"], "expected KEY=VALUE"),
        (["isometric_manifold", "--param", "distribution=cauchy"], "distribution='cauchy'"),
    ],
)
def test_run_reports_bad_input_in_one_line(tmp_path, capsys, argv, message):
    assert dataset_show.run(parse([*argv, "--out", str(tmp_path / "x.png")])) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
