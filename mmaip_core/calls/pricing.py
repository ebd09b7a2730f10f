"""What API calls cost: a price table in USD per million tokens, overridable in the run config.

The defaults are list prices of common models (text tokens; image tokens are billed as input tokens and are
part of ``prompt_tokens`` as the APIs report them). A model id matches its entry exactly or by the longest
entry that prefixes it (``gpt-4o-2024-08-06`` -> ``gpt-4o``). A model without a price costs 0 and is
reported once.
"""

from __future__ import annotations

import logging

from pydantic import BaseModel, ConfigDict, Field

from mmaip_core.records import TokenUsage

__all__ = ["BATCH_DISCOUNT", "DEFAULT_PRICES", "Price", "PriceTable"]

BATCH_DISCOUNT = 0.5
"""Share of the list price that batch APIs (OpenAI Batch, Anthropic Message Batches) charge."""

log = logging.getLogger(__name__)


class Price(BaseModel):
    """USD per million tokens."""

    model_config = ConfigDict(extra="forbid")
    input: float = Field(ge=0, description="USD per million prompt tokens (images included).")
    output: float = Field(ge=0, description="USD per million completion tokens.")


DEFAULT_PRICES: dict[str, Price] = {
    name: Price(input=i, output=o)
    for name, i, o in (
        ("gpt-4o", 2.50, 10.00),
        ("gpt-4o-mini", 0.15, 0.60),
        ("gpt-4.1", 2.00, 8.00),
        ("gpt-4.1-mini", 0.40, 1.60),
        ("gpt-4.1-nano", 0.10, 0.40),
        ("o4-mini", 1.10, 4.40),
        ("claude-3-5-haiku", 0.80, 4.00),
        ("claude-3-5-sonnet", 3.00, 15.00),
        ("claude-3-7-sonnet", 3.00, 15.00),
        ("claude-sonnet-4", 3.00, 15.00),
        ("claude-opus-4", 15.00, 75.00),
    )
}


class PriceTable:
    """Looks up prices; ``overrides`` (from the config's ``prices`` section) win over the defaults."""

    def __init__(self, overrides: dict[str, Price] | None = None) -> None:
        self.prices = {**DEFAULT_PRICES, **(overrides or {})}
        self._unpriced: set[str] = set()

    def price(self, model_id: str) -> Price | None:
        if model_id in self.prices:
            return self.prices[model_id]
        prefixes = [name for name in self.prices if model_id.startswith(name)]
        return self.prices[max(prefixes, key=len)] if prefixes else None

    def cost(self, model_id: str | None, usage: TokenUsage | None) -> float:
        """USD of one call (0 for local models, unknown models and calls without usage)."""
        if model_id is None or usage is None:
            return 0.0
        price = self.price(model_id)
        if price is None:
            if model_id not in self._unpriced:
                self._unpriced.add(model_id)
                log.warning("no price for model %s: its calls are counted as free (add it under 'prices')", model_id)
            return 0.0
        return (usage.prompt_tokens * price.input + usage.completion_tokens * price.output) / 1e6
