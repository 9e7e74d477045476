"""Procedural recreations: published grids, every factor visible, deterministic, known pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from disbench.datasets.proc_dsprites import CENTRE_MIN, ELLIPSE_AXES, SPRITE_SIZE
from disbench.datasets.proc_shapes3d import AMBIENT, hue_to_rgb, trace
from disbench.registry import DATASETS


@pytest.fixture(scope="module")
def dsprites():
    return DATASETS.get("proc_dsprites")()


@pytest.fixture(scope="module")
def shapes3d():
    return DATASETS.get("proc_shapes3d")()


def test_dsprites_grid_matches_published_layout(dsprites):
    assert dsprites.kind == "procedural" and dsprites.name != "dsprites"
    assert dsprites.factor_names == ("shape", "scale", "orientation", "posX", "posY")
    assert dsprites.factor_sizes == (3, 6, 40, 32, 32)
    assert dsprites.num_observations == 737_280
    # The file's row of (shape, scale, orientation, posX, posY) is its mixed-radix number.
    f = np.array([[2, 3, 17, 5, 30], [0, 0, 0, 0, 1], [2, 5, 39, 31, 31]])
    expected = (((f[:, 0] * 6 + f[:, 1]) * 40 + f[:, 2]) * 32 + f[:, 3]) * 32 + f[:, 4]
    np.testing.assert_array_equal(dsprites.index_of(f), expected)
    np.testing.assert_array_equal(dsprites.factors_of(expected), f)
    values = dsprites.factor_values(np.array([[0, 0, 0, 0, 0], [2, 5, 39, 31, 31]]))
    np.testing.assert_allclose(values, [[1, 0.5, 0, 0, 0], [3, 1.0, 2 * np.pi, 1, 1]])


def test_dsprites_square_covers_the_hand_computed_pixels(dsprites):
    # Square, scale 1, no rotation, posX = posY = 0: an 18 px block centred on pixel 12.0.
    img = dsprites.render(np.array([[0, 5, 0, 0, 0]]))[0, 0]
    expected = np.zeros((64, 64), np.float32)
    lo = int(CENTRE_MIN - SPRITE_SIZE / 2)
    expected[lo : lo + int(SPRITE_SIZE), lo : lo + int(SPRITE_SIZE)] = 1
    np.testing.assert_array_equal(img, expected)


def test_dsprites_images_are_binary_and_shapes_have_their_areas(dsprites):
    imgs = dsprites.render(np.array([[0, 5, 3, 16, 16], [1, 5, 3, 16, 16], [2, 5, 3, 16, 16]]))
    assert set(np.unique(imgs)) <= {0.0, 1.0}
    areas = imgs.sum(axis=(1, 2, 3))
    np.testing.assert_allclose(areas[0], SPRITE_SIZE**2, rtol=0.05)
    np.testing.assert_allclose(
        areas[1], np.pi * ELLIPSE_AXES[0] * ELLIPSE_AXES[1] * SPRITE_SIZE**2, rtol=0.05
    )
    assert 0.5 * areas[0] < areas[2] < areas[0]  # the heart sits between ellipse and square


def test_dsprites_orientation_ends_coincide_like_the_file(dsprites):
    # The published orientations are linspace(0, 2 pi, 40): the first and last are the same.
    a, b = dsprites.render(np.array([[2, 4, 0, 10, 20], [2, 4, 39, 10, 20]]))
    np.testing.assert_array_equal(a, b)


def each_factor_changes_image(ds, base: np.ndarray) -> None:
    img = ds.render(base[None])
    np.testing.assert_array_equal(img, ds.render(base[None].copy()))  # deterministic
    for k, name in enumerate(ds.factor_names):
        moved = base.copy()
        moved[k] = (moved[k] + 1) % ds.factor_sizes[k]
        diff = np.abs(ds.render(moved[None]) - img)
        assert diff.max() > 0.1, f"{ds.name}: changing {name} alone leaves the image unchanged"


def test_every_factor_changes_the_image(dsprites, shapes3d):
    each_factor_changes_image(dsprites, np.array([2, 3, 5, 10, 20]))  # heart: no symmetry
    each_factor_changes_image(shapes3d, np.array([1, 4, 7, 3, 0, 7]))
    for shape in range(4):  # the sphere too: the orbiting camera moves the room
        each_factor_changes_image(shapes3d, np.array([0, 5, 2, 4, shape, 3]))


def test_torch_render_equals_numpy_render(dsprites, shapes3d):
    rng = np.random.default_rng(0)
    for ds in (dsprites, shapes3d):
        f = ds.sample_factors(32, rng)
        np.testing.assert_array_equal(
            ds.render_torch(torch.from_numpy(f), "cpu").numpy(), ds.render(f)
        )
        if torch.cuda.is_available():
            gpu = ds.render_torch(torch.from_numpy(f), "cuda").cpu().numpy()
            np.testing.assert_allclose(gpu, ds.render(f), atol=1e-3)


def test_shapes3d_grid_and_values(shapes3d):
    assert shapes3d.kind == "procedural" and shapes3d.name != "shapes3d"
    assert shapes3d.factor_sizes == (10, 10, 10, 8, 4, 15)
    assert shapes3d.num_observations == 480_000
    assert shapes3d.observation_shape == (3, 64, 64)
    values = shapes3d.factor_values(np.array([[0, 0, 0, 0, 0, 0], [9, 9, 9, 7, 3, 14]]))
    np.testing.assert_allclose(values, [[0, 0, 0, 0.75, 0, -30], [0.9, 0.9, 0.9, 1.25, 3, 30]])
    f = np.array([[9, 0, 3, 7, 2, 11]])
    expected = ((((9 * 10 + 0) * 10 + 3) * 8 + 7) * 4 + 2) * 15 + 11
    assert shapes3d.index_of(f)[0] == expected


def test_hue_to_rgb_known_colours():
    rgb = hue_to_rgb(torch.tensor([0.0, 1 / 6, 1 / 3, 0.5, 2 / 3]))
    np.testing.assert_allclose(
        rgb, [[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1]], atol=1e-6
    )


def test_shapes3d_surfaces_take_their_hues(shapes3d):
    """Floor red, walls green, object blue: each pixel is a shade of its surface's colour."""
    f = np.array([[0, 3, 6, 7, 0, 7]])  # hues 0 (red), 0.3 (green-ish), 0.6 (blue-ish)
    img = shapes3d.render(f)[0]
    w = trace(*(torch.from_numpy(f[:, k]) for k in (3, 4, 5)))[0].numpy()
    floor_px = (w[0] > 0.2) & (w[1] == 0) & (w[2] == 0)
    obj_px = (w[2] > 0.2) & (w[0] == 0) & (w[1] == 0)
    assert floor_px.sum() > 500 and obj_px.sum() > 100
    floor_rgb = img[:, floor_px]
    np.testing.assert_allclose(floor_rgb[1:], 0, atol=1e-6)  # pure red, shaded
    np.testing.assert_allclose(
        img[:, obj_px] / img[:, obj_px].max(axis=0),
        hue_to_rgb(torch.tensor(0.6)).numpy()[:, None].repeat(obj_px.sum(), 1),
        atol=1e-5,
    )


def test_shapes3d_cached_render_equals_direct_trace(shapes3d):
    f = shapes3d.sample_factors(16, np.random.default_rng(3))
    w = trace(*(torch.from_numpy(f[:, k]) for k in (3, 4, 5)))
    colours = hue_to_rgb(torch.from_numpy(f[:, :3]).float() / 10)
    direct = torch.einsum("nshw,nsc->nchw", w, colours).clamp(0, 1).numpy()
    np.testing.assert_allclose(shapes3d.render(f), direct, atol=1e-6)


def test_shapes3d_geometry(shapes3d):
    # Object coverage grows with scale, for every shape; the four shapes differ.
    scale = torch.arange(8).repeat(4)
    shape = torch.arange(4).repeat_interleave(8)
    cover = trace(scale, shape, torch.full((32,), 7))[:, 2].gt(0).sum(dim=(1, 2)).reshape(4, 8)
    assert (cover[:, 1:] > cover[:, :-1]).all(), cover
    masks = trace(torch.full((4,), 4), torch.arange(4), torch.full((4,), 7))[:, 2] > 0.5
    for a in range(4):
        for b in range(a + 1, 4):
            assert (masks[a] ^ masks[b]).sum() > 20
    # The object casts a shadow: floor pixels that it does not cover, lit by ambient only.
    w = trace(torch.tensor([7]), torch.tensor([2]), torch.tensor([7]))[0]
    shadowed = (w[2] == 0) & ((w[0] - AMBIENT).abs() < 1e-5)
    assert shadowed.sum() > 10
    assert (w[0] > 2 * AMBIENT).sum() > 500  # and most of the floor is lit
