"""Both policies report the same quantity: the sum of RAW (temperature 1) token log-probabilities
of the sampled completion, whatever the sampling temperature (docs/search.md, "Log-probabilities").

Each reported value is checked against a teacher-forced forward pass of the same model over the
same token ids: equal at T=1, and different from the temperature-scaled sum (which is what SGLang
reports unless the managed launcher sets SGLANG_RETURN_ORIGINAL_LOGPROB).
"""

from __future__ import annotations

import httpx
import pytest
import torch

from burnqed_assets.data.prompt import format_prompt
from burnqed_assets.search.policy import SGLangPolicy, TransformersPolicy
from burnqed_assets.search.serving import STANDIN_LAUNCHER, ManagedServer, ServerSpec

STATES = ["x : ℝ\nh₀ : x + 1 = 2\n⊢ x = 1", "a b : ℕ\n⊢ a + b = b + a"]
TEMPERATURE = 1.5


def teacher_forced(model, tokenizer, state: str, ids: list[int], temperature: float = 1.0) -> float:
    prompt = tokenizer(format_prompt(state))["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([prompt + ids])).logits[0, len(prompt) - 1:len(prompt) - 1 + len(ids)].float()
    lps = torch.log_softmax(logits / temperature, dim=-1).gather(-1, torch.tensor(ids)[:, None])
    return float(lps.sum())


class RecordingModel:
    """The model, with the sequences of each `generate` call kept (same object otherwise)."""

    def __init__(self, model):
        self._model = model
        self.sequences: list[list[int]] = []
        self.prompt_len = 0

    def __getattr__(self, name):
        return getattr(self._model, name)

    def generate(self, **kw):
        out = self._model.generate(**kw)
        self.prompt_len = kw["input_ids"].shape[1]
        self.sequences = out.sequences[:, self.prompt_len:].tolist()
        return out


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    policy = TransformersPolicy.from_pretrained(str(tiny_model_dir), device="cpu", max_new_tokens=16, seed=0)
    return policy, policy.model, policy.tokenizer


def _up_to_eos(ids: list[int], eos: int) -> list[int]:
    return ids[: ids.index(eos) + 1] if eos in ids else ids


def test_demo_policy_reports_raw_logprobs(loaded):
    policy, model, tok = loaded
    recorder = RecordingModel(model)
    policy.model = recorder
    try:
        checked = scaled_differs = 0
        for state in STATES:
            cands = policy.generate(state, 6, TEMPERATURE)
            by_text: dict[str, list[tuple[float, float]]] = {}
            for ids in recorder.sequences:
                ids = _up_to_eos(ids, tok.eos_token_id)
                text = tok.decode([i for i in ids if i != tok.eos_token_id], skip_special_tokens=True).strip()
                by_text.setdefault(text, []).append((teacher_forced(model, tok, state, ids),
                                                     teacher_forced(model, tok, state, ids, TEMPERATURE)))
            for c in cands:
                raw, scaled = max(by_text[c.tactic])  # duplicates keep their best sample
                assert c.logprob == pytest.approx(raw, abs=1e-3)
                checked += 1
                scaled_differs += abs(c.logprob - scaled) > 1e-2
        assert checked >= 4 and scaled_differs == checked
    finally:
        policy.model = model


def test_sglang_client_through_managed_server_reports_raw_logprobs(loaded, tiny_model_dir, tmp_path):
    _, model, tok = loaded
    spec = ServerSpec(launcher=STANDIN_LAUNCHER, port=0, startup_timeout_s=120, poll_interval_s=0.2,
                      log_file=lambda port: tmp_path / f"server_{port}.log")
    with ManagedServer(spec, tiny_model_dir) as server:
        client = SGLangPolicy(server.url, max_new_tokens=16, retries=0, server_check=server.check_alive)
        body = client.payload(STATES, 3, TEMPERATURE)
        raw_outputs = httpx.post(f"{server.url}/generate", json=body, timeout=120).json()
        groups = SGLangPolicy.parse_response(raw_outputs, len(STATES), 3)  # what the client makes of it
        assert [len(g) for g in client.generate_batch(STATES, 3, TEMPERATURE)] == [3, 3]
        client.close()
    checked = 0
    for i, state in enumerate(STATES):
        for cand, out in zip(groups[i], raw_outputs[i * 3:(i + 1) * 3]):
            ids = out["output_ids"]
            assert [t[1] for t in out["meta_info"]["output_token_logprobs"]] == ids
            assert cand.logprob == pytest.approx(teacher_forced(model, tok, state, ids), abs=1e-3)
            assert abs(cand.logprob - teacher_forced(model, tok, state, ids, TEMPERATURE)) > 1e-2
            checked += 1
    assert checked == 6


def test_without_the_launcher_setting_sglang_reports_scaled_logprobs(loaded, tiny_model_dir, tmp_path):
    """The stand-in, like SGLang, scales by the temperature by default: the managed launcher's
    environment is what makes the two policies agree (guards against dropping it)."""
    _, model, tok = loaded
    off = {"SGLANG_RETURN_ORIGINAL_LOGPROB": "0", "RETURN_ORIGINAL_LOGPROB": "0"}
    spec = ServerSpec(launcher=STANDIN_LAUNCHER, port=0, startup_timeout_s=120, poll_interval_s=0.2, env=off)
    with ManagedServer(spec, tiny_model_dir) as server:
        body = SGLangPolicy(server.url).payload(STATES[:1], 2, TEMPERATURE)
        outs = httpx.post(f"{server.url}/generate", json=body, timeout=120).json()
    for out in outs:
        reported = sum(t[0] for t in out["meta_info"]["output_token_logprobs"])
        assert reported == pytest.approx(teacher_forced(model, tok, STATES[0], out["output_ids"], TEMPERATURE),
                                         abs=1e-3)
