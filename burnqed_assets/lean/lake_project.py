"""The migrated Goedel proofs as a real Lake project (plan Task M.3 output, M.5 input).

    <dir>/lean-toolchain            leanprover/lean4:<lean_version>
    <dir>/lakefile.toml             package + Mathlib pinned to a tag + one `lean_lib`
    <dir>/GoedelMigrated/<M>.lean   one module per proof
    <dir>/manifest.json             module -> problem id (and back), in corpus order
    <dir>/.git                      one commit per change of the project (LeanDojo traces a commit)

Module names are Lean identifiers derived from the problem id (`lean_workbook_10009` →
`GoedelMigrated.P_lean_workbook_10009`); there is no root module importing all of them, so two
proofs may declare the same theorem name. Built by the warm REPL pool (every module checked in
its worker's `import Mathlib` env) or by `lake build` in the project (full profile, after
`lake exe cache get`). The git commit is deterministic (fixed author and date), so the same
proofs give the same commit hash.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from burnqed_assets.data.io import atomic_open, write_json

LIB = "GoedelMigrated"
MATHLIB_GIT = "https://github.com/leanprover-community/mathlib4"
_GIT_ENV = {"GIT_AUTHOR_NAME": "burnqed_assets", "GIT_AUTHOR_EMAIL": "burnqed@localhost",
            "GIT_COMMITTER_NAME": "burnqed_assets", "GIT_COMMITTER_EMAIL": "burnqed@localhost",
            "GIT_AUTHOR_DATE": "2025-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2025-01-01T00:00:00Z"}


def module_name(problem_id: str) -> str:
    """A Lean module name component for a problem id (letters, digits, `_`; never a leading digit)."""
    return "P_" + re.sub(r"[^A-Za-z0-9_]", "_", problem_id)


def lakefile(lean_version: str, mathlib_rev: str) -> str:
    return (f'name = "goedel_migrated"\n'
            f'defaultTargets = ["{LIB}"]\n\n'
            f'[[require]]\nname = "mathlib"\ngit = "{MATHLIB_GIT}"\nrev = "{mathlib_rev}"\n\n'
            f'[[lean_lib]]\nname = "{LIB}"\nglobs = ["{LIB}.+"]\n')


@dataclass(frozen=True)
class LakeProject:
    dir: Path
    modules: dict[str, str]  # module (dotted) -> problem id, corpus order
    commit: str | None

    def module_file(self, module: str) -> Path:
        return self.dir.joinpath(*module.split(".")).with_suffix(".lean")

    def as_metadata(self) -> dict[str, Any]:
        return {"dir": str(self.dir), "modules": len(self.modules), "commit": self.commit, "library": LIB}


def write_lake_project(dest: Path, proofs: Sequence[dict[str, Any]], lean_version: str,
                       mathlib_rev: str | None = None, commit: bool = True) -> LakeProject:
    """Write (or update) the project for `proofs` (`{problem_id, full_proof}`); stale modules go."""
    dest.mkdir(parents=True, exist_ok=True)
    src = dest / LIB
    src.mkdir(exist_ok=True)
    with atomic_open(dest / "lean-toolchain") as fh:
        fh.write(f"leanprover/lean4:{lean_version}\n")
    with atomic_open(dest / "lakefile.toml") as fh:
        fh.write(lakefile(lean_version, mathlib_rev or lean_version))
    with atomic_open(dest / ".gitignore") as fh:
        fh.write(".lake/\n")
    modules: dict[str, str] = {}
    for rec in proofs:
        mod = f"{LIB}.{module_name(rec['problem_id'])}"
        if mod in modules:
            raise ValueError(f"two proofs map to module {mod}: {modules[mod]!r} and {rec['problem_id']!r}")
        modules[mod] = rec["problem_id"]
        with atomic_open(src / f"{module_name(rec['problem_id'])}.lean") as fh:
            fh.write(rec["full_proof"] if rec["full_proof"].endswith("\n") else rec["full_proof"] + "\n")
    keep = {f"{m.split('.', 1)[1]}.lean" for m in modules}
    for stale in src.glob("*.lean"):
        if stale.name not in keep:
            stale.unlink()
    write_json(dest / "manifest.json", {"library": LIB, "lean_version": lean_version,
                                        "modules": [{"module": m, "problem_id": p} for m, p in modules.items()]})
    return LakeProject(dest, modules, git_commit(dest, f"{len(modules)} migrated proofs") if commit else None)


def lake_project_exists(dest: Path) -> bool:
    return (dest / "manifest.json").is_file()


def read_lake_project(dest: Path) -> LakeProject:
    data = json.loads((dest / "manifest.json").read_text(encoding="utf-8"))
    modules = {m["module"]: m["problem_id"] for m in data["modules"]}
    return LakeProject(dest, modules, git_head(dest))


def _git(dest: Path, *args: str) -> subprocess.CompletedProcess[str]:
    git = shutil.which("git")
    if git is None:
        raise RuntimeError("git is not installed: the migrated Lake project is a git repository (LeanDojo "
                           "traces a commit); apt-get install -y git")
    return subprocess.run([git, "-C", str(dest), "-c", "commit.gpgsign=false", *args], capture_output=True,
                          text=True, env={**os.environ, **_GIT_ENV}, check=True)


def git_head(dest: Path) -> str | None:
    try:
        return _git(dest, "rev-parse", "HEAD").stdout.strip() or None
    except (subprocess.CalledProcessError, RuntimeError):
        return None


def git_commit(dest: Path, message: str) -> str:
    """Commit the project's current files and return HEAD.

    The commit is a root commit (no parent) with a fixed author and date, so its hash depends on
    the files and the message only, never on the project's history: the same proofs give the same
    commit whether the project was written once or rebuilt as migration chunks finished. `main`
    moves to it; commits it replaces are simply no longer referenced."""
    if not (dest / ".git").is_dir():
        _git(dest, "init", "-q", "-b", "main")
    _git(dest, "add", "-A")
    tree = _git(dest, "write-tree").stdout.strip()
    commit = _git(dest, "commit-tree", tree, "-m", message).stdout.strip()
    if git_head(dest) != commit:
        _git(dest, "update-ref", "HEAD", commit)
    return commit


# ---------------------------------------------------------------------------- `lake build` output
_LOCATED = re.compile(r"^(?:(?P<sev1>error|warning|info): )?(?:\./)*(?P<file>[\w./\-]+\.lean):(?P<line>\d+):(?P<col>\d+):"
                      r"\s*(?:(?P<sev2>error|warning|info):\s*)?(?P<msg>.*)$")


def parse_lake_build_log(text: str) -> dict[str, list[dict[str, Any]]]:
    """Per-file messages of a `lake build` log (`error: ./A/B.lean:3:4: msg` or
    `A/B.lean:3:4: error: msg`, continuation lines indented or unlocated), errors only kept
    with their severity: {file: [{severity, line, column, text}]}."""
    out: dict[str, list[dict[str, Any]]] = {}
    current: dict[str, Any] | None = None
    for raw in text.splitlines():
        m = _LOCATED.match(raw.strip())
        if m:
            sev = m.group("sev1") or m.group("sev2") or "error"
            current = {"severity": sev, "line": int(m.group("line")), "column": int(m.group("col")),
                       "text": m.group("msg").strip()}
            out.setdefault(m.group("file"), []).append(current)
        elif current is not None and raw.startswith((" ", "\t")) and raw.strip():
            current["text"] += "\n" + raw.strip()
        else:
            current = None
    return out
