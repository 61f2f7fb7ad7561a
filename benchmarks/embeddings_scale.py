"""Benchmark: embeddings at plan scale (1.6M states x 4096 dims), the store vs the old Parquet path.

    python benchmarks/embeddings_scale.py                           # N = 1.6M, baseline at 50K
    python benchmarks/embeddings_scale.py --n 200000 --baseline-n 20000   # quick

What runs, each stage in its own subprocess (its peak RSS = ru_maxrss of that process, which
counts mapped file pages too):
  generate  synthetic search trajectories (~50 states per theorem, trees with 2-8 children per
            expansion, 40 % of theorems proved: proof path positive, its siblings negative, the
            rest negative or unknown), not part of any timing below
  write     extraction-style writing: `ebm.embed.extract_embeddings` over the trajectories with a
            synthetic encoder (theorem direction + label direction + per-text noise, d dims), so
            the real chunking, dedup, fingerprint, goal rows and writer run; the encoder is cheap
  load      `load_embedded_trajectories` (trajectories, fingerprint check, join, the matrices)
  metrics   `embedding_metrics_from_files` with the full profile's settings, plots included
  ebm_metrics  `ebm_metrics_from_files` for a plan-size head (d -> d/2 -> d/4 -> d/8 -> 1, random
            weights, seeded) on the validation theorems (10 %), on CPU
  ebm_epoch one epoch of `train_decoupled_ebm` on CPU at the plan's head size and settings (batch
            32, K=7, hard ratio 0.6) over a seeded subset of the training theorems (the full set
            stays loaded and every batch is paged from it); validation on a seeded subset of the
            validation theorems. A full epoch over 1.6M states is ~10^4 batches of ~43 GFLOP each:
            hours on 2 cores, minutes on a GPU; the subset sizes are printed.
The new path runs at --n first. Then the old path, the code of OLD_COMMIT (list<float32> Parquet,
combine_chunks, states moved to the device whole) loaded from git history, and the new path run on
the same synthetic data at --baseline-n, and the ratios compare those two.
Data lives under --workdir and is deleted at the end (unless --keep).

Measured 2026-11-28, defaults at 1.6M x 4096 with --baseline-n 20000, 2-core VM, load 1.0-3.0:
write 106 s / 0.99 GB, load 4 s / 1.75 GB, embedding metrics 109 s / 3.07 GB, EBM metrics (20K
sampled states) 13 s / 1.97 GB, EBM epoch (160 theorems, 5 batches) 10 s / 2.12 GB; whole run
442 s. Table and the old-vs-new ratios: docs/models.md "Embeddings at plan scale".
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

OLD_COMMIT = "d3ed10c"  # main before the store: list<float32> Parquet embeddings
OLD_FILES = {"dataset": "burnqed_assets/ebm/dataset.py", "embed": "burnqed_assets/ebm/embed.py",
             "metrics": "burnqed_assets/ebm/metrics.py", "train": "burnqed_assets/ebm/train.py",
             "embedding_plots": "burnqed_assets/reports/embedding_plots.py"}
STAGES = ("write", "load", "metrics", "ebm_metrics", "ebm_epoch")
SEED = 0


# ----------------------------------------------------------------------------- data

def generate_trajectories(path: Path, n: int, seed: int = SEED) -> dict[str, int]:
    """About n trajectory rows (whole theorems of ~50 states) in TRAJECTORY_SCHEMA."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from burnqed_assets.data.schema import TRAJECTORY_SCHEMA

    rng = np.random.default_rng(seed)
    cols: dict[str, list] = {f.name: [] for f in TRAJECTORY_SCHEMA}
    writer = pq.ParquetWriter(path, TRAJECTORY_SCHEMA)
    rows = theorems = 0
    hyps = [f"h{k} : x{k} + {k % 7 + 1} ≤ y{k} * {k % 5 + 2}" for k in range(64)]

    def flush() -> None:
        writer.write_table(pa.table(cols, schema=TRAJECTORY_SCHEMA))
        for v in cols.values():
            v.clear()

    while rows < n:
        t, size = theorems, int(min(rng.integers(30, 71), n - rows))
        parent = [-1]
        depth = [0]
        frontier = [0]
        while len(parent) < size:
            node = frontier.pop(int(rng.integers(max(0, len(frontier) - 3), len(frontier))))
            for _ in range(int(min(rng.integers(2, 9), size - len(parent)))):
                parent.append(node)
                depth.append(depth[node] + 1)
                frontier.append(len(parent) - 1)
            if not frontier:
                frontier = [len(parent) - 1]
        proved = bool(rng.random() < 0.4)
        children: dict[int, list[int]] = {}
        for i, p in enumerate(parent):
            children.setdefault(p, []).append(i)
        path, node = {0}, 0
        while node in children:  # first child down to a leaf
            node = children[node][0]
            path.add(node)
        expanded = set(children)
        for i in range(size):
            if proved and i in path:
                label = "positive"
            elif i in expanded or i in path or rng.random() < 0.5:
                label = "negative"
            else:
                label = "unknown"
            text = (f"case t{t}.n{i}.{label[0]}\na b : ℝ\n" + "\n".join(hyps[(t + i + k) % 64] for k in range(4))
                    + f"\n⊢ a ^ 2 + b ^ 2 ≥ {t % 9 + 1} * a * b + {depth[i]}")
            for key, value in (("theorem", f"goedel::synthetic_{t}"), ("state_id", i), ("parent_id", parent[i]),
                               ("state_pp", text), ("tactic", "" if i == 0 else "nlinarith"), ("depth", depth[i]),
                               ("llm_logprob", -1.0), ("cumulative_logprob", -float(depth[i])), ("energy", None),
                               ("label", label), ("sibling_group", parent[i]), ("proved", proved),
                               ("expanded", i in expanded), ("elapsed_s", 0.1 * i)):
                cols[key].append(value)
        rows += size
        theorems += 1
        if len(cols["theorem"]) >= 200_000:
            flush()
    flush()
    writer.close()
    return {"rows": rows, "theorems": theorems}


TAG = re.compile(r"case t(\d+)\.n(\d+)\.(\w)")


def synthetic_encoder(d: int, seed: int = SEED, pool_rows: int = 4096):
    """texts -> (n, d) float32: a theorem direction + a label direction + per-text noise.

    Cheap on purpose (the benchmark measures the writer, not a 7B encoder): noise is the sum of two
    rows of a fixed random pool picked by hashes of the text, the theorem direction a pool row too."""
    rng = np.random.default_rng(seed)
    pool = rng.standard_normal((pool_rows, d), dtype=np.float32)
    label_dir = rng.standard_normal(d).astype(np.float32)
    label_dir /= np.linalg.norm(label_dir)  # a unit direction: separable only in part, as real states are
    label_weight = {"p": 1.5, "n": -0.5, "u": 0.0}

    def encode(texts):
        tags = [TAG.match(t).groups() for t in texts]
        theorem = np.array([int(a) for a, _, _ in tags], dtype=np.int64)
        node = np.array([int(b) for _, b, _ in tags], dtype=np.int64)
        a = (theorem * 7919 + node * 104_729 + 1) % pool_rows
        b = (theorem * 15_485_863 + node * 32_452_843 + 7) % pool_rows
        out = pool[a] + 0.7 * pool[b] + 1.5 * pool[(theorem * 2_654_435_761) % pool_rows]
        out += np.array([label_weight[c] for _, _, c in tags], dtype=np.float32)[:, None] * label_dir
        return out

    return encode


# ----------------------------------------------------------------------------- the two implementations

def old_package(workdir: Path) -> Path:
    """OLD_COMMIT's embedding code as the package `old_ebm` under workdir (imports rewritten)."""
    pkg = workdir / "_old" / "old_ebm"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text("")
    for name, path in OLD_FILES.items():
        src = subprocess.run(["git", "-C", str(REPO), "show", f"{OLD_COMMIT}:{path}"], check=True,
                             capture_output=True, text=True).stdout
        for other, other_path in OLD_FILES.items():
            src = src.replace(other_path[:-3].replace("/", "."), f"old_ebm.{other}")
        src = src.replace("from burnqed_assets.data.schema import GOAL_EMBEDDING_SCHEMA, STATE_EMBEDDING_SCHEMA",
                          "import pyarrow as _pa\nSTATE_EMBEDDING_SCHEMA = _pa.schema([('theorem', _pa.string()), "
                          "('state_id', _pa.int64()), ('embedding', _pa.list_(_pa.float32()))])\n"
                          "GOAL_EMBEDDING_SCHEMA = _pa.schema([('theorem', _pa.string()), "
                          "('embedding', _pa.list_(_pa.float32()))])")
        (pkg / f"{name}.py").write_text(src)
    return pkg.parent


def modules(impl: str, workdir: Path):
    if impl == "old":
        sys.path.insert(0, str(old_package(workdir)))
        from old_ebm import dataset, embed, metrics, train  # type: ignore[import-not-found]
    else:
        from burnqed_assets.ebm import dataset, embed, metrics, train
    return dataset, embed, metrics, train


def theorem_subset(names: set[str], count: int, seed: int) -> set[str]:
    ordered = sorted(names)
    pick = np.random.default_rng(seed).choice(len(ordered), size=min(count, len(ordered)), replace=False)
    return {ordered[i] for i in pick}


def run_stage(stage: str, impl: str, traj: Path, emb: Path, workdir: Path, d: int, args) -> dict:
    """One stage in this process; returns what it did (timings are taken around it)."""
    import torch

    from burnqed_assets.ebm.config import EbmConfig

    dataset, embed, metrics, train = modules(impl, workdir)
    e = EbmConfig()  # the full profile's EBM settings
    if stage == "write":
        kwargs = {"dtype": e.embedding_dtype} if impl == "new" else {}
        encoder, encoder_seconds = synthetic_encoder(d), [0.0]

        def timed(texts):
            t0 = time.perf_counter()
            out = encoder(texts)
            encoder_seconds[0] += time.perf_counter() - t0
            return out

        summary = embed.extract_embeddings(traj, emb, timed, batch_size=512, progress=lambda _: None, **kwargs)
        size = sum(p.stat().st_size for p in emb.iterdir())
        return {"rows": summary.state_rows, "goals": summary.goals, "bytes_on_disk": size,
                "synthetic_encoder_s": round(encoder_seconds[0], 1)}
    if stage == "load":
        data = dataset.load_embedded_trajectories(traj, emb)
        return {"rows": len(data.frame), "states_type": type(data.states).__name__,
                "states_dtype": str(data.states.dtype)}
    if stage == "metrics":
        params = dict(probe_folds=e.probe_folds, probe_max_samples=e.probe_max_samples,
                      collision_threshold=e.collision_threshold, silhouette_min_states=e.silhouette_min_states,
                      silhouette_sample_size=e.silhouette_sample_size, seed=e.split_seed)
        if impl == "new":
            params["spectrum_sample_size"] = e.spectrum_sample_size
        report, _ = metrics.embedding_metrics_from_files(traj, emb, workdir / f"metrics_{impl}.json",
                                                         plots_dir=workdir / f"plots_{impl}", **params)
        return {"values": {k: (round(v, 6) if isinstance(v, float) else v) for k, v in report.values.items()},
                "sampling": report.details.get("sampling", "old path: exact spectrum, probe/silhouette capped")}
    head_path = workdir / f"head_{d}.pt"
    if stage == "ebm_metrics":
        from burnqed_assets.ebm.head import GoalConditionedEnergyHead, save_head

        torch.manual_seed(SEED)
        save_head(GoalConditionedEnergyHead(d, train.default_hidden_dims(d)), str(head_path))
        report = metrics.ebm_metrics_from_files(traj, emb, head_path, workdir / f"ebm_metrics_{impl}.json",
                                                val_fraction=e.val_fraction, split_seed=e.split_seed,
                                                k_negatives=e.k_negatives, hard_ratio=e.hard_ratio,
                                                margin=e.active_margin, seed=e.split_seed,
                                                **({"max_val_states": args.ebm_metrics_max_states}
                                                   if impl == "new" else {}))
        return {"val_states_scored": report.counts["states"], "val_theorems": report.counts["val_theorems"],
                "sampling": report.details.get("sampling", "old path: every validation state"),
                "rank1_accuracy": report.values["rank1_accuracy"]}
    if stage == "ebm_epoch":
        data = dataset.load_embedded_trajectories(traj, emb)
        train_all, val_all = dataset.theorem_split(data.frame, e.val_fraction, e.split_seed)
        train_set = theorem_subset(train_all, args.epoch_train_theorems, SEED)
        val_set = theorem_subset(val_all, args.epoch_val_theorems, SEED + 1)
        if impl == "old":  # OLD_COMMIT's own config class, built from the same settings
            config = train.EbmTrainConfig.from_ebm_settings(e, device="cpu")
            config = type(config)(**{**config.__dict__, "epochs": 1})
        else:
            config = replace(e, epochs=1, device="cpu")
        result = train.train_decoupled_ebm(data, train_set, val_set, config, progress=lambda _: None)
        batches = -(-result.train_positives // config.batch_size)
        return {"train_theorems": len(train_set), "of_train_theorems": len(train_all), "val_theorems": len(val_set),
                "train_positives": result.train_positives, "batches": batches, "batch_size": config.batch_size,
                "k_negatives": config.k_negatives, "hidden_dims": list(result.head.hidden_dims),
                "loss": round(result.history[0]["loss"], 4), "states_loaded": len(data.frame)}
    raise ValueError(stage)


def child(args) -> None:
    __import__("torch")  # imports are not part of a stage's time
    modules(args.impl, Path(args.workdir))
    started = time.perf_counter()
    info = run_stage(args.stage, args.impl, Path(args.traj), Path(args.emb), Path(args.workdir), args.d, args)
    seconds = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print("RESULT " + json.dumps({"seconds": seconds, "peak_rss_gb": peak_kb / 2**20, "info": info}))


def spawn(stage: str, impl: str, traj: Path, emb: Path, workdir: Path, args) -> dict:
    cmd = [sys.executable, __file__, "--stage", stage, "--impl", impl, "--traj", str(traj), "--emb", str(emb),
           "--workdir", str(workdir), "--d", str(args.d), "--epoch-train-theorems", str(args.epoch_train_theorems),
           "--epoch-val-theorems", str(args.epoch_val_theorems),
           "--ebm-metrics-max-states", str(args.ebm_metrics_max_states)]
    load_before = os.getloadavg()[0]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        return {"failed": True, "returncode": proc.returncode, "stderr_tail": proc.stderr[-1500:],
                "load_before": load_before, "load_after": os.getloadavg()[0]}
    out = json.loads(lines[-1][len("RESULT "):])
    out.update(load_before=load_before, load_after=os.getloadavg()[0])
    return out


# ----------------------------------------------------------------------------- driver

def run_path(label: str, impl: str, n: int, workdir: Path, args, results: dict) -> None:
    traj = workdir / f"trajectories_{n}.parquet"
    if not traj.exists():
        started = time.perf_counter()
        counts = generate_trajectories(traj, n)
        print(f"[{label}] generated {counts['rows']} trajectory rows, {counts['theorems']} theorems "
              f"in {time.perf_counter() - started:.1f}s", flush=True)
    emb = workdir / f"emb_{impl}_{n}"
    for stage in [s for s in STAGES if s in args.stages.split(",")]:
        r = spawn(stage, impl, traj, emb, workdir, args)
        results[(label, stage)] = r
        if r.get("failed"):
            print(f"[{label}] {stage}: FAILED rc={r['returncode']}\n{r['stderr_tail']}", flush=True)
            if stage in ("write", "load"):
                break
            continue
        print(f"[{label}] {stage:12s} {r['seconds']:8.1f} s  peak RSS {r['peak_rss_gb']:6.2f} GB  "
              f"load {r['load_before']:.1f}->{r['load_after']:.1f}  {json.dumps(r['info'])}", flush=True)
    shutil.rmtree(emb, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_600_000)
    ap.add_argument("--d", type=int, default=4096)
    ap.add_argument("--baseline-n", type=int, default=50_000, help="size for the old-vs-new comparison (0: skip)")
    ap.add_argument("--epoch-train-theorems", type=int, default=160,
                    help="training theorems in the benchmark's EBM epoch (seeded subset)")
    ap.add_argument("--epoch-val-theorems", type=int, default=40)
    ap.add_argument("--ebm-metrics-max-states", type=int, default=20_000,
                    help="EBM metrics on a seeded sample of whole validation theorems of about this many states "
                         "(0: all; on 2 CPU cores the plan head scores ~10^3 states/s)")
    ap.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset of " + ",".join(STAGES)
                    + " (the later ones need write)")
    ap.add_argument("--workdir", default="/tmp/burnqed_embeddings_scale")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--stage", choices=STAGES)
    ap.add_argument("--impl", choices=("new", "old"), default="new")
    ap.add_argument("--traj")
    ap.add_argument("--emb")
    args = ap.parse_args()
    if args.stage:
        child(args)
        return
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"embeddings_scale: n={args.n} d={args.d} baseline_n={args.baseline_n} cpus={os.cpu_count()} "
          f"load={os.getloadavg()} workdir={workdir}", flush=True)
    results: dict = {}
    started = time.perf_counter()
    try:
        run_path("new@n", "new", args.n, workdir, args, results)  # the plan-scale numbers first
        staged = [r for (label, _), r in results.items() if label == "new@n" and not r.get("failed")]
        if staged:
            print(f"\nnew@n={args.n}: stage time {sum(r['seconds'] for r in staged):.1f} s, "
                  f"max peak RSS {max(r['peak_rss_gb'] for r in staged):.2f} GB\n", flush=True)
        if args.baseline_n:
            run_path("old@baseline", "old", args.baseline_n, workdir, args, results)
            run_path("new@baseline", "new", args.baseline_n, workdir, args, results)
            print(f"\nnew vs old at baseline n={args.baseline_n} (time ratio old/new, peak RSS old -> new):")
            for stage in STAGES:
                old, new = results.get(("old@baseline", stage)), results.get(("new@baseline", stage))
                if old and new and not old.get("failed") and not new.get("failed"):
                    print(f"  {stage:12s} time {old['seconds']:.1f}/{new['seconds']:.1f} s = "
                          f"{old['seconds'] / new['seconds']:.2f}x   peak RSS {old['peak_rss_gb']:.2f} -> "
                          f"{new['peak_rss_gb']:.2f} GB ({old['peak_rss_gb'] / new['peak_rss_gb']:.2f}x)")
    finally:
        print(f"total wall time {time.perf_counter() - started:.1f} s, load now {os.getloadavg()}")
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
