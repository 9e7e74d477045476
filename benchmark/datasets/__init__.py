"""Ground-truth datasets. Every non-underscore module here registers its datasets.

Nothing is imported here: the registry imports a dataset's module when its name is first
asked for (``disbench.registry.BUILTINS``).
"""
