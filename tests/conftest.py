"""Shared fixtures: the test plugin module on sys.path, small profiles written to tmp dirs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

PLUGIN_DIR = Path(__file__).parent / "plugins"


@pytest.fixture(scope="session", autouse=True)
def _plugin_path() -> None:
    if str(PLUGIN_DIR) not in sys.path:
        sys.path.insert(0, str(PLUGIN_DIR))
