"""disbench: the harness (datasets, registry, profiles, runner, report, CLI)."""

__version__ = "0.1.0"
