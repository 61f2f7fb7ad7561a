"""Phase functions return dataclasses, not string-keyed bags read back by key.

A domain function that returns `dict[str, Any]` makes every caller spell its keys again
(`info["parameters"]`), and a renamed key fails only at run time, in whichever asset reads it.
So a public function or method of the domain packages below may not be annotated to return a
string-keyed dict (or Mapping) of Any/object, or a bare `dict`, anywhere in its return type
(`tuple[..., dict[str, Any]]` counts), and may not return a dict literal without an annotation.
A field of a public dataclass may not be such a dict either (a result whose `data` is a bag is
read back by key all the same).

Where a dict is the point, the code says so:
- a method of a dataclass named in `SERIALIZERS` is the boundary where typed fields become a
  JSON record or asset metadata (`to_json`, `as_metadata`, ...);
- anything else is listed in `ALLOWED` with the reason (a file's rows, an HTTP body, a torch
  format). Each entry must still exist and still return such a dict (no stale exceptions).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "burnqed_assets"
SCANNED = ("models", "ebm", "joint", "reports", "reuse.py")

# Dataclass methods with these names turn typed fields into plain JSON values at a boundary.
SERIALIZERS = {
    "to_json": "the record written to a JSON file",
    "as_dict": "the record written to a JSON file",
    "as_metadata": "asset metadata: flat plain values",
    "metadata": "asset metadata: flat plain values",
}

# "module:qualified name" -> why it returns a string-keyed dict
ALLOWED = {
    "models/sft.py:load_sft_records": "rows of data/sft/*.jsonl ({prompt, completion, _where}) for datasets",
    "models/sft.py:eval_subset": "a subset of those JSONL rows",
    "models/sft.py:split_by_length": "those JSONL rows, split at max_length",
    "joint/dataset.py:load_sft_records": "rows of data/sft/train.jsonl, the SFT stream's records",
    "joint/model.py:JointProver.param_groups": "torch.optim parameter groups: the format the optimizer takes",
    "joint/monitoring.py:JointMonitor.state_dict": "the monitor's resume state, saved as a checkpoint's monitor.json",
    "ebm/config.py:EbmConfig.training_summary": "the config numbers written into ebm_training.json",
    "ebm/train.py:EbmTrainResult.summary": "ebm_training.json's summary record (also the asset's metadata)",
    "ebm/encode_server.py:HttpEnergyScorer.health": "the JSON body of the encode server's GET /health answer",
    "reports/baseline.py:data_section": "display rows (label -> value) rendered in order, never read by key",
    # dataclass fields
    "joint/dataset.py:JointBatch.sft": "rows of data/sft/train.jsonl, as the SFT loss tokenizes them",
    "reports/comparison.py:JointRunStatus.abort": "the abort record as joint_run.json holds it (read from that file)",
    "ebm/metric_report.py:MetricReport.details": ("arrays and notes for the plots and the JSON; not yet typed: "
                                                  "benchmarks/embeddings_scale.py reads it by key"),
}

BAG_CONTAINERS = {"dict", "Dict", "Mapping", "MutableMapping"}
ANY_VALUES = {"Any", "object"}


def _name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):  # typing.Dict, typing.Any
        return node.attr
    return None


def is_string_keyed_bag(annotation: ast.AST | None) -> bool:
    """Whether a return annotation holds `dict[str, Any]`/`dict[str, object]`/`Mapping[...]`/bare `dict`."""
    if annotation is None:
        return False
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):  # a quoted annotation
        annotation = ast.parse(annotation.value, mode="eval").body
    subscripted = {id(n.value) for n in ast.walk(annotation) if isinstance(n, ast.Subscript)}
    for node in ast.walk(annotation):
        if isinstance(node, ast.Subscript) and _name(node.value) in BAG_CONTAINERS:
            args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            if len(args) == 2 and _name(args[1]) in ANY_VALUES:
                return True
        elif _name(node) in BAG_CONTAINERS and id(node) not in subscripted:
            return True
    return False


def _returns_dict_literal(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(isinstance(n, ast.Return) and isinstance(n.value, (ast.Dict, ast.DictComp)) for n in ast.walk(fn))


def _is_dataclass(cls: ast.ClassDef) -> bool:
    for deco in cls.decorator_list:
        target = deco.func if isinstance(deco, ast.Call) else deco
        if _name(target) == "dataclass":
            return True
    return False


def offenders(source: str) -> list[str]:
    """Qualified names of the public functions/methods that return a string-keyed bag of anything,
    and of the public dataclasses' fields that are one."""
    found = []

    def visit(body: list[ast.stmt], owner: ast.ClassDef | None) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_") and owner is None:
                visit(node.body, node)
            elif isinstance(node, ast.AnnAssign) and owner is not None and _is_dataclass(owner) \
                    and isinstance(node.target, ast.Name) and is_string_keyed_bag(node.annotation):
                found.append(f"{owner.name}.{node.target.id}")
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
                bag = is_string_keyed_bag(node.returns) or (node.returns is None and _returns_dict_literal(node))
                if owner is not None and node.name in SERIALIZERS and _is_dataclass(owner):
                    continue
                if bag:
                    found.append(f"{owner.name}.{node.name}" if owner is not None else node.name)

    visit(ast.parse(source).body, None)
    return found


def _modules() -> list[Path]:
    out: list[Path] = []
    for entry in SCANNED:
        path = PACKAGE / entry
        out.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return out


def test_detector_finds_the_shapes_it_forbids():
    src = '''
from dataclasses import dataclass
from typing import Any
import typing

def a() -> dict[str, Any]: ...
def b() -> tuple[int, dict[str, object]] | None: ...
def c() -> dict: ...
def d() -> "typing.Dict[str, typing.Any]": ...
def e():
    return {"k": 1}
def fine() -> dict[str, float]: ...
def fine_too() -> list[int]: ...
def _private() -> dict[str, Any]: ...

@dataclass
class Record:
    data: dict[str, Any]
    counts: dict[str, int]
    def to_json(self) -> dict[str, Any]: ...
    def peek(self) -> dict[str, Any]: ...

class NotADataclass:
    data: dict[str, Any]
    def to_json(self) -> dict[str, Any]: ...
'''
    assert offenders(src) == ["a", "b", "c", "d", "e", "Record.data", "Record.peek", "NotADataclass.to_json"]


@pytest.mark.parametrize("module", _modules(), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_domain_functions_return_dataclasses_not_string_keyed_dicts(module: Path):
    rel = module.relative_to(PACKAGE).as_posix()
    bad = [name for name in offenders(module.read_text(encoding="utf-8")) if f"{rel}:{name}" not in ALLOWED]
    assert not bad, (f"{rel}: {bad} return (or hold) a string-keyed dict of anything; use a dataclass with "
                     "typed fields (give it a to_json()/as_metadata() for the JSON or metadata boundary), or, "
                     "for a genuine JSON payload, add it to ALLOWED with the reason")


@pytest.mark.parametrize("entry", sorted(ALLOWED))
def test_each_allowed_exception_is_still_needed(entry: str):
    rel, name = entry.split(":")
    assert name in offenders((PACKAGE / rel).read_text(encoding="utf-8")), \
        f"{entry} no longer returns a string-keyed dict: remove it from ALLOWED"
