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
@dataclass(frozen=True)
class BuildMessage:
    """One diagnostic of a build log, where Lean or Lake located it."""

    file: str  # normalised: `./` runs and `.` components dropped, `\\` read as `/`
    line: int | None  # None: a message about the whole file (`error: X.lean: bad import 'Y'`)
    column: int | None
    severity: str  # error | warning | info
    text: str  # with its continuation lines
    module: str | None = None  # the module Lake was building when it printed this (`✖ [n/m] Building M`)


@dataclass(frozen=True)
class UnlocatedError:
    """An error with no file position (`Lean exited with code 137`, `no such file or directory`)."""

    module: str | None  # the module Lake was working on, when the log says so
    text: str


@dataclass(frozen=True)
class LakeBuildLog:
    """A parsed `lake build` log: located messages, errors without a position, the modules Lake
    lists as failed, and whether it ended with `error: build failed`."""

    messages: tuple[BuildMessage, ...]
    unlocated: tuple[UnlocatedError, ...]
    failed_modules: tuple[str, ...]
    build_failed: bool

    def per_file(self, severities: tuple[str, ...] = ("error", "warning", "info")) -> dict[str, list[BuildMessage]]:
        out: dict[str, list[BuildMessage]] = {}
        for m in self.messages:
            if m.severity in severities:
                out.setdefault(m.file, []).append(m)
        return out

    def errors_of_module(self, module: str) -> list[str]:
        """Error texts that belong to `module` (`A.B` ↔ a file ending in `A/B.lean`): located
        errors in its file, unlocated errors printed while Lake built it, and, when Lake listed it
        as failed without saying why, that fact."""
        suffix = module_relpath(module)
        errors = [m.text for m in self.messages
                  if m.severity == "error" and (m.file == suffix or m.file.endswith("/" + suffix))]
        errors += [u.text for u in self.unlocated if u.module == module]
        if not errors and module in self.failed_modules:
            errors.append(f"lake listed {module} as failed (no message in the log)")
        return errors


def module_relpath(module: str) -> str:
    """`GoedelMigrated.P_x` → `GoedelMigrated/P_x.lean`."""
    return "/".join(module.split(".")) + ".lean"


def normalise_log_path(path: str) -> str:
    """Lake prints one file many ways (`././././A/B.lean`, `./pkg/././A/B.lean`, `.\\.\\A\\B.lean`):
    one spelling, `.` components dropped, absolute paths kept absolute."""
    path = path.strip().replace("\\", "/")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    return ("/" if path.startswith("/") else "") + "/".join(parts)


_SEV = r"(?:error|warning|info)"
# `[sev: ]path.lean:line:col:[ sev:] msg` (Lean, Lake of every year; Windows drive letters too)
_LOCATED = re.compile(rf"^(?:(?P<sev1>{_SEV}):\s+)?(?P<file>\S.*?\.lean):(?P<line>\d+):(?P<col>\d+):"
                      rf"\s*(?:(?P<sev2>{_SEV}):\s*)?(?P<msg>.*)$")
# `sev: path.lean: msg` (a message about a whole file: bad import, package configuration)
_FILE_LEVEL = re.compile(rf"^(?P<sev>{_SEV}):\s+(?P<file>\S.*?\.lean):\s+(?P<msg>\S.*)$")
# `✖ [12/40] Building X (1.2s)`, `⚠ [n/m] Built X`, `[n/m] Building X` (2023), `Building X` (older)
_PROGRESS = re.compile(r"^(?:[✖⚠✔ℹ•]\s+)?(?:\[\s*[\d?]+/[\d?]+\]\s+)?"
                       r"(?P<verb>Building|Built|Replaying|Replayed|Running|Ran|Compiling|Compiled|Fetching|Fetched)"
                       r"\s+(?P<target>\S+)(?P<rest>.*)$")
_UNLOCATED = re.compile(rf"^(?P<sev>{_SEV}):\s+(?P<msg>.*)$")
_FAILED_LIST = re.compile(r"^Some (?:required )?(?:builds|targets) logged failures:\s*$")
_NOT_MESSAGES = re.compile(r"^(?:error:\s+(?:stdout|stderr):\s*$|error:\s+>\s|trace:|stdout:\s*$|stderr:\s*$"
                           r"|Build completed successfully)")


def parse_lake_build_log(text: str) -> LakeBuildLog:
    """Read a `lake build` log of any Lake of 2023–2026 (tested on real logs in
    burnqed_assets_tests/lean/lake_logs): the old `error: ./A/B.lean:3:4: msg` and
    `./pkg/././A/B.lean:3:4: error: msg` lines, and the new `✖ [12/40] Building A.B` followed by
    `error: A/B.lean:3:4: msg`. A message runs on over the lines that follow it (indented or
    not: Lean's `has type` / `but is expected to have type` are not) until the next diagnostic,
    progress line, `trace:` line or failure summary; a blank line ends it unless the message
    goes on after it."""
    messages: list[dict[str, Any]] = []
    unlocated: list[dict[str, Any]] = []
    failed: list[str] = []
    build_failed = False
    module: str | None = None
    current: dict[str, Any] | None = None
    blank = 0
    in_failed_list = False

    def end() -> None:
        nonlocal current, blank
        current, blank = None, 0

    for raw in text.splitlines():
        line = raw.rstrip("\r")
        stripped = line.strip()
        if in_failed_list:
            if stripped.startswith("- "):
                failed.append(stripped[2:].strip())
                continue
            if not stripped:
                continue
            in_failed_list = False
        if not stripped:
            blank += current is not None
            continue
        if _FAILED_LIST.match(stripped):
            end()
            in_failed_list = True
            continue
        if stripped == "error: build failed":
            end()
            build_failed = True
            continue
        progress = _PROGRESS.match(stripped)
        if progress and not _LOCATED.match(stripped):
            end()
            target, rest = progress.group("target"), progress.group("rest").strip()
            # a module name, optionally followed by the job's time (`(1.2s)`); `setup (/path)` is not one
            is_module = re.fullmatch(r"[\w'.«»]+", target) and (not rest or re.fullmatch(r"\([\d.]+m?s\)", rest))
            module = target if is_module else None
            continue
        if _NOT_MESSAGES.match(stripped):
            end()
            if stripped.startswith("error: >"):
                module = None  # old Lake: the progress lines run ahead of the failing command's output
            continue
        located = _LOCATED.match(stripped)
        if located:
            current = {"file": normalise_log_path(located.group("file")), "line": int(located.group("line")),
                       "column": int(located.group("col")),
                       "severity": located.group("sev2") or located.group("sev1") or "error",
                       "text": located.group("msg").strip(), "module": module}
            messages.append(current)
            blank = 0
            continue
        file_level = _FILE_LEVEL.match(stripped)
        if file_level:
            current = {"file": normalise_log_path(file_level.group("file")), "line": None, "column": None,
                       "severity": file_level.group("sev"), "text": file_level.group("msg").strip(), "module": module}
            messages.append(current)
            blank = 0
            continue
        bare = _UNLOCATED.match(stripped)
        if bare:
            if bare.group("sev") == "error":
                current = {"module": module, "text": bare.group("msg").strip()}
                unlocated.append(current)
            else:
                end()  # `info: mathlib: updating repository ...`, unlocated warnings: not a file's verdict
            blank = 0
            continue
        if current is not None:  # a continuation line of the current message
            current["text"] += "\n" * (blank + 1) + line  # indentation kept: it shows Lean's structure
            blank = 0
    return LakeBuildLog(
        messages=tuple(BuildMessage(**m) for m in messages),
        unlocated=tuple(UnlocatedError(u["module"], u["text"]) for u in unlocated),
        failed_modules=tuple(failed), build_failed=build_failed)


# ---------------------------------------------------------------------------- `lake build`, sandboxed
@dataclass(frozen=True)
class LakeBuildRun:
    """One sandboxed `lake build`: its exit code, its whole log and the parsed log."""

    returncode: int
    log: str
    parsed: LakeBuildLog
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.parsed.build_failed


def run_lake_build(project: Path, launcher: Any, lake: Sequence[str] = ("lake",), targets: Sequence[str] = (),
                   timeout_s: float = 4 * 3600, log_path: Path | None = None) -> LakeBuildRun:
    """`lake build [targets]` in `project` through the Lean launcher (`launcher.LeanLauncher`):
    in bubblewrap the project is read-only but its `.lake` build folder, the toolchain (elan
    home) is read-only, HOME is the private temp dir and there is no network, so the Mathlib
    cache and the dependencies must be in place first (`lake exe cache get`, docs/lean.md).
    stdout and stderr are one log (Lake interleaves them), kept in `log_path` when given."""
    import time

    from burnqed_assets.lean.repl_client import spawn_supervised

    launch = launcher.prepare([*lake, "build", *targets], cwd=project)
    t0 = time.monotonic()
    try:
        proc = spawn_supervised(launch.argv, then=launch.apply_rlimits, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, cwd=str(project),
                                env={**os.environ, **launch.env}, start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            out, _ = proc.communicate()
            out = (out or b"") + f"\nerror: lake build timed out after {timeout_s:.0f}s\n".encode()
    finally:
        launch.cleanup()
    log = out.decode("utf-8", "replace")
    if log_path is not None:
        with atomic_open(log_path) as fh:
            fh.write(log)
    return LakeBuildRun(proc.returncode, log, parse_lake_build_log(log), time.monotonic() - t0)


def verdicts_from_build(run: LakeBuildRun, project: LakeProject, source: str = "lean (lake build)") -> dict[str, Any]:
    """problem id → `migration.Verdict` from one `lake build` of the project's modules (they import
    Mathlib, never each other). A module passes when it has no error and no `declaration uses
    'sorry'` and Lake did not list it as failed; when the build did not finish (killed, timed
    out: no `error: build failed` summary although it failed), no module passes on its silence.
    Static rules (banned constructs) and axioms are the verifier's (`verify.static_scan`), not
    this build's."""
    from burnqed_assets.lean.migration import Verdict

    finished = run.ok or run.parsed.build_failed
    warnings = run.parsed.per_file(("warning",))
    out: dict[str, Any] = {}
    for module, problem_id in project.modules.items():
        rel = module_relpath(module)
        errors = run.parsed.errors_of_module(module)
        if not finished and not errors:
            tail = run.log.strip().splitlines()[-1:] or [""]
            errors = [f"lake build did not finish (exit {run.returncode}): {tail[0]}"[:300]]
        sorry = [m.text for f, ms in warnings.items() if f == rel or f.endswith("/" + rel)
                 for m in ms if "sorry" in m.text]
        ok = not errors and not sorry and module not in run.parsed.failed_modules
        reasons = [f"lean error: {e.splitlines()[0]}"[:300] for e in errors] + [f"sorry: {x}"[:300] for x in sorry]
        out[problem_id] = Verdict(ok, reasons, errors, source, timed_out=any("timed out" in e for e in errors),
                                  banned=bool(sorry))  # a sorry is a banned construct, as in the verifier
    return out
