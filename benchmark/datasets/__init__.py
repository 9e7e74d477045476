"""Ground-truth datasets. Every non-underscore module here registers its datasets."""

from benchmark.datasets.base import GroundTruthDataset

__all__ = ["GroundTruthDataset"]
