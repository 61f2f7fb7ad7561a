"""One place for the data layout: only burnqed_assets/paths.py joins literal names onto paths.

A module that writes `settings.paths.sft / "train.jsonl"` (or `root / f"iter_{n}"`) repeats a fact
that paths.py owns; the next layout change would miss it. The exceptions below are formats that
belong to one module (the inside of a HF model directory, of a training checkpoint, of a tracer's
chunk folder, plot files inside a plots folder the caller picked) and paths outside the data root.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "burnqed_assets"
LAYOUT_MODULE = "paths.py"

# module (relative to the package) -> why its literal path joins are its own format
ARTEFACT_INTERNAL = {
    "joint/train.py": "inside a joint-training checkpoint directory (meta.json, adapter.pt, ...)",
    "models/loading.py": "inside a Hugging Face model directory (config.json, tokenizer files)",
    "models/merge.py": "inside a Hugging Face model directory (adapter_config.json, provenance)",
    "models/demo_model.py": "inside a Hugging Face model directory (build provenance)",
    "models/sft.py": "inside a Hugging Face model directory (config.json fingerprint)",
    "lean/tracing.py": "chunk files inside the tracer's own checkpoint folder",
    "lean/migration.py": "chunk result files and done markers inside the migration's own checkpoint folder",
    "defs/code_versions.py": "the package's own source files (outside the data root)",
    "lean/lake_project.py": "inside the migrated Lake project (lakefile, toolchain, modules, manifest)",
    "lean/launcher.py": "the elan and Lake layouts the sandbox exposes (~/.elan/bin, <project>/.lake) and its own temp dir",
    "data/exploration.py": "plot files inside the plots folder the caller passes",
    "reports/embedding_plots.py": "plot files inside the plots folder the caller passes",
}
# A module-level name bound to a bare file name is a layout fact too: it belongs in paths.py.
FILE_NAME = re.compile(r"^[\w.-]+\.(json|jsonl|parquet|pt|png|md|lean|csv|npy|safetensors)$")


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).as_posix() != LAYOUT_MODULE)


def _is_literal(node: ast.AST) -> bool:
    return (isinstance(node, ast.Constant) and isinstance(node.value, str)) or isinstance(node, ast.JoinedStr)


def literal_path_joins(source: str) -> list[tuple[int, str]]:
    """(line, expression) of every `x / "literal"` or `x / f"..."` in the source."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and \
                (_is_literal(node.right) or _is_literal(node.left)):
            out.append((node.lineno, ast.unparse(node)))
    return out


def file_name_constants(source: str) -> list[tuple[int, str]]:
    out = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, str) and FILE_NAME.match(node.value.value):
            out.append((node.lineno, ast.unparse(node)))
    return out


def test_detector_finds_literal_joins():
    # the scan itself must catch the shapes it forbids, or the test below could never fail
    src = 'a = settings.paths.sft / "train.jsonl"\nb = root / f"iter_{n}" / name\nc = p / NAME\nX = "stats.json"\n'
    assert [line for line, _ in literal_path_joins(src)] == [1, 2]
    assert [line for line, _ in file_name_constants(src)] == [4]


@pytest.mark.parametrize("module", _modules(), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_no_path_built_from_literals_outside_paths_py(module: Path):
    rel = module.relative_to(PACKAGE).as_posix()
    source = module.read_text(encoding="utf-8")
    constants = file_name_constants(source)
    assert not constants, f"{rel}: file names belong in burnqed_assets/paths.py: {constants}"
    if rel in ARTEFACT_INTERNAL:
        return
    joins = literal_path_joins(source)
    assert not joins, (f"{rel} builds paths from string literals {joins}; add the path to "
                       "burnqed_assets/paths.Paths (or a constant there) and use it")


def test_allowlist_is_current():
    # an exception that no longer joins literals must go, so the list cannot rot into a loophole
    for rel in ARTEFACT_INTERNAL:
        source = (PACKAGE / rel).read_text(encoding="utf-8")
        assert literal_path_joins(source), f"{rel} no longer needs its exception; remove it"
