"""The per-framework helpers (disbench.methods.frameworks): what the harness sets up around
a run goes through them, and only the frameworks a run needs are imported."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from disbench.methods import frameworks
from disbench.registry import METHODS


def test_a_run_sets_up_the_harness_framework_and_its_methods_own() -> None:
    helper = frameworks.get("torch")
    assert frameworks.HARNESS == "torch"
    for name in ("pca", "beta_vae", "flax_beta_vae"):  # numpy, torch, jax (no helper)
        assert frameworks.for_method(METHODS.get(name)) == (helper,)
    with pytest.raises(ValueError, match="^no framework helper 'jax'; there are: torch$"):
        frameworks.get("jax")


def test_the_torch_helper_seeds_sets_determinism_and_knows_its_out_of_memory_error() -> None:
    helper = frameworks.get("torch")
    helper.seed(7)
    first = torch.rand(4)
    helper.seed(7)
    assert torch.equal(first, torch.rand(4))
    was = torch.are_deterministic_algorithms_enabled()
    was_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        for on in (True, False):
            helper.deterministic(on)
            assert torch.are_deterministic_algorithms_enabled() is on
            assert torch.is_deterministic_algorithms_warn_only_enabled()  # warns, never raises
    finally:
        torch.use_deterministic_algorithms(was, warn_only=was_warn)
    assert helper.is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    assert not helper.is_out_of_memory(RuntimeError("CUDA out of memory"))
    assert helper.has_gpu() is torch.cuda.is_available()


def test_the_helpers_load_their_framework_only_when_asked_for() -> None:
    code = (
        "import sys\n"
        "from disbench.methods import frameworks\n"
        "import disbench.run.worker, disbench.run.runner, disbench.run.contracts, disbench.cli\n"
        "assert 'torch' not in sys.modules, 'imported at module level'\n"
        "frameworks.get('torch').set_threads(1)\n"
        "import torch\n"
        "assert torch.get_num_threads() == 1\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
