"""Encode server on loopback with a tiny random model and head; the HTTP scorer guides search."""

from __future__ import annotations

import http.client
import json

import pytest
import torch

from burnqed_assets.ebm.encode_server import (
    EncodeServer,
    EncodeServerError,
    EnergyModel,
    HttpEnergyScorer,
)
from burnqed_assets.ebm.head import GoalConditionedEnergyHead, save_head
from burnqed_assets.search.engine import SearchConfig, Theorem, search_theorem
from search_fakes import PROVED, FakeEnv, TablePolicy

STATES = ["x : ℝ\n⊢ x + 0 = x", "a b : ℕ\nh : a = b\n⊢ b = a", "⊢ True", "n : ℕ\n⊢ n ≤ n + 1", "⊢ 1 + 1 = 2"]
GOAL = "x : ℝ\n⊢ x + 0 = x"


@pytest.fixture(scope="module")
def energy_model(tiny_model_dir, tmp_path_factory):
    torch.manual_seed(0)
    from transformers import AutoConfig

    d_model = AutoConfig.from_pretrained(str(tiny_model_dir)).hidden_size
    head = GoalConditionedEnergyHead(d_model=d_model, hidden_dims=(16, 8))
    path = tmp_path_factory.mktemp("head") / "head.pt"
    save_head(head, str(path))
    return EnergyModel.from_paths(str(tiny_model_dir), str(path), max_length=128, device="cpu")


@pytest.fixture()
def server(energy_model):
    with EncodeServer(energy_model, port=0, max_batch=4) as srv:
        yield srv


def post_raw(srv, body: bytes, path: str = "/energy"):
    host, port = srv.httpd.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = json.loads(resp.read())
    conn.close()
    return resp.status, data


def test_energies_over_http_match_in_process(server, energy_model):
    scorer = HttpEnergyScorer(server.url, timeout_s=30, retries=0, max_batch=4)
    assert scorer.health()["d_model"] == energy_model.d_model
    remote = scorer.score(STATES, GOAL)  # 5 pairs: two requests under max_batch=4
    local = energy_model.score(STATES, GOAL)
    # what the head gives on the extractor's embeddings, computed by hand
    with torch.no_grad():
        z_s = energy_model.extractor.encode(STATES)
        z_g = energy_model.extractor.encode([GOAL]).expand(len(STATES), -1)
        manual = energy_model.head.energy(z_s, z_g).tolist()
    assert remote == pytest.approx(local, abs=1e-5) and local == pytest.approx(manual, abs=1e-5)
    assert len(set(round(e, 6) for e in remote)) > 1  # different states, different energies
    assert server.requests == 2 and server.pairs_scored == 5
    scorer.close()


def test_batch_above_the_bound_is_413(server):
    body = json.dumps({"pairs": [{"state": "⊢ True", "goal": GOAL}] * 5}).encode()
    status, data = post_raw(server, body)
    assert status == 413 and "max_batch=4" in data["error"]
    scorer = HttpEnergyScorer(server.url, timeout_s=10, retries=3, max_batch=10)  # client ignores the bound
    with pytest.raises(EncodeServerError, match="HTTP 413"):
        scorer.score(STATES, GOAL)
    scorer.close()


@pytest.mark.parametrize("body, fragment", [
    (b"{not json", "malformed JSON"),
    (b'[1, 2]', "expected a JSON object"),
    (json.dumps({"pairs": [{"state": "s"}]}).encode(), "pairs[0].goal"),
    (json.dumps({"pairs": ["s"]}).encode(), "pairs[0]"),
])
def test_bad_requests_are_400_with_the_reason(server, body, fragment):
    status, data = post_raw(server, body)
    assert status == 400 and fragment in data["error"]


def test_unknown_path_is_404_and_server_is_loopback_only(server, energy_model):
    status, _ = post_raw(server, b"{}", path="/generate")
    assert status == 404
    assert server.url.startswith("http://127.0.0.1:")
    with pytest.raises(ValueError, match="loopback"):
        EncodeServer(energy_model, host="0.0.0.0", port=0)


def test_head_for_another_model_is_refused(tiny_model_dir, tmp_path):
    path = tmp_path / "wrong.pt"
    save_head(GoalConditionedEnergyHead(d_model=7, hidden_dims=(4,)), str(path))
    with pytest.raises(ValueError, match="d_model=7"):
        EnergyModel.from_paths(str(tiny_model_dir), str(path), device="cpu")


def test_http_scorer_guides_search_and_energies_are_recorded(server):
    roots = {"thm": GOAL}
    tr = {GOAL: {"a": STATES[1], "b": STATES[2]}, STATES[2]: {"done": PROVED}}
    pol = TablePolicy({GOAL: [("a", -1.0), ("b", -1.0)], STATES[2]: [("done", -0.1)]})
    scorer = HttpEnergyScorer(server.url, timeout_s=30, retries=0, max_batch=4)
    res = search_theorem(Theorem("t", "thm"), FakeEnv(roots, tr), pol,
                         SearchConfig(max_nodes=20, num_candidates=4, ebm_lambda=1.0), scorer=scorer)
    scorer.close()
    assert res.proved and res.scorer_s > 0
    assert all(n.energy is not None for n in res.nodes if n.state is not None)


def test_server_down_is_a_clear_error():
    scorer = HttpEnergyScorer("http://127.0.0.1:9", timeout_s=0.5, retries=1, backoff_s=0.01)
    with pytest.raises(EncodeServerError, match="failed after 2 attempt"):
        scorer.score(["⊢ True"], GOAL)
    assert scorer.health() is None


def test_nf4_encoder_config_on_gpu_and_fallback_on_cpu(monkeypatch):
    """nf4 through bitsandbytes on CUDA (plan Task 2.6's encode server); unquantised on CPU, said so."""
    import importlib.util

    import torch

    from burnqed_assets.ebm.encode_server import encoder_quantization

    assert encoder_quantization("none", torch.device("cuda")) == (None, "none")
    assert encoder_quantization("nf4", torch.device("cpu")) == (None, "none (nf4 needs CUDA)")
    with pytest.raises(ValueError, match="choose one of"):
        encoder_quantization("int3", torch.device("cpu"))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes"
                        else real_find_spec(name, *a))
    with pytest.raises(ImportError, match=r"pip install -e '\.\[gpu\]'"):
        encoder_quantization("nf4", torch.device("cuda"))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "bitsandbytes"
                        else real_find_spec(name, *a))
    config, used = encoder_quantization("nf4", torch.device("cuda"), "bfloat16")
    assert used == "nf4"
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4" and config.bnb_4bit_use_double_quant
    assert config.bnb_4bit_compute_dtype == torch.bfloat16


def test_energy_model_reports_the_cpu_fallback(tiny_model_dir, tmp_path):
    from transformers import AutoConfig

    path = tmp_path / "head.pt"
    d_model = AutoConfig.from_pretrained(str(tiny_model_dir)).hidden_size
    save_head(GoalConditionedEnergyHead(d_model=d_model, hidden_dims=(16, 8)), str(path))
    model = EnergyModel.from_paths(str(tiny_model_dir), str(path), max_length=64, device="cpu", quantization="nf4")
    assert model.quantization == "none (nf4 needs CUDA)"
    with EncodeServer(model, port=0) as server:
        import httpx

        assert httpx.get(f"{server.url}/health").json()["quantization"] == "none (nf4 needs CUDA)"
