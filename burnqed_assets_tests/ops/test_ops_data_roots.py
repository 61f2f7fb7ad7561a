"""demo and full default to separate data roots, and a root never serves two profiles."""

from __future__ import annotations

import dagster as dg
import pytest

from burnqed_assets.data_root import MARKER_NAME, ProfileMismatchError, claim_data_root, default_data_root
from burnqed_assets.resources import BurnqedConfig
from burnqed_assets.settings import DEMO_INPUTS, get_settings


def test_profiles_default_to_separate_roots_outside_the_demo_inputs(monkeypatch):
    monkeypatch.delenv("BURNQED_DATA_ROOT", raising=False)
    demo, full = get_settings("demo").data_root, get_settings("full").data_root
    assert demo == default_data_root("demo").resolve() and full == default_data_root("full").resolve()
    assert demo != full and not demo.is_relative_to(full) and not full.is_relative_to(demo)
    for root in (demo, full):  # generated data never lands among the shipped inputs
        assert not root.is_relative_to(DEMO_INPUTS) and not DEMO_INPUTS.is_relative_to(root)


def test_marker_claims_a_root_and_refuses_the_other_profile(tmp_path):
    claim_data_root(tmp_path, "demo")
    assert (tmp_path / MARKER_NAME).exists()
    claim_data_root(tmp_path, "demo")  # same profile: fine, again and again
    with pytest.raises(ProfileMismatchError, match=r"holds `demo` profile outputs.*`full` profile"):
        claim_data_root(tmp_path, "full")


def test_a_step_of_another_profile_fails_with_the_actionable_message(tmp_path):
    @dg.asset
    def reads_settings(burnqed: BurnqedConfig) -> None:
        burnqed.settings()

    ok = dg.materialize([reads_settings], resources={"burnqed": BurnqedConfig(profile="demo", data_root=str(tmp_path))})
    assert ok.success
    bad = dg.materialize([reads_settings], raise_on_error=False,
                         resources={"burnqed": BurnqedConfig(profile="full", data_root=str(tmp_path))})
    assert not bad.success
    failure = bad.get_step_failure_events()[0].step_failure_data
    assert failure.user_failure_data is not None  # a dagster.Failure, not a crash
    assert "profiles never share a data root" in failure.user_failure_data.description
