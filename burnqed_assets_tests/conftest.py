"""Fixtures shared by every test area: demo settings on a temp data root, a tiny tokenizer."""

from __future__ import annotations

import signal

import pytest

from burnqed_assets.resources import BurnqedConfig
from burnqed_assets.settings import Settings, get_settings


def pytest_configure(config):
    """Interrupt signals as in a foreground run, however the suite was started.

    A non-interactive shell starts a background command (`cmd &`, CI wrappers) with SIGINT ignored;
    Python then keeps SIG_IGN, and Dagster's in-process runs map SIGTERM to SIGINT's disposition, so
    SIGTERM becomes ignored in this process and in every child it execs. Servers and REPLs the tests
    start then sit out their stop timeout before SIGKILL (measured: 30 s per managed policy server,
    ~3 min over the suite), and tests of Ctrl-C handling cannot raise KeyboardInterrupt."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGTERM) == signal.SIG_IGN:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.fixture
def demo_settings(tmp_path) -> Settings:
    """Demo-profile settings whose generated data lives under this test's tmp_path."""
    return get_settings("demo", tmp_path)


@pytest.fixture
def demo_config(tmp_path) -> BurnqedConfig:
    """The Dagster resource pointing at the same temp data root as `demo_settings`."""
    return BurnqedConfig(profile="demo", data_root=str(tmp_path))


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """A byte-level BPE tokenizer trained in a fraction of a second on Lean-ish strings.

    Stands in for the profile model's tokenizer in unit tests (no model hub, no files).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [
        "Complete the following Lean 4 code:\n\n```lean4\n/- tactic state:\n",
        "x y : ℝ\nh₀ : 0 < x\n⊢ x ^ 2 + y ^ 2 ≥ 2 * x * y",
        "nlinarith [sq_nonneg (x - y), sq_nonneg (x + y)]",
        "intro x h₀", "norm_num", "linarith", "omega", "simp", "ring_nf", "constructor",
    ] * 20
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<s>", "</s>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    from tokenizers.processors import TemplateProcessing

    tok.post_processor = TemplateProcessing(single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


@pytest.fixture(autouse=True)
def _no_reuse_by_default(monkeypatch):
    """Tests compute every asset they materialize: re-run and resume tests would otherwise get the
    previous output back (burnqed_assets/reuse.py). Tests of reuse set BURNQED_REUSE=1 themselves."""
    monkeypatch.setenv("BURNQED_REUSE", "0")
