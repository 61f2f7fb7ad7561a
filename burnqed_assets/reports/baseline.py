"""The iter_0 baseline report (plan Task 2.7): three tables with the plan's old reference columns.

Built only from numbers handed in (asset metadata or the JSON artefacts); a missing number is
shown as "n/a" with its reason, never invented. The report names the profile that made it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# (metric key, row label, old reference, note) — the plan's Task 2.7 tables.
EMBEDDING_ROWS = (
    ("centroid_l2", "centroid_l2", "6.40", "Higher = better"),
    ("linear_probe_acc", "linear_probe_acc", "0.83", ">0.75 is healthy"),
    ("norm_gap", "norm_gap", "4.29", ""),
    ("sibling_collision_rate", "sibling_collision_rate", "0.14", "Lower = better"),
    ("top1_variance_ratio", "top1_variance_ratio", "0.645", "Lower = better spread"),
    ("effective_dimension", "effective_dimension", "", "Higher = more useful dims"),
    ("dual_label_rate", "dual_label_rate", "", "Lower = easier for EBM"),
)
EBM_ROWS = (
    ("rank1_accuracy", "rank1_accuracy (overall)", "0.68 train", "Target: match or beat"),
    ("rank1_d0_1", "rank1_accuracy (d0-1)", "", ""),
    ("rank1_d2_3", "rank1_accuracy (d2-3)", "", ""),
    ("rank1_d4+", "rank1_accuracy (d4+)", "0.35-0.39", "Key metric for search"),
    ("energy_gap", "energy_gap", "", ""),
    ("sibling_discrimination", "sibling_discrimination", "0.13", "Above 0.10 random"),
    ("active_ratio", "active_ratio", "0.31", "Higher = more signal"),
)
SEARCH_ROWS = (("llm_only", "LLM-only", "~35%"), ("llm_ebm", "LLM + GoalCond EBM (decoupled)", "41.7%*"))


def data_section(sft: Mapping[str, Any], pool: Mapping[str, Any], pool_2k: Mapping[str, Any],
                 trajectories: Mapping[str, Any]) -> dict[str, Any]:
    """The report's data rows from the SFT stats, the contrastive pools and the trajectory stats
    (each an upstream asset's metadata or its JSON file; {} when unknown)."""
    data: dict[str, Any] = {}
    if "total_pairs" in sft:
        data["SFT pairs"] = sft["total_pairs"]
    by_source = sft.get("by_source")
    if isinstance(by_source, dict) and by_source:
        counts = {k: (v.get("pairs") if isinstance(v, dict) else v) for k, v in by_source.items()}
        if all(isinstance(v, (int, float)) for v in counts.values()) and sum(counts.values()):
            total = sum(counts.values())
            data["Source breakdown"] = ", ".join(f"{k} {100 * v / total:.1f}%" for k, v in counts.items())
    if "theorems" in pool:
        data["Contrastive theorems"] = pool["theorems"]
    if "selected" in pool_2k:
        data["Contrastive theorems searched (Task 1.3)"] = pool_2k["selected"]
    for key in ("theorems_attempted", "theorems_proved", "total_records", "label_counts", "deep_state_share"):
        if key in trajectories:
            data[f"Trajectories {key}"] = trajectories[key]
    return data


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _value_cell(metrics: Mapping[str, Any], key: str) -> str:
    value = metrics.get(key)
    if value is None:
        reason = (metrics.get("not_available") or {}).get(key)
        return f"n/a ({reason})" if reason else "n/a"
    return _fmt(value)


def render_baseline_report(*, profile: str, data: Mapping[str, Any], embedding: Mapping[str, Any],
                           ebm: Mapping[str, Any], search: Mapping[str, Mapping[str, Any] | None],
                           iteration: int = 0, generated_at: str | None = None,
                           ebm_training: Mapping[str, Any] | None = None) -> str:
    """Markdown of the baseline report. `search` maps llm_only / llm_ebm to {proved, attempted, rate}."""
    # No wall-clock time in the body: the same inputs give the same bytes (the materialization
    # event records when it ran); a caller may still stamp one explicitly.
    when = f" {generated_at}" if generated_at else ""
    lines = [f"# v2 Iter {iteration} Baseline Report", "",
             f"Profile: **{profile}** · generated{when} from asset metadata and the JSON artefacts.", ""]
    if profile != "full":
        lines += [(f"> The `{profile}` profile runs on small shipped samples, a tiny model and a replay Lean backend: "
                  "its numbers test the pipeline and are **not research results**."), ""]
    lines += ["## Data"]
    if data:
        lines += [f"- {k}: {_fmt(v)}" for k, v in data.items()]
    else:
        lines += ["- n/a (no data statistics were available)"]
    lines += ["", "## Embedding Space (frozen, before EBM)",
              "| Metric                    | Value  | Old iter_4 | Notes                    |",
              "|---------------------------|--------|------------|--------------------------|"]
    lines += [f"| {label} | {_value_cell(embedding, key)} | {old} | {note} |" for key, label, old, note in EMBEDDING_ROWS]
    lines += ["", "## EBM (GoalConditioned PyTorch, frozen encoder, decoupled training)",
              "| Metric                    | Value  | Old iter_5 | Notes                    |",
              "|---------------------------|--------|------------|--------------------------|"]
    if ebm_training and ebm_training.get("trained") is False:
        lines.insert(len(lines) - 2, f"**The EBM head was not trained**: {ebm_training.get('untrained_reason')}\n")
    for key, label, old, note in EBM_ROWS:
        cell = _value_cell(ebm, key)
        if key == "energy_gap" and ebm.get(key) is not None:
            cell += f" (std pos {_fmt(ebm.get('energy_std_pos'))}, neg {_fmt(ebm.get('energy_std_neg'))})"
        lines.append(f"| {label} | {cell} | {old} | {note} |")
    chance = ebm.get("sibling_discrimination_chance")
    if isinstance(chance, (int, float)):
        lines.append(f"\nsibling_discrimination counts every child of a parent (unexpanded ones too); "
                     f"chance level on these groups: {_fmt(float(chance))}.")
    lines += ["", "Note: This EBM uses GoalConditionedEnergyHead with E(state, goal),",
              "same architecture as will be used in iter_1 joint training.", "burn-rs EBM is deprecated.", "",
              "## Search (miniF2F v2s test)",
              "| Config                          | Proved | Rate   | Old iter_4 |",
              "|---------------------------------|--------|--------|------------|"]
    for key, label, old in SEARCH_ROWS:
        result = search.get(key) or {}
        if result.get("attempted"):
            proved = f"{result.get('proved')}/{result.get('attempted')}"
            rate = f"{100 * float(result.get('rate', 0.0)):.1f}%"
        else:
            proved, rate = "n/a", "n/a"
        lines.append(f"| {label} | {proved} | {rate} | {old} |")
    lines += ["", "*Old number used context-free burn-rs EBM. Not directly comparable",
              "due to architecture difference, but directionally informative.", ""]
    shown = {key for key, *_ in EMBEDDING_ROWS + EBM_ROWS}
    extra = [(name, source) for source in (embedding, ebm) for name in source
             if name not in shown and isinstance(source.get(name), (int, float)) and not isinstance(source[name], bool)]
    if extra:
        lines += ["## Other metrics", "| Metric | Value |", "|---|---|"]
        lines += [f"| {name} | {_fmt(source[name])} |" for name, source in extra]
        lines.append("")
    for title, source in (("Embedding", embedding), ("EBM", ebm)):
        missing = source.get("not_available") or {}
        if missing:
            lines.append(f"{title} metrics not available: " + "; ".join(f"{k}: {v}" for k, v in missing.items()))
    return "\n".join(lines) + "\n"
