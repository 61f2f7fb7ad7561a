"""JointProver on a tiny random Llama: LoRA targets, completion-only SFT, loss composition,
the detach rule, separate learning rates, and the Task 3.5 smoke step."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F
from joint_fixtures import (
    build_tiny_model,
    build_tiny_tokenizer,
    make_sft_records,
    make_trajectory_rows,
)

from burnqed_assets.data.schema import trajectory_table
from burnqed_assets.joint.dataset import JointDataset, TrajectoryState, build_candidates
from burnqed_assets.joint.model import IGNORE_INDEX, LORA_TARGETS, JointProver
from burnqed_assets.joint.train import smoke_step


def _states():
    rows = trajectory_table(make_trajectory_rows()).to_pylist()
    return [TrajectoryState(r["theorem"], r["state_id"], r["parent_id"], r["state_pp"], r["depth"], r["label"])
            for r in rows]


@pytest.fixture()
def prover():
    tok = build_tiny_tokenizer()
    p = JointProver(build_tiny_model(tok), tok, lora_r=4, lora_alpha=8, lora_dropout=0.0,
                    head_hidden_dims=(16, 8), sft_max_length=256, encode_max_length=128)
    # LoRA B starts at zero; a random B makes every adapter weight receive gradient in the tests.
    with torch.no_grad():
        for n, p_ in p.backbone.named_parameters():
            if "lora_B" in n:
                p_.normal_(0, 0.02)
    return p


@pytest.fixture()
def batch():
    cands, pool = build_candidates(_states())
    return JointDataset(make_sft_records(), cands, pool, k_negatives=3, hard_ratio=0.6,
                        sft_batch_size=3, contrastive_batch_size=2, seed=0).batch(0)


def test_lora_on_every_projection_and_head_sized_from_the_model(prover):
    assert prover.lora_targets == list(LORA_TARGETS)
    wrapped = {n.split(".")[-4] for n, _ in prover.backbone.named_parameters() if "lora_A" in n}
    assert wrapped == set(LORA_TARGETS)
    assert prover.ebm_head.d_model == 32 and prover.ebm_head.hidden_dims == (16, 8)
    assert prover.tokenizer.padding_side == "right"
    base = [p for n, p in prover.backbone.named_parameters() if "lora_" not in n]
    assert base and not any(p.requires_grad for p in base)


def test_sft_labels_cover_exactly_the_completion_and_eos(prover):
    recs = make_sft_records(3)
    inputs = prover.sft_inputs(recs)
    tok = prover.tokenizer
    for i, rec in enumerate(recs):
        labels = inputs["labels"][i]
        kept = labels[labels != IGNORE_INDEX].tolist()
        assert kept == tok(rec["completion"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        n = int(inputs["attention_mask"][i].sum())
        assert inputs["attention_mask"][i, :n].all() and not inputs["attention_mask"][i, n:].any()  # right pad


def test_long_prompts_lose_tokens_from_the_left_never_the_completion(prover):
    prover.sft_max_length = 12
    rec = make_sft_records(1)[0]
    inputs = prover.sft_inputs([rec])
    kept = inputs["labels"][0][inputs["labels"][0] != IGNORE_INDEX].tolist()
    assert inputs["input_ids"].shape[1] == 12
    assert kept[-1] == prover.tokenizer.eos_token_id and len(kept) >= 2


def test_total_loss_is_sft_plus_lambda_infonce_without_temperature(prover, batch):
    prover.eval()  # no dropout: separate forward passes give the same numbers
    lam = 0.37
    with torch.no_grad():
        joint = prover.joint_loss(batch.sft, batch.groups, lam)
        sft = prover.sft_loss(batch.sft)
        pos, neg = prover.group_energies(prover.embed_groups(batch.groups))
        # InfoNCE by hand: -log softmax(-E)[positive], energies already divided by the head's T.
        logits = -torch.cat([pos[:, None], neg], dim=1)
        by_hand = -(logits.log_softmax(dim=1)[:, 0]).mean()
    assert neg.shape == (2, 3)
    assert float(joint.sft) == pytest.approx(float(sft), rel=1e-5)
    assert float(joint.ebm) == pytest.approx(float(by_hand), rel=1e-5)
    assert float(joint.total) == pytest.approx(float(sft) + lam * float(by_hand), rel=1e-5)
    # The head's temperature is the only scaling: doubling T halves every logit.
    with torch.no_grad():
        prover.ebm_head.log_temperature.fill_(float(torch.log(torch.tensor(2.0))))
        pos2, neg2 = prover.group_energies(prover.embed_groups(batch.groups))
    assert torch.allclose(pos2 * 2, pos, atol=1e-5) and torch.allclose(neg2 * 2, neg, atol=1e-5)
    assert float(F.cross_entropy(-torch.cat([pos2[:, None], neg2], 1), torch.zeros(2, dtype=torch.long))) \
        != pytest.approx(float(by_hand))


def _grads(params):
    return [p.grad for p in params]


def test_easy_negatives_and_goal_are_detached(prover, batch):
    prover.eval()
    emb = prover.embed_groups(batch.groups)
    assert emb.positive.requires_grad and emb.hard.requires_grad
    assert not emb.easy.requires_grad and emb.easy.grad_fn is None and emb.easy.shape == (2, 2, 32)
    assert not emb.goal.requires_grad and emb.goal.grad_fn is None
    lora = prover.lora_parameters()
    head = list(prover.ebm_head.parameters())

    # Loss through the easy negatives only: the head learns, the backbone gets nothing.
    b, k1, d = emb.easy.shape
    goal = emb.goal.unsqueeze(1).expand(b, k1, d).reshape(-1, d)
    prover.ebm_head.energy(emb.easy.reshape(-1, d), goal).sum().backward()
    assert all(g is None or float(g.abs().sum()) == 0.0 for g in _grads(lora))
    assert any(g is not None and float(g.abs().sum()) > 0 for g in _grads(head))

    # Loss through the positive / hard negative: the backbone's LoRA gets gradient.
    prover.zero_grad(set_to_none=True)
    (prover.ebm_head.energy(emb.positive, emb.goal).sum() + prover.ebm_head.energy(emb.hard, emb.goal).sum()).backward()
    assert sum(float(g.abs().sum()) for g in _grads(lora) if g is not None) > 0


def test_full_infonce_backward_reaches_lora_and_head(prover, batch):
    loss, _, _ = prover.ebm_loss(batch.groups)
    loss.backward()
    assert sum(float(p.grad.abs().sum()) for p in prover.lora_parameters() if p.grad is not None) > 0
    assert prover.ebm_head.log_temperature.grad is not None


def test_param_groups_have_separate_learning_rates(prover):
    groups = prover.param_groups(lr_lora=2e-5, lr_ebm=3e-5, ebm_weight_decay=0.01)
    assert [g["name"] for g in groups] == ["lora", "ebm"]
    assert groups[0]["lr"] == 2e-5 and groups[1]["lr"] == 3e-5
    lora_ids = {id(p) for p in groups[0]["params"]}
    assert lora_ids == {id(p) for p in prover.lora_parameters()} and len(lora_ids) == 4 * 7
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in prover.ebm_head.parameters()}


def test_smoke_step_gives_finite_losses_and_gradients_in_lora_and_head(batch):
    tok = build_tiny_tokenizer()
    fresh = JointProver(build_tiny_model(tok), tok, lora_r=4, lora_alpha=8, head_hidden_dims=(16, 8))
    report = smoke_step(fresh, batch, lambda_ebm=0.1)
    assert report.passed, report
    assert report.lora_grad_norm > 0 and report.head_grad_norm > 0
    assert report.losses.sft_loss > 0 and report.losses.lambda_ebm_loss == pytest.approx(0.1 * report.losses.ebm_loss)
    assert all(p.grad is None for p in fresh.parameters())  # smoke leaves no gradient behind


def test_smoke_step_fails_on_a_nan_head(batch):
    tok = build_tiny_tokenizer()
    broken = JointProver(build_tiny_model(tok), tok, lora_r=4, lora_alpha=8, head_hidden_dims=(16, 8))
    with torch.no_grad():
        broken.ebm_head.log_temperature.fill_(float("nan"))
    assert not smoke_step(broken, batch, lambda_ebm=0.1).passed


def test_detach_rule_holds_for_groups_without_easy_negatives(prover):
    cands, pool = build_candidates(_states())
    rng = random.Random(0)
    from burnqed_assets.joint.dataset import sample_group

    groups = [sample_group(c, pool, k_negatives=1, hard_ratio=1.0, rng=rng) for c in cands[:2]]
    _pos, neg = prover.group_energies(prover.embed_groups(groups))
    assert neg.shape == (2, 1) and neg.requires_grad


def test_smoke_step_passes_with_gradient_checkpointing(batch):
    from burnqed_assets.joint.train import enable_gradient_checkpointing

    tok = build_tiny_tokenizer()
    model = build_tiny_model(tok)
    enable_gradient_checkpointing(model)
    prover = JointProver(model, tok, lora_r=4, lora_alpha=8, head_hidden_dims=(16, 8))
    assert prover.backbone.base_model.model.is_gradient_checkpointing
    report = smoke_step(prover, batch, lambda_ebm=0.1)
    assert report.passed and report.lora_grad_norm > 0, report
