"""The release bundle reads the same from any data root (CI compares runs from two roots)."""

from __future__ import annotations

import json

from burnqed_assets.data.release import build_release


def _bundle(root):
    lean_dir = root / "lean" / "proofs"
    lean_dir.mkdir(parents=True)
    (lean_dir / "t1.lean").write_text("theorem t1 : 1 = 1 := by rfl\n", encoding="utf-8")
    pairs = root / "traced" / "clean.jsonl"
    pairs.parent.mkdir(parents=True)
    pairs.write_text(json.dumps({"theorem": "t1", "state": "⊢ 1 = 1", "tactic": "rfl", "state_after": "no goals",
                                 "depth": 0, "source": "goedel_workbook"}) + "\n", encoding="utf-8")
    build_release(root / "release", pairs, {"dropped_theorems": []}, "v4.27.0", "demo", lean_dir=lean_dir)
    return root / "release"


def test_bundle_names_its_proofs_relative_to_itself(tmp_path):
    a, b = _bundle(tmp_path / "root-a"), _bundle(tmp_path / "a-much-longer-root-b")
    changelog = (a / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "1 migrated .lean files under ../lean/proofs" in changelog and str(tmp_path) not in changelog
    assert changelog == (b / "CHANGELOG.md").read_text(encoding="utf-8")
    assert (a / "manifest.json").read_text(encoding="utf-8") == (b / "manifest.json").read_text(encoding="utf-8")
