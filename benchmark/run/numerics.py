"""The numerics path a run takes on this machine: its fingerprint, and the portable mode.

Floating-point results on the CPU depend on more than the seed: PyTorch's vectorised
kernels (ATen's CPU capability), oneDNN's convolutions, MKL's matrix products and the
OpenBLAS and NumPy kernels the metrics use each pick code for the instruction set they
find, and summing in another order changes the low bits, which training then amplifies.
Two records are expected to agree bit for bit only when their :func:`fingerprint` is the
same (:func:`same_numerics`).

``numerics = "portable"`` (an ``[execution]`` setting) pins every one of those choices to
code that every x86-64 CPU with AVX2 runs the same way: ATen's AVX2 kernels, MKL's
conditional-numerical-reproducibility AVX2 branch, OpenBLAS's Haswell kernels, NumPy's
x86-64-v3 kernels, and PyTorch's own convolutions instead of oneDNN's (whose kernels also
block by the cache sizes they find). The variables are read when each library loads, so
they must be in the environment of a fresh process: the local executor spawns its
workers with them (:func:`worker_env`) and :func:`apply` checks in the worker that they
took effect. docs/design.md gives the measurements (``perf/numerics.py``).
"""

from __future__ import annotations

import functools
import os
import platform
import re
from pathlib import Path
from typing import Any

MODES: tuple[str, ...] = ("native", "portable")

# Read by each library when it loads (ATen at its first kernel dispatch, MKL and OpenBLAS
# at load, NumPy at import).
PORTABLE_ENV: dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2,STRICT",
    "OPENBLAS_CORETYPE": "Haswell",
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
}
# Variables that also steer the numerics path; a fingerprint records each one that is set.
_STEERING = (
    *PORTABLE_ENV,
    "ONEDNN_MAX_CPU_ISA",
    "DNNL_MAX_CPU_ISA",
    "MKL_ENABLE_INSTRUCTIONS",
    "MKL_DEBUG_CPU_TYPE",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "CUBLAS_WORKSPACE_CONFIG",
)


class NumericsError(ValueError):
    """Portable numerics asked for where they cannot be had (a one-line error)."""


def check_supported(mode: str) -> None:
    """Before any training: portable numerics need an x86-64 CPU with AVX2 and FMA."""
    if mode != "portable":
        return
    flags = set(cpu_info().get("flags", "").split())
    if platform.machine() not in ("x86_64", "AMD64") or not {"avx2", "fma"} <= flags:
        raise NumericsError(
            f"[execution] numerics = 'portable' needs an x86-64 CPU with AVX2 and FMA; this "
            f"machine ({platform.machine()}) has none: add --set execution.numerics=native"
        )


def worker_env(mode: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a fresh worker process needs for ``mode``: for portable, ``base``
    (this process's environment) with the pinned variables; for native, ``base`` as it is
    (whatever it steers is in the fingerprint)."""
    env = dict(os.environ if base is None else base)
    return {**env, **PORTABLE_ENV} if mode == "portable" else env


def apply(mode: str) -> None:
    """Set up this (fresh worker) process for ``mode``; portable: check that the pinned
    variables took effect and switch PyTorch's convolutions off oneDNN."""
    if mode not in MODES:
        raise ValueError(f"[execution] numerics must be one of {list(MODES)}, got {mode!r}")
    if mode != "portable":
        return
    missing = [k for k, v in PORTABLE_ENV.items() if os.environ.get(k) != v]
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    if missing or capability != "AVX2":
        raise NumericsError(
            "numerics = 'portable' needs a process started with "
            + " ".join(f"{k}={v!r}" for k, v in PORTABLE_ENV.items())
            + f" (missing or different: {missing}, ATen capability {capability})"
        )
    torch.backends.mkldnn.enabled = False


@functools.cache
def cpu_info() -> dict[str, str]:
    """The first processor's ``vendor_id``, ``model name``, ``cpu family``, ``model`` and
    ``flags`` from /proc/cpuinfo (empty where there is none)."""
    out: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("vendor_id", "model name", "cpu family", "model", "flags"):
                out.setdefault(key, value.strip())
            if key == "flags":
                break
    except OSError:
        pass
    return out


def _blas() -> list[dict[str, Any]]:
    """NumPy's and SciPy's BLAS libraries as threadpoolctl sees them (kernel, threads)."""
    from threadpoolctl import threadpool_info

    keep = ("internal_api", "version", "architecture", "num_threads", "threading_layer")
    return sorted(
        ({k: info.get(k) for k in keep} for info in threadpool_info()),
        key=lambda d: (str(d["internal_api"]), str(d["version"]), str(d["architecture"])),
    )


@functools.cache
def _static() -> dict[str, Any]:
    import numpy as np
    import torch

    cpu = cpu_info()
    config = torch.__config__.show()
    mkl = re.search(r"Math Kernel Library Version (\S+)", config)
    onednn = re.search(r"MKL-DNN (v\S+)", config)
    numpy_features = np._core._multiarray_umath.__cpu_features__  # type: ignore[attr-defined]
    dispatch = np._core._multiarray_umath.__cpu_dispatch__  # type: ignore[attr-defined]
    return {
        "machine": platform.machine(),
        "cpu_vendor": cpu.get("vendor_id"),
        "cpu_model": cpu.get("model name") or platform.processor(),
        "cpu_family_model": f"{cpu.get('cpu family')}/{cpu.get('model')}",
        "torch": torch.__version__,
        "numpy_simd": [f for f in dispatch if numpy_features.get(f)],
        "mkl": mkl.group(1) if mkl and torch.backends.mkl.is_available() else None,
        "onednn": onednn.group(1) if onednn else None,
    }


def fingerprint(device: str, mode: str = "native") -> dict[str, Any]:
    """Everything that picks this process's floating-point path: the CPU, the instruction
    set ATen and NumPy use, oneDNN's use, the BLAS libraries and their kernels, thread
    counts, the steering variables, and on CUDA the GPU, CUDA, cuDNN, TF32 and determinism."""
    import torch

    out: dict[str, Any] = {
        **_static(),
        "numerics": mode,
        "aten_capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn": bool(torch.backends.mkldnn.enabled),
        "torch_threads": torch.get_num_threads(),
        "blas": _blas(),
        "env": {k: os.environ[k] for k in _STEERING if k in os.environ},
        "deterministic": torch.are_deterministic_algorithms_enabled(),
    }
    if device.startswith("cuda"):
        out["gpu"] = torch.cuda.get_device_name(torch.device(device))
        out["cuda"] = torch.version.cuda
        out["cudnn"] = torch.backends.cudnn.version()
        out["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
        out["tf32_cudnn"] = torch.backends.cudnn.allow_tf32
        out["cudnn_deterministic"] = torch.backends.cudnn.deterministic
    return out


def same_numerics(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """True when two fingerprints promise bit-identical results: equal, or both portable
    CPU runs on the same pinned path (torch, capability, BLAS kernels, threads, variables;
    the CPU itself may differ). A record without a fingerprint matches nothing. The OpenMP
    runtime is left out: threadpoolctl lists it once scikit-learn has loaded, which depends
    on what the worker ran before, and its thread count is the torch and BLAS limit."""
    if not a or not b:
        return False
    if a.get("numerics") == b.get("numerics") == "portable" and "gpu" not in a | b:
        keys = ("numerics", "torch", "mkl", "aten_capability", "mkldnn", "torch_threads", "env")
        strip = ("version",)
        same = all(a.get(k) == b.get(k) for k in keys)
        return same and _kernels(a, strip) == _kernels(b, strip)
    rest = lambda fp: {k: v for k, v in fp.items() if k != "blas"}  # noqa: E731
    return rest(a) == rest(b) and _kernels(a) == _kernels(b)


def _kernels(fp: dict[str, Any], strip: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The fingerprint's BLAS libraries (not the OpenMP runtime), without ``strip``."""
    return [
        {k: v for k, v in d.items() if k not in strip}
        for d in fp.get("blas", [])
        if d.get("internal_api") != "openmp"
    ]
