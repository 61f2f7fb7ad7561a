"""Phase M.6–M.8: clean_pool (integrity sweep), token_geometry, exploration_report."""
# No `from __future__ import annotations` in defs/: Dagster inspects the context annotation.

import dagster as dg

from burnqed_assets.data.exploration import explore, plot_exploration
from burnqed_assets.data.integrity import build_clean_pool
from burnqed_assets.data.io import read_json, write_json
from burnqed_assets.data.token_geometry import geometry, measure, plot_lengths
from burnqed_assets.defs.checks import gate, target
from burnqed_assets.defs.inputs import raw_inputs
from burnqed_assets.reports.plots import png_markdown
from burnqed_assets.resources import BurnqedConfig

GROUP = "phase_m_exploration"


def _examples(lines: list[str], n: int = 5) -> str:
    return "; ".join(lines[:n])


@dg.asset(group_name=GROUP, deps=["goedel_traced_pairs"],
          description="Task M.6 integrity sweep: drops contaminated theorems, malformed and duplicate pairs; "
          "writes the clean pool (data/traced/goedel_427_clean_pairs.jsonl) and clean_pool_report.json.")
def clean_pool(context: dg.AssetExecutionContext, burnqed: BurnqedConfig) -> dg.MaterializeResult:
    settings = burnqed.settings()
    src, dest = settings.paths.goedel_traced_pairs, settings.paths.clean_pairs
    result = build_clean_pool(src, dest)
    report = result.as_dict()
    write_json(settings.paths.clean_pool_report, report)
    for line in result.bad_line_examples:
        context.log.warning(f"unreadable traced line: {line}")
    context.log.info(f"clean pool: {result.clean_pairs}/{result.traced_pairs} pairs, "
                     f"{result.clean_theorems}/{result.traced_theorems} theorems")
    return dg.MaterializeResult(metadata={
        "path": str(dest),
        "report_path": str(settings.paths.clean_pool_report),
        "traced_pairs": result.traced_pairs,
        "traced_theorems": result.traced_theorems,
        "clean_pairs": result.clean_pairs,
        "clean_theorems": result.clean_theorems,
        "clean_fraction": float(round(result.clean_fraction, 4)),
        "contaminated_pairs": result.contaminated_pairs,
        "contaminated_theorems": result.contaminated_theorems,
        "malformed_states": result.malformed_pairs,
        "malformed_by_reason": dg.MetadataValue.json(result.malformed),
        "duplicate_pairs": result.duplicate_pairs,
        "bad_lines": result.bad_lines,
        "bad_line_examples": dg.MetadataValue.json(result.bad_line_examples),
        "suspicious_axiom_mentions": dg.MetadataValue.json(result.suspicious_axiom_mentions),
        "dropped_theorems": len(result.dropped_theorems),
        "examples": dg.MetadataValue.json(
            result.contamination_examples[:5] + result.malformed_examples[:5] + result.duplicate_examples[:5]),
    })


@dg.asset_check(asset=clean_pool, blocking=True,
                description="ABORT gate (M.6/0.4): zero sorry/admit/cheat/sorryAx pairs in the traced output.")
def clean_pool_contamination(burnqed: BurnqedConfig) -> dg.AssetCheckResult:
    settings = burnqed.settings()
    r = read_json(settings.paths.clean_pool_report)
    limit = settings.thresholds.max_contaminated_pairs
    n = int(r["contaminated_pairs"])
    desc = (f"{n} contaminated pairs ({r['contaminated_theorems']} theorems), limit {limit}"
            + (f": {_examples(r['contamination_examples'])}" if n else ""))
    return gate(n <= limit, desc, contaminated_pairs=n, contaminated_theorems=int(r["contaminated_theorems"]),
                examples=dg.MetadataValue.json(r["contamination_examples"]))


@dg.asset_check(asset=clean_pool, blocking=True,
                description="ABORT gate (M.6): the clean pool keeps >= min_clean_pool_fraction of the traced pairs.")
def clean_pool_survival(burnqed: BurnqedConfig) -> dg.AssetCheckResult:
    settings = burnqed.settings()
    r = read_json(settings.paths.clean_pool_report)
    need = settings.thresholds.min_clean_pool_fraction
    frac = float(r["clean_fraction"])
    desc = (f"clean pool {r['clean_pairs']}/{r['traced_pairs']} pairs = {frac:.1%} (need >= {need:.0%}); "
            f"malformed {r['malformed_states']}, duplicates {r['duplicate_pairs']}, unreadable {r['bad_lines']}")
    if frac < need:
        desc += ": " + _examples(r["malformed_examples"] + r["bad_line_examples"] + r["duplicate_examples"])
    return gate(frac >= need, desc, clean_fraction=frac, threshold=need)


@dg.asset_check(asset=clean_pool, blocking=True,
                description="Gate: every line of the traced pairs file is a readable pair (bad lines named file:line). "
                "A broken line is a record the tracer lost; it is never dropped silently.")
def traced_lines_readable(burnqed: BurnqedConfig) -> dg.AssetCheckResult:
    r = read_json(burnqed.settings().paths.clean_pool_report)
    n = int(r["bad_lines"])
    desc = f"{n} unreadable traced line(s)" + (f": {_examples(r['bad_line_examples'])}" if n else "")
    return gate(n == 0, desc, bad_lines=n, examples=dg.MetadataValue.json(r["bad_line_examples"]))


@dg.asset(group_name=GROUP, deps=["clean_pool", "base_model"],
          description="Task M.7 token geometry of the clean pool with the profile model's tokenizer: "
          "percentiles, state:tactic ratio, truncation table, recommended SFT / encode max lengths.")
def token_geometry(context: dg.AssetExecutionContext, burnqed: BurnqedConfig) -> dg.MaterializeResult:
    from burnqed_assets.models.loading import load_tokenizer

    settings = burnqed.settings()
    tok = load_tokenizer(settings.model.base_model_path, settings.model.how_to_obtain)
    lengths = measure(settings.paths.clean_pairs, tok)
    d = settings.data
    geo = geometry(lengths, tok, d.token_length_percentiles, d.sft_max_length_candidates,
                   d.encode_max_length_candidates, d.truncation_budget)
    write_json(settings.paths.token_geometry,
               {**geo.as_dict(), "tokenizer": str(settings.model.base_model_path), "profile": settings.profile})
    plot = plot_lengths(lengths, settings.paths.token_lengths_plot)
    return dg.MaterializeResult(metadata={
        "path": str(settings.paths.token_geometry),
        "num_pairs": geo.num_pairs,
        "recommended_sft_max_length": geo.recommended_sft_max_length,
        "recommended_encode_max_length": geo.recommended_encode_max_length,
        "state_p95": geo.state_tokens["p95"],
        "full_p95": geo.full_tokens["p95"],
        "state_tactic_ratio_median": geo.state_tactic_ratio["median"],
        "truncation": dg.MetadataValue.json(geo.truncation),
        "token_lengths": dg.MetadataValue.md(png_markdown(plot, "Token lengths")),
    })


@dg.asset_check(asset=token_geometry, description="Target: a candidate SFT max_length truncates < truncation_budget.")
def token_geometry_within_budget(burnqed: BurnqedConfig) -> dg.AssetCheckResult:
    settings = burnqed.settings()
    geo = read_json(settings.paths.token_geometry)
    ok = bool(geo["sft_max_length_within_budget"]) and bool(geo["encode_max_length_within_budget"])
    return target(ok, f"SFT max_length {geo['recommended_sft_max_length']}, encode max_length "
                      f"{geo['recommended_encode_max_length']} (budget {geo['truncation_budget']:.0%})",
                  recommended_sft_max_length=geo["recommended_sft_max_length"],
                  recommended_encode_max_length=geo["recommended_encode_max_length"])


@dg.asset(group_name=GROUP, deps=["clean_pool", *raw_inputs("goedel_proofs")],
          description="Task M.8: proof lengths, depth buckets, contrastive-eligible count, top-30 tactics, "
          "top5/top10 share, import surface; histograms under data/traced/exploration_plots.")
def exploration_report(context: dg.AssetExecutionContext, burnqed: BurnqedConfig) -> dg.MaterializeResult:
    settings = burnqed.settings()
    report_path = settings.paths.clean_pool_report
    pool_report = read_json(report_path) if report_path.exists() else None
    mig = settings.paths.migration
    proofs = [p for p in (mig.proofs, settings.inputs.goedel_proofs.path) if p.is_file()]
    report = explore(
        settings.paths.clean_pairs, pool_report, lean_dirs=[mig.lean], proof_jsonl=proofs,
        contrastive_min_depth=settings.data.contrastive_min_depth,
        contrastive_min_theorems=settings.data.contrastive_min_theorems)
    write_json(settings.paths.exploration_report, {**report.as_dict(), "profile": settings.profile})
    plots = plot_exploration(report, settings.paths.exploration_plots)
    top = report.top_30_tactics[:10]
    table = "| tactic | count | share |\n|---|---|---|\n" + "\n".join(
        f"| `{t['tactic']}` | {t['count']} | {t['share']:.1%} |" for t in top)
    return dg.MaterializeResult(metadata={
        "path": str(settings.paths.exploration_report),
        "clean_theorems": report.clean_theorems,
        "clean_pairs": report.clean_pairs,
        "contrastive_eligible": report.contrastive_eligible,
        "depth_distribution": dg.MetadataValue.json(report.depth_distribution),
        "top5_tactic_share": float(report.top5_tactic_share),
        "top10_tactic_share": float(report.top10_tactic_share),
        "unique_tactic_names": report.unique_tactic_names,
        "unique_import_paths": report.unique_import_paths,
        "import_source": report.import_source,
        "top_tactics": dg.MetadataValue.md(table),
        "proof_length_plot": dg.MetadataValue.md(png_markdown(plots["proof_length"], "Proof length")),
        "depth_plot": dg.MetadataValue.md(png_markdown(plots["depth"], "Max depth per theorem")),
        "tactics_plot": dg.MetadataValue.md(png_markdown(plots["tactics"], "Top tactics")),
    })


@dg.asset_check(asset=exploration_report,
                description="Success metric (M.8): top-5 tactics cover <= max_top5_tactic_share of pairs.")
def tactic_concentration(burnqed: BurnqedConfig) -> dg.AssetCheckResult:
    settings = burnqed.settings()
    r = read_json(settings.paths.exploration_report)
    share, limit = float(r["top5_tactic_share"]), settings.thresholds.max_top5_tactic_share
    return target(share <= limit, f"top-5 tactic share {share:.1%} (WARN above {limit:.0%}: the LEAN-GitHub merge "
                                  "matters for diversity)", top5_tactic_share=share, threshold=limit)


defs = dg.Definitions(
    assets=[clean_pool, token_geometry, exploration_report],
    asset_checks=[clean_pool_contamination, clean_pool_survival, traced_lines_readable,
                  token_geometry_within_budget, tactic_concentration],
)
