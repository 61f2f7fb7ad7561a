"""The README's commands as a new user runs them: in a fresh copy of the repository (tracked and
new files, no data, no instance), from its root, with DAGSTER_HOME unset so the project-local
instance of `./dagster.yaml` is used. Shared by the browser test and the quiet-output tests."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from burnqed_assets.settings import REPO_ROOT

# Settings a developer's shell may carry that a new user's does not.
USER_UNSET = ("DAGSTER_HOME", "BURNQED_DATA_ROOT", "BURNQED_PROFILE", "BURNQED_EXECUTOR", "BURNQED_REUSE")


def readme_commands() -> tuple[str, str]:
    """README command 1 (install and materialize) and the UI command of its 'Then `...`' line."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    setup = [line.strip() for b in blocks for line in b.splitlines()
             if line.strip().startswith("pip install -e . &&")]
    assert len(setup) == 1, f"README must have exactly one `pip install -e . && ...` command, found {setup}"
    ui = re.search(r"Then `([^`]+)`", readme)
    assert ui, "README names no UI command ('Then `...`')"
    return setup[0], ui.group(1)


def materialize_command() -> str:
    """README command 1 without its `pip install -e .` (the copy is imported through PYTHONPATH)."""
    setup, _ = readme_commands()
    install, _, materialize = setup.partition(" && ")
    assert install == "pip install -e .", setup
    return materialize


def fresh_copy(dest: Path) -> Path:
    """The repository's tracked and untracked-but-not-ignored files (what a clone has, plus work
    in progress), without generated data, instance or caches."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO_ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = REPO_ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def user_env(repo: Path, **extra: str) -> dict[str, str]:
    """A new user's environment in `repo`: none of our overrides, the copy on PYTHONPATH instead of
    `pip install -e .` (never re-point the shared install)."""
    env = {k: v for k, v in os.environ.items() if k not in USER_UNSET}
    env["PYTHONPATH"] = str(repo)
    env.update(extra)
    return env


def run_in_copy(command: str, repo: Path, log_path: Path, timeout_s: float, **extra_env: str) -> tuple[int, float]:
    """Run `command` with bash from the copy's root as a new user would; output to `log_path`.
    Returns (exit status, seconds)."""
    start = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.run(["bash", "-c", command], cwd=repo, env=user_env(repo, **extra_env), stdout=log,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=timeout_s)
    return proc.returncode, time.monotonic() - start
