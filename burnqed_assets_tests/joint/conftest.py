"""Fixtures for the joint tests (builders live in joint_fixtures.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from joint_fixtures import (
    build_tiny_model,
    build_tiny_tokenizer,
    make_sft_records,
    make_trajectory_rows,
)

from burnqed_assets.data.schema import trajectory_table
from burnqed_assets.ebm.head import GoalConditionedEnergyHead, save_head
from burnqed_assets.settings import get_settings


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("joint_base") / "tiny-llama"
    tokenizer = build_tiny_tokenizer()
    build_tiny_model(tokenizer).save_pretrained(str(dest))
    tokenizer.save_pretrained(str(dest))
    return dest


@pytest.fixture()
def joint_files(tmp_path) -> tuple[Path, Path]:
    sft = tmp_path / "sft" / "train.jsonl"
    sft.parent.mkdir(parents=True)
    sft.write_text("".join(json.dumps(r) + "\n" for r in make_sft_records()), encoding="utf-8")
    traj = tmp_path / "trajectories" / "search_iter0.parquet"
    traj.parent.mkdir(parents=True)
    pq.write_table(trajectory_table(make_trajectory_rows()), traj)
    return sft, traj


@pytest.fixture(autouse=True)
def single_torch_thread():
    """Tiny models run faster on one thread, and the shared 2-core machine is oversubscribed."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def data_root(tmp_path, tiny_model_dir):
    s = get_settings("demo", tmp_path)
    shutil.copytree(tiny_model_dir, s.model.base_model_path)
    s.paths.sft.mkdir(parents=True)
    (s.paths.sft / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in make_sft_records()))
    s.paths.trajectories.mkdir(parents=True)
    pq.write_table(trajectory_table(make_trajectory_rows()), s.paths.trajectories / "search_iter0.parquet")
    # An iter-0 head with a small shape: the joint head must copy it (Gotcha 7).
    save_head(GoalConditionedEnergyHead(d_model=32, hidden_dims=(24, 12)), str(s.paths.ebm_checkpoint(0)))
    return tmp_path
