"""The one DeepSeek-native prompt format (plan Gotcha 14), used by SFT, search and token geometry."""

from __future__ import annotations

PROMPT_PREFIX = "Complete the following Lean 4 code:\n\n```lean4\n/- tactic state:\n"
PROMPT_SUFFIX = "\n-/\n```\n"  # the closing fence: loss starts right after it (Gotcha 13)


def format_prompt(state: str) -> str:
    """The prompt for one proof state; the model completes it with a tactic."""
    return f"{PROMPT_PREFIX}{state}{PROMPT_SUFFIX}"


def format_example(state: str, tactic: str) -> str:
    """A full SFT example as the model sees it (prompt + completion)."""
    return format_prompt(state) + tactic


def is_well_formed_prompt(prompt: str) -> bool:
    """True when a prompt has the prefix and ends in the closing fence."""
    return prompt.startswith(PROMPT_PREFIX) and prompt.endswith(PROMPT_SUFFIX)
