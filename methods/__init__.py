"""Learning methods: one module per method (or family), each registering its class."""
