"""Dagster resources wrapping the domain layer. Assets get settings and backends from here."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Optional

import dagster as dg

from burnqed_assets.data_root import ProfileMismatchError, claim_data_root
from burnqed_assets.settings import Settings, get_settings


class BurnqedConfig(dg.ConfigurableResource):
    """Which profile and data root the assets use (defaults: env vars, then demo /
    <repo>/data/profiles/<profile>). The root is claimed for the profile on first use and a
    root of another profile is refused (data_root.py)."""

    profile: Optional[str] = None
    data_root: Optional[str] = None

    def settings(self) -> Settings:
        settings = get_settings(self.profile, self.data_root)
        try:
            claim_data_root(settings.data_root, settings.profile)
        except ProfileMismatchError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None
        return settings



class SGLangServerResource(dg.ConfigurableResource):
    """The policy server of a search step. `policy(settings, model_dir)` is a context manager:
    in the full profile it launches SGLang with `model_dir` on 127.0.0.1, waits for /health,
    confirms the served model, yields the batched client and stops the server when the step
    ends (search.serving.ManagedServer); in demo it yields the in-process model.

    `launcher` overrides settings.search.sglang_launcher (tests and CPU runs point it at
    `burnqed_assets.search.serving_standin`)."""

    launcher: Optional[list[str]] = None

    def policy(self, settings: Settings, model_dir: Path, say: Optional[Callable[[str], None]] = None):
        from burnqed_assets.search.pipeline import policy_session

        return policy_session(settings, model_dir, launcher=self.launcher, say=say)


def default_resources() -> dict[str, object]:
    return {"burnqed": BurnqedConfig(), "sglang": SGLangServerResource()}
