"""Plan Task 1.0 unit tests: GoalConditionedEnergyHead and EmbeddingExtractor."""

from __future__ import annotations

import math

import pytest
import torch

from burnqed_assets.ebm.head import GoalConditionedEnergyHead, load_head, save_head
from burnqed_assets.models.embedding import EmbeddingExtractor
from burnqed_assets.models.loading import load_causal_lm, load_tokenizer

SMALL = {"d_model": 32, "hidden_dims": (64, 32, 16)}


def _sigma(weight: torch.Tensor) -> float:
    return float(torch.linalg.matrix_norm(weight.detach(), ord=2))


def test_head_output_shape_at_plan_size():
    head = GoalConditionedEnergyHead()  # d=4096: 12288 -> 2048 -> 1024 -> 512 -> 1
    dims = [(m.in_features, m.out_features) for m in head.linear_layers()]
    assert dims == [(12288, 2048), (2048, 1024), (1024, 512), (512, 1)]
    z_s, z_g = torch.randn(3, 4096), torch.randn(3, 4096)
    assert head(z_s, z_g).shape == (3, 1)
    assert head.energy(z_s, z_g).shape == (3,)


def test_spectral_norms_are_one_and_first_layer_is_a_tenth():
    torch.manual_seed(0)
    head = GoalConditionedEnergyHead(**SMALL)
    head.train()
    with torch.no_grad():  # let the power iteration converge
        for _ in range(50):
            head(torch.randn(4, 32), torch.randn(4, 32))
    layers = head.linear_layers()
    sigmas = [_sigma(layer.weight) for layer in layers]
    for s in sigmas[1:]:
        assert s == pytest.approx(1.0, rel=0.05)
    assert sigmas[0] == pytest.approx(0.1, rel=0.05)
    # Effective magnitude: first layer ~0.1x the others (Gotcha 2), even though spectral norm
    # would cancel a plain rescaling of the raw weight.
    assert sigmas[0] / (sum(sigmas[1:]) / len(sigmas[1:])) == pytest.approx(0.1, rel=0.1)
    # every layer carries a spectral-norm parametrization
    for layer in layers:
        assert hasattr(layer, "parametrizations") and "weight" in layer.parametrizations


def test_forward_divides_by_exp_log_temperature():
    torch.manual_seed(0)
    head = GoalConditionedEnergyHead(**SMALL).eval()
    z_s, z_g = torch.randn(5, 32), torch.randn(5, 32)
    with torch.no_grad():
        raw = head.net(head.combine(z_s, z_g))
        head.log_temperature.fill_(math.log(2.5))
        assert torch.allclose(head(z_s, z_g), raw / 2.5, atol=1e-6)
        head.log_temperature.fill_(5.0)  # clamped to log 10
        assert torch.allclose(head(z_s, z_g), raw / 10.0, atol=1e-6)
        head.log_temperature.fill_(-5.0)  # clamped to log 0.1
        assert torch.allclose(head(z_s, z_g), raw / 0.1, atol=1e-5)
    assert head.log_temperature.requires_grad


def test_input_is_state_goal_and_product():
    z_s, z_g = torch.randn(2, 4), torch.randn(2, 4)
    combined = GoalConditionedEnergyHead.combine(z_s, z_g)
    assert torch.equal(combined, torch.cat([z_s, z_g, z_s * z_g], dim=-1))


def test_dropout_is_point_one_five():
    head = GoalConditionedEnergyHead(**SMALL)
    rates = [m.p for m in head.net if isinstance(m, torch.nn.Dropout)]
    assert rates == [0.15, 0.15, 0.15]


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    head = GoalConditionedEnergyHead(**SMALL).eval()
    with torch.no_grad():
        head.log_temperature.fill_(0.3)
    path = tmp_path / "head.pt"
    save_head(head, str(path))
    loaded = load_head(str(path))
    z_s, z_g = torch.randn(4, 32), torch.randn(4, 32)
    assert torch.allclose(head(z_s, z_g), loaded(z_s, z_g), atol=1e-6)


# ------------------------------------------------------------------ extractor

def test_last_content_index_skips_pad_and_eos():
    pad, eos = 0, 2
    ids = torch.tensor([[5, 6, 7, eos, pad], [5, 6, pad, pad, pad], [5, 6, 7, 8, 9]])
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]])
    idx = EmbeddingExtractor.last_content_index(mask, ids, exclude_ids=[pad, eos])
    assert idx.tolist() == [2, 1, 4]
    # without ids it is the plan's attention_mask.sum(1) - 1
    assert EmbeddingExtractor.last_content_index(mask).tolist() == [3, 1, 4]


@pytest.fixture(scope="module")
def extractor(demo_base_model_dir):
    model = load_causal_lm(demo_base_model_dir, device="cpu").eval()
    return EmbeddingExtractor(model, load_tokenizer(demo_base_model_dir), max_length=128)


def test_extractor_picks_last_content_token_for_different_lengths(extractor):
    texts = ["x : ℕ\n⊢ x = x", "a b : ℝ\nh : a ≥ b ∧ b ≥ 0\n⊢ a + b ≥ 0", "⊢ True"]
    batch = extractor.tokenize(texts)
    assert extractor.tokenizer.padding_side == "right"
    lengths = batch["attention_mask"].sum(1)
    assert len(set(lengths.tolist())) == 3  # really different lengths, so padding is exercised
    batched = extractor.encode(texts)
    assert batched.shape == (3, extractor.model.config.hidden_size)
    for i, text in enumerate(texts):
        ids = extractor.tokenizer(text, return_tensors="pt")["input_ids"]
        assert ids[0, -1].item() not in (extractor.tokenizer.pad_token_id, extractor.tokenizer.eos_token_id)
        with torch.no_grad():
            hidden = extractor.model(input_ids=ids, output_hidden_states=True).hidden_states[-1]
        # alone (no padding) the last token is the content token; batched must match it
        assert torch.allclose(batched[i], hidden[0, -1], atol=1e-4)
        # and not the pad position right after it
        if lengths[i] < batch["input_ids"].shape[1]:
            with torch.no_grad():
                padded = extractor.model(input_ids=batch["input_ids"][i:i + 1],
                                         attention_mask=batch["attention_mask"][i:i + 1],
                                         output_hidden_states=True).hidden_states[-1]
            assert not torch.allclose(batched[i], padded[0, lengths[i]], atol=1e-4)


def test_extractor_ignores_an_appended_eos(extractor):
    tok = extractor.tokenizer
    text = "a b : ℝ\n⊢ a ≥ b"
    plain = extractor.encode([text, text + " ∧ b ≥ a"])
    with_eos = extractor.encode([text + tok.eos_token, text + " ∧ b ≥ a"])
    assert torch.allclose(plain[0], with_eos[0], atol=1e-4)
