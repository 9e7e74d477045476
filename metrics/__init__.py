"""Disentanglement metrics: one module per metric, each registering a :class:`Metric`.

Nothing is imported here: the registry imports a metric's module when its name is first
asked for (``disbench.registry.BUILTINS``).
"""
