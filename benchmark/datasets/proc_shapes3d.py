"""``proc_shapes3d``: a procedural recreation of 3D Shapes' factor grid, ray cast in torch.

Same factors, value counts and ranges as the published ``3dshapes.h5`` (and its factor order):
floor hue 10, wall hue 10, object hue 10 (hue 0 to 0.9), scale 8 (0.75 to 1.25), shape 4
(cube, cylinder, sphere, capsule), orientation 15 (-30 to 30 degrees). The scene is our own:
an object standing in the corner of a room (a floor and two walls meeting at 90 degrees),
seen by a camera that orbits the object by the orientation angle, lit by a directional light
with Lambert shading, an ambient term and the object's cast shadow. Every surface is hit
analytically (planes, box slabs, sphere and cylinder quadrics), 2x2 rays per pixel.

Why it is fast: colour enters a Lambertian image linearly. For each geometry (scale, shape,
orientation: 480 combinations) the tracer returns three weight maps, the shaded coverage of
the floor, the walls and the object in every pixel; the image is the sum of each weight map
times the RGB of that surface's hue. The 480 weight maps are traced once per process and
device (a few seconds on a CPU), after which a batch is a gather and a 3x3 colour mix on the
device. The tracer also renders batches directly (``trace``), which ``perf/render.py`` times.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch

from disbench.api import GroundTruthDataset, Kind, register

FACTOR_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
FACTOR_SIZES = (10, 10, 10, 8, 4, 15)
SHAPES = ("cube", "cylinder", "sphere", "capsule")
RESOLUTION = 64
SUPERSAMPLE = 2  # rays per pixel side
_WEIGHTS: dict[str, torch.Tensor] = {}  # device -> traced weight maps [480, 3, H, W], shared

CAMERA_DISTANCE, CAMERA_HEIGHT, TARGET_HEIGHT = 3.6, 1.7, 0.45
FIELD_OF_VIEW = math.radians(46.0)
WALL_DISTANCE = 2.6  # from the object to each wall
LIGHT = (-0.45, 0.8, -0.4)  # direction towards the light, world frame (y up)
AMBIENT = 0.35
BASE_SIZE = 0.5  # object half-size at scale 1


def shapes3d_factor_values(factors: np.ndarray) -> np.ndarray:
    """The published ``labels`` for factor indices (hues, scale, shape, orientation)."""
    f = np.asarray(factors, dtype=np.float64)
    return np.stack(
        [
            f[:, 0] / 10,
            f[:, 1] / 10,
            f[:, 2] / 10,
            0.75 + f[:, 3] * (0.5 / 7),
            f[:, 4],
            -30.0 + f[:, 5] * (60.0 / 14),
        ],
        axis=1,
    )


def hue_to_rgb(hue: torch.Tensor) -> torch.Tensor:
    """Fully saturated, full-value HSV colour of ``hue`` in [0, 1) -> RGB [..., 3]."""
    k = (torch.tensor([5.0, 3.0, 1.0], device=hue.device) + hue[..., None] * 6) % 6
    return 1 - torch.clamp(torch.minimum(k, 4 - k), 0, 1)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(-1)


def _sphere(o: torch.Tensor, d: torch.Tensor, centre: torch.Tensor, r: torch.Tensor):
    """Nearest t > 0 where the ray meets the sphere (inf if none), and the normal there."""
    oc = o - centre
    b = _dot(oc, d)
    disc = b**2 - (_dot(oc, oc) - r**2)
    t = -b - torch.sqrt(disc.clamp(min=0))
    t = torch.where((disc >= 0) & (t > 0), t, torch.inf)
    return t, (o + t[..., None].nan_to_num(posinf=0.0) * d - centre) / r[..., None]


def _cylinder(
    o: torch.Tensor, d: torch.Tensor, r: torch.Tensor, y0: torch.Tensor, y1: torch.Tensor
):
    """Vertical cylinder x^2 + z^2 = r^2 between heights y0 and y1, with a flat top."""
    a = d[..., 0] ** 2 + d[..., 2] ** 2
    b = o[..., 0] * d[..., 0] + o[..., 2] * d[..., 2]
    c = o[..., 0] ** 2 + o[..., 2] ** 2 - r**2
    disc = b**2 - a * c
    t_side = (-b - torch.sqrt(disc.clamp(min=0))) / a.clamp(min=1e-12)
    y = o[..., 1] + t_side * d[..., 1]
    t_side = torch.where((disc >= 0) & (t_side > 0) & (y >= y0) & (y <= y1), t_side, torch.inf)
    t_top = (y1 - o[..., 1]) / d[..., 1]
    top = o + t_top[..., None] * d
    t_top = torch.where(
        (t_top > 0) & (top[..., 0] ** 2 + top[..., 2] ** 2 <= r**2), t_top, torch.inf
    )
    p = o + t_side[..., None].nan_to_num(posinf=0.0) * d
    side_n = torch.stack([p[..., 0], torch.zeros_like(r), p[..., 2]], -1) / r[..., None]
    top_n = torch.zeros_like(side_n)
    top_n[..., 1] = 1.0
    use_top = t_top < t_side
    return torch.where(use_top, t_top, t_side), torch.where(use_top[..., None], top_n, side_n)


def _box(o: torch.Tensor, d: torch.Tensor, half: torch.Tensor):
    """Axis-aligned cube [-h, h] x [0, 2h] x [-h, h] by the slab method."""
    lo = torch.stack([-half, torch.zeros_like(half), -half], -1)
    hi = torch.stack([half, 2 * half, half], -1)
    inv = 1.0 / d
    t0, t1 = (lo - o) * inv, (hi - o) * inv
    near, far = torch.minimum(t0, t1), torch.maximum(t0, t1)
    t_in, axis = near.max(-1)
    t = torch.where((t_in <= far.min(-1).values) & (t_in > 0), t_in, torch.inf)
    normal = torch.nn.functional.one_hot(axis, 3).to(d.dtype) * -torch.sign(d)
    return t, normal


def _object(shape: int, o: torch.Tensor, d: torch.Tensor, size: torch.Tensor):
    """Ray hits (t, normal) of one kind of object standing on the floor at the origin."""
    zero = torch.zeros_like(size)
    if shape == 0:
        return _box(o, d, size)
    if shape == 1:
        return _cylinder(o, d, size, zero, 2 * size)
    if shape == 2:
        return _sphere(o, d, torch.stack([zero, size, zero], -1), size)
    r = 0.6 * size  # capsule: a cylinder between two hemispheres, 2.6 * size tall
    y0, y1 = r, 2.6 * size - r
    t, normal = _cylinder(o, d, r, y0, y1)
    for yc in (y0, y1):
        t_cap, n_cap = _sphere(o, d, torch.stack([zero, yc, zero], -1), r)
        closer = t_cap < t
        t, normal = torch.where(closer, t_cap, t), torch.where(closer[..., None], n_cap, normal)
    return t, normal


def camera_rays(angle: torch.Tensor, res: int, supersample: int):
    """Camera origins [n, R, 3] and unit ray directions [n, R, 3], R = (res * supersample)^2."""
    dev = angle.device
    eye = torch.stack(
        [
            -CAMERA_DISTANCE * torch.sin(angle),
            torch.full_like(angle, CAMERA_HEIGHT),
            -CAMERA_DISTANCE * torch.cos(angle),
        ],
        -1,
    )
    target = torch.tensor([0.0, TARGET_HEIGHT, 0.0], device=dev)
    fwd = torch.nn.functional.normalize(target - eye, dim=-1)
    right = torch.nn.functional.normalize(
        torch.linalg.cross(fwd, torch.tensor([0.0, 1.0, 0.0], device=dev).expand_as(fwd)), dim=-1
    )
    up = torch.linalg.cross(right, fwd)
    m = res * supersample
    s = (torch.arange(m, device=dev, dtype=torch.float32) + 0.5) / m * 2 - 1
    s = s * math.tan(FIELD_OF_VIEW / 2)
    sy, sx = torch.meshgrid(s, s, indexing="ij")
    d = (
        fwd[:, None, :]
        + sx.reshape(1, -1, 1) * right[:, None, :]
        - sy.reshape(1, -1, 1) * up[:, None, :]
    )
    return eye[:, None, :].expand_as(d), torch.nn.functional.normalize(d, dim=-1)


def trace(
    scale: torch.Tensor, shape: torch.Tensor, orientation: torch.Tensor, res: int = RESOLUTION
) -> torch.Tensor:
    """Shaded coverage of (floor, walls, object) per pixel, float32 [n, 3, res, res].

    Rows are grouped by orientation: they share the camera, hence the rays and the background.
    """
    out = torch.empty(len(scale), 3, res, res, device=scale.device)
    size = BASE_SIZE * (0.75 + scale.to(torch.float32) * (0.5 / 7))
    for value in orientation.unique().tolist():
        rows = (orientation == value).nonzero().squeeze(1)
        angle = math.radians(-30.0 + value * (60.0 / 14))
        out[rows] = _trace_view(angle, size[rows], shape[rows], res)
    return out


def _trace_view(angle: float, size: torch.Tensor, shape: torch.Tensor, res: int) -> torch.Tensor:
    """Weight maps [r, 3, res, res] of r objects seen from one camera angle."""
    dev = size.device
    o, d = camera_rays(torch.tensor([angle], device=dev), res, SUPERSAMPLE)
    o, d = o[0], d[0]  # [R, 3]
    light = torch.nn.functional.normalize(torch.tensor(LIGHT, device=dev), dim=0)

    # Background: the floor (y = 0) and two walls meeting in a corner behind the object.
    diag = 1 / math.sqrt(2)
    walls = torch.tensor([[diag, 0.0, diag], [-diag, 0.0, diag]], device=dev)
    t_floor = torch.where(d[:, 1] < 0, -o[:, 1] / d[:, 1], torch.inf)
    wall_dot = d @ walls.T  # [R, 2]
    t_walls = torch.where(wall_dot > 0, (WALL_DISTANCE - o @ walls.T) / wall_dot, torch.inf)
    t_wall, which = t_walls.min(-1)
    is_floor = t_floor < t_wall
    t_bg = torch.minimum(t_floor, t_wall)
    up = torch.tensor([0.0, 1.0, 0.0], device=dev)
    bg_normal = torch.where(is_floor[:, None], up, -walls[which])
    lit = AMBIENT + (1 - AMBIENT) * (bg_normal @ light).clamp(min=0)
    weights = torch.stack([is_floor * lit, ~is_floor * lit, torch.zeros_like(lit)])
    weights = weights.expand(len(size), -1, -1).clone()  # [r, 3, R]

    # Only rays that pass the bounding sphere of the largest object need exact tests.
    big = size.max()
    p_bg = o + t_bg[:, None] * d + 1e-4 * bg_normal
    shadow = _near(p_bg, light.expand_as(d), big).nonzero().squeeze(1)
    view = _near(o, d, big).nonzero().squeeze(1)
    for kind in range(len(SHAPES)):
        rows = (shape == kind).nonzero().squeeze(1)
        if len(rows) == 0:
            continue
        sz = size[rows, None]
        if len(shadow):  # darken the background where the object blocks the light
            pts = p_bg[shadow].expand(len(rows), -1, -1)
            blocked = _object(kind, pts, light.expand_as(pts), sz.expand(-1, len(shadow)))[0]
            dark = torch.where(blocked < torch.inf, AMBIENT / lit[shadow], 1.0)
            weights[rows[:, None], :2, shadow[None]] *= dark[..., None]
        if len(view):  # the object in front of the background
            dirs = d[view].expand(len(rows), -1, -1)
            t, normal = _object(kind, o[:1].expand_as(dirs), dirs, sz.expand(-1, len(view)))
            hit = t < t_bg[view]
            shade = AMBIENT + (1 - AMBIENT) * (normal @ light).clamp(min=0)
            block = weights[rows[:, None], :, view[None]]  # [rows, |view|, 3]
            block[..., :2] *= ~hit[..., None]
            block[..., 2] = torch.where(hit, shade, 0.0)
            weights[rows[:, None], :, view[None]] = block
    weights = weights.reshape(len(size), 3, res, SUPERSAMPLE, res, SUPERSAMPLE)
    return weights.mean(dim=(3, 5))  # average the rays of each pixel


def _near(o: torch.Tensor, d: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """Rays that meet the sphere (centre 1.3 size above the floor, radius 2 size) that
    contains every object of half-size up to ``size``; objects are 2.6 size tall at most."""
    oc = o - torch.stack([torch.zeros_like(size), 1.3 * size, torch.zeros_like(size)])
    b = _dot(oc, d)
    return (b**2 - (_dot(oc, oc) - (2.0 * size) ** 2) >= 0) & (b < 0)


@register
class ProcShapes3D(GroundTruthDataset):
    """A ray-cast room with one object: the 3D Shapes factor grid, rendered on the device."""

    name: ClassVar[str] = "proc_shapes3d"

    kind: ClassVar[Kind] = "procedural"
    description: ClassVar[str] = (
        "procedural recreation of 3D Shapes' grid (floor/wall/object hue 10, scale 8, shape 4, "
        "orientation 15); ray-cast 64x64 RGB, rendered on the device"
    )

    def __init__(self) -> None:
        self.factor_names = FACTOR_NAMES
        self.factor_sizes = FACTOR_SIZES
        self.observation_shape = (3, RESOLUTION, RESOLUTION)

    def factor_values(self, factors: np.ndarray) -> np.ndarray:
        return shapes3d_factor_values(factors)

    def geometry_weights(self, device: torch.device | str) -> torch.Tensor:
        """The traced weight maps of all 480 geometries on ``device`` (traced on first use)."""
        key = str(torch.device(device))
        if key not in _WEIGHTS:
            grid = torch.meshgrid(
                *(torch.arange(s, device=device) for s in FACTOR_SIZES[3:]), indexing="ij"
            )
            _WEIGHTS[key] = trace(*(g.reshape(-1) for g in grid))
        return _WEIGHTS[key]

    def render(self, factors: np.ndarray) -> np.ndarray:
        factors = np.asarray(factors, dtype=np.int64)
        self.check_factors(factors)
        return self.render_torch(torch.from_numpy(factors), "cpu").numpy()

    def render_torch(self, factors: torch.Tensor, device: torch.device | str) -> torch.Tensor:
        f = factors.to(device=device, dtype=torch.int64)
        geometry = (f[:, 3] * 4 + f[:, 4]) * 15 + f[:, 5]
        weights = self.geometry_weights(device).flatten(2).index_select(0, geometry)
        colours = hue_to_rgb(f[:, :3].to(torch.float32) / 10)  # [n, 3 surfaces, 3 rgb]
        # image[c] = sum over surfaces s of colour[s, c] * weight[s]
        image = torch.bmm(colours.transpose(1, 2), weights)  # [n, 3 rgb, H * W]
        return image.reshape(len(f), 3, RESOLUTION, RESOLUTION).clamp_(0.0, 1.0)
