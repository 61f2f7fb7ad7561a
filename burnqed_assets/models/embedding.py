"""EmbeddingExtractor (plan Task 1.0, Gotcha 4): last CONTENT token of right-padded input."""

from __future__ import annotations

from collections.abc import Sequence

import torch


class EmbeddingExtractor:
    """Last-layer hidden state of each text's last content token.

    Right padding, no special tokens appended: the index is `attention_mask.sum(1) - 1`,
    which is the last real token only when padding is on the right and no EOS/pad was added
    after the content (a tokenizer that appends EOS would make us embed EOS instead).
    """

    def __init__(self, model: torch.nn.Module, tokenizer, max_length: int = 512):
        self.model = model
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "right"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.max_length = max_length

    def tokenize(self, texts: Sequence[str], max_length: int | None = None) -> dict[str, torch.Tensor]:
        return self.tokenizer(list(texts), return_tensors="pt", padding=True, truncation=True,
                              max_length=max_length or self.max_length, add_special_tokens=False)

    @staticmethod
    def last_content_index(attention_mask: torch.Tensor) -> torch.Tensor:
        return attention_mask.sum(dim=1) - 1

    def encode(self, texts: Sequence[str], max_length: int | None = None, grad: bool = False) -> torch.Tensor:
        device = next(self.model.parameters()).device
        inputs = {k: v.to(device) for k, v in self.tokenize(texts, max_length).items()}
        ctx = torch.enable_grad() if grad else torch.no_grad()
        with ctx:
            out = self.model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                             output_hidden_states=True)
            hidden = out.hidden_states[-1]
            idx = self.last_content_index(inputs["attention_mask"])
            return hidden[torch.arange(hidden.size(0), device=hidden.device), idx]
