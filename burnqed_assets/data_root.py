"""One data root per profile, and a marker that keeps profiles from mixing.

`demo` and `full` default to separate roots (`<repo>/data/profiles/<profile>`), so a full run
can never read a file a demo run wrote. Each root carries a marker file naming the profile
that owns it; a step of another profile refuses the root with an error that says what to do.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from burnqed_assets.paths import PROFILE_MARKER_FILE as MARKER_NAME
from burnqed_assets.paths import default_data_root

__all__ = ["MARKER_NAME", "ProfileMismatchError", "claim_data_root", "default_data_root", "root_owner"]


class ProfileMismatchError(RuntimeError):
    """The data root belongs to another profile; the message says how to resolve it."""


def marker_path(root: Path) -> Path:
    return Path(root) / MARKER_NAME


def root_owner(root: Path) -> str | None:
    """The profile recorded in the root's marker, or None when the root has no marker."""
    path = marker_path(root)
    if not path.exists():
        return None
    try:
        return str(json.loads(path.read_text(encoding="utf-8"))["profile"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ProfileMismatchError(f"{path}: unreadable profile marker ({exc}); it should be "
                                   '{"profile": "demo"} or {"profile": "full"}. Fix or delete it.') from exc


def claim_data_root(root: Path, profile: str) -> None:
    """Mark `root` as `profile`'s, or refuse it when another profile's marker is there."""
    root = Path(root)
    owner = root_owner(root)
    if owner == profile:
        return
    if owner is not None:
        raise ProfileMismatchError(
            f"data root {root} holds `{owner}` profile outputs ({marker_path(root)}), and this step runs "
            f"the `{profile}` profile; profiles never share a data root. Unset BURNQED_DATA_ROOT to use "
            f"the default {default_data_root(profile)}, or point it at a directory of the `{profile}` "
            f"profile (or a new one).")
    root.mkdir(parents=True, exist_ok=True)
    tmp = marker_path(root).with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({"profile": profile}) + "\n", encoding="utf-8")
    os.replace(tmp, marker_path(root))  # atomic: concurrent steps never see half a marker
