"""Learning methods: one module per method (or family), each registering its class.

Nothing is imported here: the registry imports a method's module when its name is first
asked for (``disbench.registry.BUILTINS``), so using one method loads only its framework.
"""
