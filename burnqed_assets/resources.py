"""Dagster resources wrapping the domain layer. Assets get settings and backends from here."""

from __future__ import annotations

from typing import Optional

import dagster as dg

from burnqed_assets.settings import Settings, get_settings


class BurnqedConfig(dg.ConfigurableResource):
    """Which profile and data root the assets use (defaults: env vars, then demo / <repo>/data)."""

    profile: Optional[str] = None
    data_root: Optional[str] = None

    def settings(self) -> Settings:
        return get_settings(self.profile, self.data_root)


class LeanEnvResource(dg.ConfigurableResource):
    """The profile's Lean backend: `make()` returns a fresh `LeanEnv` (replay in demo, supervised
    Lean REPL in full) that the caller must `close()`; one env per step, never shared across processes."""

    profile: Optional[str] = None
    data_root: Optional[str] = None

    def make(self):  # -> burnqed_assets.lean.env.LeanEnv (imported lazily: keeps Dagster start-up light)
        from burnqed_assets.lean.factory import make_lean_env

        return make_lean_env(get_settings(self.profile, self.data_root))


def default_resources() -> dict[str, object]:
    return {"burnqed": BurnqedConfig()}
