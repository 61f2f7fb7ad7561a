"""The loss mask covers exactly the tactic tokens and the closing EOS (Gotcha 13), on real examples."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from sft_fixtures import demo_pairs, sft_records

from burnqed_assets.data.io import BadInputError
from burnqed_assets.models.loading import load_causal_lm, load_tokenizer
from burnqed_assets.models.sft import (
    SftRunConfig,
    build_trainer,
    example_length,
    split_by_length,
    train_lora,
)


@pytest.fixture(scope="module")
def trainer_and_rows(demo_base_model_dir, tmp_path_factory):
    tok = load_tokenizer(demo_base_model_dir)
    model = load_causal_lm(demo_base_model_dir, device="cpu")
    pairs = demo_pairs()
    # real examples of varied shape: short and long tactics, multi-line tactics, Unicode
    chosen = sorted(pairs, key=lambda p: len(p["tactic"]))
    chosen = chosen[:3] + chosen[len(chosen) // 2: len(chosen) // 2 + 3] + chosen[-3:]
    chosen += [p for p in pairs if "\n" in p["tactic"]][:2]
    rows = sft_records(chosen)
    trainer = build_trainer(model, tok, rows, [], tmp_path_factory.mktemp("mask"),
                            SftRunConfig(max_steps=1, batch_size=4, grad_accumulation=1))
    return trainer, tok, rows


def test_loss_mask_is_exactly_tactic_plus_eos(trainer_and_rows):
    trainer, tok, rows = trainer_and_rows
    dataset = trainer.train_dataset
    assert len(dataset) == len(rows)
    batch = trainer.data_collator([dataset[i] for i in range(len(dataset))])
    labels, input_ids, position_ids = batch["labels"][0], batch["input_ids"][0], batch["position_ids"][0]
    assert input_ids.shape[0] == sum(len(dataset[i]["input_ids"]) for i in range(len(dataset)))  # no padding
    starts = (position_ids == 0).nonzero().flatten().tolist() + [len(input_ids)]
    assert len(starts) - 1 == len(rows)
    for row, (a, b) in zip(rows, itertools.pairwise(starts)):
        seq_ids, seq_labels = input_ids[a:b], labels[a:b]
        trained = seq_labels != -100
        # the trained tokens are one contiguous block at the end of the example
        first = int(trained.nonzero()[0])
        assert trained[first:].all() and not trained[:first].any()
        expected = tok(row["completion"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        assert seq_labels[trained].tolist() == expected
        assert torch.equal(seq_labels[trained], seq_ids[trained])
        assert tok.decode(seq_ids[first:]) == row["completion"] + tok.eos_token
        # everything before is exactly the prompt, closing fence included
        assert tok.decode(seq_ids[:first]) == row["prompt"]


def test_prompt_tokens_end_at_the_closing_fence(trainer_and_rows):
    _, tok, rows = trainer_and_rows
    for row in rows:
        prompt_ids = tok(row["prompt"])["input_ids"]
        full_ids = tok(row["prompt"] + row["completion"])["input_ids"]
        assert full_ids[: len(prompt_ids)] == prompt_ids  # no BPE merge across the boundary


def test_too_long_examples_are_set_aside_and_counted(demo_base_model_dir):
    tok = load_tokenizer(demo_base_model_dir)
    rows = sft_records(demo_pairs()[:20])
    lengths = [example_length(tok, r["prompt"], r["completion"]) for r in rows]
    cut = sorted(lengths)[len(lengths) // 2]
    keep, too_long = split_by_length(tok, rows, cut)
    assert len(keep) + len(too_long) == len(rows)
    assert len(too_long) == sum(n > cut for n in lengths) > 0


def test_max_length_from_token_geometry(tmp_path):
    from burnqed_assets.data.token_geometry import recommended_max_length

    assert recommended_max_length(tmp_path / "missing.json", "sft", 2048)[0] == 2048
    (tmp_path / "g.json").write_text(json.dumps({"recommended_sft_max_length": 1536,
                                                 "recommended_encode_max_length": 384}))
    value, source = recommended_max_length(tmp_path / "g.json", "sft", 2048)
    assert value == 1536 and "token_geometry" in source
    with pytest.raises(ValueError, match="kind"):
        recommended_max_length(tmp_path / "g.json", "tactic", 2048)


def test_bad_sft_line_is_reported_with_location(demo_base_model_dir, tmp_path):
    train = tmp_path / "train.jsonl"
    good = sft_records(demo_pairs()[:2])
    train.write_text(json.dumps(good[0], ensure_ascii=False) + "\n" + json.dumps({"prompt": "no fence",
                     "completion": "simp"}) + "\n", encoding="utf-8")
    with pytest.raises(BadInputError) as err:
        train_lora(demo_base_model_dir, train, tmp_path / "val.jsonl", tmp_path / "out", SftRunConfig(max_steps=1))
    assert f"{train}:2" in str(err.value)


def test_padding_free_batch_loss_equals_separate_examples(trainer_and_rows):
    """Padding-free on CPU (sdpa, no FlashAttention) is exact: `position_ids` restarting per example
    give a block-diagonal mask, so examples in one row never attend to each other."""
    trainer, _, _ = trainer_and_rows
    dataset = trainer.train_dataset
    examples = [dataset[i] for i in range(4)]
    model = trainer.model.eval()
    with torch.no_grad():
        packed = trainer.data_collator(examples)
        packed_loss = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"],
                            labels=packed["labels"], use_cache=False).loss
        total, count = 0.0, 0
        for ex in examples:
            one = trainer.data_collator([ex])
            n = int((one["labels"][0, 1:] != -100).sum())
            total += float(model(input_ids=one["input_ids"], position_ids=one["position_ids"],
                                 labels=one["labels"], use_cache=False).loss) * n
            count += n
    assert float(packed_loss) == pytest.approx(total / count, rel=1e-4)
