"""Shared fixtures: paths, core settings, and the rule for tests that need outside programs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from streams.core.flow import Windows
from streams.core.scope import Settings

ROOT = Path(__file__).resolve().parent.parent
SHARED_FIXTURES = ROOT.parent / "shared" / "fixtures"
REQUIRE_SERVICES = os.environ.get("FLOWGAUGE_REQUIRE_SERVICES") == "1"
DEFAULT_WINDOWS = {"1h": 3600, "24h": 86400, "7d": 604800}


def core_settings(step_seconds: int = 300) -> Settings:
    return Settings(Windows.of(step_seconds, DEFAULT_WINDOWS))


def need_program(name: str) -> str:
    """Path of an outside program; skip without it unless services are required."""
    path = shutil.which(name)
    if path is None:
        if REQUIRE_SERVICES:
            pytest.fail(f"{name} is required (FLOWGAUGE_REQUIRE_SERVICES=1) but not on PATH")
        pytest.skip(f"{name} not on PATH")
    return path


def need_path(path: Path, why: str) -> Path:
    if not path.exists():
        if REQUIRE_SERVICES:
            pytest.fail(f"{path} is required: {why}")
        pytest.skip(f"{path} missing: {why}")
    return path
