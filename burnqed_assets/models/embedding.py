"""EmbeddingExtractor (plan Task 1.0, Gotcha 4): last CONTENT token of right-padded input."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch


class EmbeddingExtractor:
    """Last-layer hidden state of each text's last content token.

    Right padding. The index is the last position that is attended AND is not an EOS/pad token:
    `attention_mask.sum(1) - 1` alone is right only when padding is on the right and the tokenizer
    appended nothing after the content; a tokenizer that appends EOS would make us embed EOS
    (Gotcha 4). A leading BOS (DeepSeek's tokenizer adds one) is kept: the model was trained with it.
    """

    def __init__(self, model: torch.nn.Module, tokenizer, max_length: int = 512):
        self.model = model
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "right"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.max_length = max_length
        self.trailing_ids = sorted({i for i in (tokenizer.eos_token_id, tokenizer.pad_token_id) if i is not None})

    def tokenize(self, texts: Sequence[str], max_length: int | None = None) -> dict[str, torch.Tensor]:
        return self.tokenizer(list(texts), return_tensors="pt", padding=True, truncation=True,
                              max_length=max_length or self.max_length)

    @staticmethod
    def last_content_index(attention_mask: torch.Tensor, input_ids: torch.Tensor | None = None,
                           exclude_ids: Iterable[int] = ()) -> torch.Tensor:
        """Per row, the last attended position whose token is not in `exclude_ids` (EOS/pad).

        Falls back to the last attended position when a row holds only excluded tokens.
        """
        attended = attention_mask.bool()
        exclude = list(exclude_ids)
        if input_ids is not None and exclude:
            content = attended & ~torch.isin(input_ids, torch.tensor(exclude, device=input_ids.device))
            has_content = content.any(dim=1)
            attended = torch.where(has_content.unsqueeze(1), content, attended)
        positions = torch.arange(attended.size(1), device=attended.device).expand_as(attended)
        return torch.where(attended, positions, torch.full_like(positions, -1)).max(dim=1).values.clamp(min=0)

    def encode(self, texts: Sequence[str], max_length: int | None = None, grad: bool = False) -> torch.Tensor:
        device = next(self.model.parameters()).device
        inputs = {k: v.to(device) for k, v in self.tokenize(texts, max_length).items()}
        ctx = torch.enable_grad() if grad else torch.no_grad()
        with ctx:
            # logits_to_keep=1: the LM head runs on one position only. Full logits would be
            # batch x length x 102400 (1.7 GB in bf16 for 16 x 512 on the 7B vocabulary) and unused.
            out = self.model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                             output_hidden_states=True, logits_to_keep=1)
            hidden = out.hidden_states[-1]
            idx = self.last_content_index(inputs["attention_mask"], inputs["input_ids"], self.trailing_ids)
            return hidden[torch.arange(hidden.size(0), device=hidden.device), idx]
