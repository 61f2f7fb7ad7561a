"""Shared fixtures: one demo base model per test session (it builds in about a second)."""

from __future__ import annotations

import pytest

from burnqed_assets.models.demo_model import DemoModelSpec, build_demo_model
from burnqed_assets.settings import DEMO_INPUTS


@pytest.fixture(scope="session")
def demo_base_model_dir(tmp_path_factory):
    dest = tmp_path_factory.mktemp("base") / "demo-tiny-llama"
    # a short warm-up keeps the session fixture fast; the whole-graph demo test (data/test_data_assets.py)
    # and CI's demo run build the default spec
    build_demo_model(dest, DEMO_INPUTS, DemoModelSpec(warmup_steps=4))
    return dest
