"""Disentanglement metrics: one module per metric, each registering a :class:`Metric`."""
