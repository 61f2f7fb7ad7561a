"""The asset catalogue (docs/catalogue.md) rendered from plain records.

No Dagster here: `burnqed_assets.tools.catalogue` turns the Definitions into `AssetEntry`
records; this module only extracts plan tasks and file paths from text and renders markdown,
so the rendering is testable on hand-made records.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

REGENERATE = "python -m burnqed_assets.tools.catalogue"

# "Task M.5", "Tasks M.1–M.3", "plan Task 1.3", "Task M.10/0.6", "Tasks 3.1–4.2"
_TASK = re.compile(r"Tasks?\s+((?:[0-9M]\.\d+)(?:\s*[–-]\s*(?:[0-9M]\.)?\d+)?(?:\s*/\s*[0-9M]\.\d+)*)")
# Plan-layout paths under the data root (`data/...`), up to whitespace or closing punctuation.
_DATA_PATH = re.compile(r"(?<![\w/])data/(?:[A-Za-z0-9_.*<>\-/]|\{[^}\s]*\})+")
_READ_CUE = re.compile(r"\b(?:on|from|reads?|of|in)\s+\(?$")
_PHASE_ORDER = re.compile(r"phase_(m|0|\d+)")


@dataclass(frozen=True)
class CheckEntry:
    name: str
    blocking: bool
    description: str = ""


@dataclass(frozen=True)
class AssetEntry:
    key: str
    group: str
    description: str = ""
    deps: tuple[str, ...] = ()
    checks: tuple[CheckEntry, ...] = ()
    gpu: bool = False
    automation: str | None = None
    files: tuple[str, ...] = field(default=())


def plan_tasks(text: str) -> list[str]:
    """Plan task ids named in `text`, in order, without repeats ("M.1–M.3", "1.3")."""
    seen: list[str] = []
    for match in _TASK.finditer(text or ""):
        task = re.sub(r"\s+", "", match.group(1))
        if task not in seen:
            seen.append(task)
    return seen


def data_paths(text: str) -> list[str]:
    """`data/...` paths named in `text` (the files an asset writes, by convention)."""
    seen: list[str] = []
    for match in _DATA_PATH.finditer(text or ""):
        path = match.group(0).rstrip(".,;:)")
        if path.startswith("data/demo/"):
            continue  # shipped inputs, not outputs
        if _READ_CUE.search((text or "")[max(0, match.start() - 12):match.start()]):
            continue  # "trained on data/sft", "read from data/..." name inputs
        if path not in seen:
            seen.append(path)
    return seen


def group_sort_key(group: str) -> tuple[int, str]:
    """Plan order: Phase M, Phase 0, then 1, 2, 3, 4; anything else last."""
    match = _PHASE_ORDER.match(group or "")
    if not match:
        return (99, group or "")
    phase = match.group(1)
    rank = -2 if phase == "m" else -1 if phase == "0" else int(phase)
    return (rank, group)


def _cell(text: str) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ").strip()


def _first_sentence(text: str, limit: int = 160) -> str:
    text = " ".join((text or "").split())
    cut = re.split(r"(?<=[.;])\s", text, maxsplit=1)[0]
    return cut if len(cut) <= limit else cut[: limit - 1].rstrip() + "…"


def topo_order(entries: Sequence[AssetEntry]) -> list[AssetEntry]:
    """Upstream before downstream (ties by key), so each group reads in plan order."""
    by_key = {e.key: e for e in entries}
    done: set[str] = set()
    out: list[AssetEntry] = []

    def visit(entry: AssetEntry, trail: frozenset[str]) -> None:
        if entry.key in done or entry.key in trail:
            return
        for dep in sorted(entry.deps):
            if dep in by_key:
                visit(by_key[dep], trail | {entry.key})
        done.add(entry.key)
        out.append(entry)

    for entry in sorted(entries, key=lambda e: e.key):
        visit(entry, frozenset())
    return out


def render_catalogue(entries: Iterable[AssetEntry], profile_note: str = "") -> str:
    entries = list(entries)
    groups: dict[str, list[AssetEntry]] = {}
    for entry in topo_order(entries):
        groups.setdefault(entry.group, []).append(entry)
    # Plan phase first, then the order in which the graph reaches each group.
    first_seen = {g: i for i, g in enumerate(groups)}
    ordered = sorted(groups, key=lambda g: (group_sort_key(g)[0], first_seen[g]))
    n_checks = sum(len(e.checks) for e in entries)
    n_blocking = sum(c.blocking for e in entries for c in e.checks)
    lines = [
        "# Asset catalogue",
        "",
        f"Generated from the Definitions by `{REGENERATE}`; do not edit by hand "
        "(a test fails when this file is stale).",
        "",
        f"{len(entries)} assets in {len(groups)} groups, {n_checks} checks ({n_blocking} blocking gates). "
        "Files are paths under the profile's data root (`BURNQED_DATA_ROOT`, default `data/profiles/<profile>/`). "
        "GPU assets carry `burnqed/resource: gpu` (one at a time under the multiprocess executor).",
    ]
    if profile_note:
        lines += ["", profile_note]
    lines += ["", "## Overview", "", "| group | asset | plan task | files written | checks (blocking) |", "|---|---|---|---|---|"]
    for group in ordered:
        for e in groups[group]:
            tasks = ", ".join(plan_tasks(e.description)) or "–"
            files = "<br>".join(f"`{f}`" for f in e.files) or "–"
            blocking = sum(c.blocking for c in e.checks)
            checks = f"{len(e.checks)} ({blocking})" if e.checks else "–"
            gpu = " (GPU)" if e.gpu else ""
            lines.append(f"| {group} | [`{e.key}`](#{e.key}){gpu} | {tasks} | {files} | {checks} |")
    for group in ordered:
        lines += ["", f"## {group}"]
        for e in groups[group]:
            lines += ["", f"### {e.key}", ""]
            lines.append(_cell(e.description) or "_no description_")
            lines.append("")
            facts = [f"- plan task: {', '.join(plan_tasks(e.description)) or '–'}"]
            facts.append(f"- upstream: {', '.join(f'`{d}`' for d in sorted(e.deps)) or '– (reads raw inputs)'}")
            facts.append(f"- files written: {', '.join(f'`{f}`' for f in e.files) or '– (see description)'}")
            if e.gpu:
                facts.append("- runs on the GPU (`burnqed/resource: gpu`)")
            if e.automation:
                facts.append(f"- automation condition: `{e.automation}`")
            lines += facts
            if e.checks:
                lines += ["", "| check | kind | what it asserts |", "|---|---|---|"]
                for c in sorted(e.checks, key=lambda c: (not c.blocking, c.name)):
                    kind = "blocking gate (ERROR)" if c.blocking else "metric / warning"
                    lines.append(f"| `{c.name}` | {kind} | {_cell(_first_sentence(c.description, 220))} |")
    return "\n".join(lines) + "\n"
