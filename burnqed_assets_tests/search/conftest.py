"""Search fixtures: one tiny demo causal LM per session (builds in about a second)."""

from __future__ import annotations

import pytest

from burnqed_assets.models.demo_model import DemoModelSpec, build_demo_model
from burnqed_assets.settings import DEMO_INPUTS


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    dest = tmp_path_factory.mktemp("search_model") / "tiny-llama"
    build_demo_model(dest, DEMO_INPUTS, DemoModelSpec(warmup_steps=60))  # enough to emit tactic-shaped text, not quality
    return dest
