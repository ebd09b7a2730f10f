"""The price table: costs from token usage, prefix matches, the config's overrides, unknown models.

(``test_openai_plugins.py`` checks a build's cost and the batch discount end to end.)
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from mmaip_core.calls.pricing import BATCH_DISCOUNT, DEFAULT_PRICES, Price, PriceTable
from mmaip_core.records import TokenUsage


def usage(prompt: int, completion: int) -> TokenUsage:
    return TokenUsage(prompt_tokens=prompt, completion_tokens=completion)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4o", (1_000 * 2.50 + 500 * 10.00) / 1e6),
        ("gpt-4o-mini", (1_000 * 0.15 + 500 * 0.60) / 1e6),
        ("claude-opus-4", (1_000 * 15.00 + 500 * 75.00) / 1e6),
    ],
)
def test_cost_of_known_models(model: str, expected: float) -> None:
    assert PriceTable().cost(model, usage(1_000, 500)) == pytest.approx(expected)


def test_input_and_output_are_priced_separately() -> None:
    table = PriceTable()
    assert table.cost("gpt-4.1", usage(1_000_000, 0)) == pytest.approx(2.00)
    assert table.cost("gpt-4.1", usage(0, 1_000_000)) == pytest.approx(8.00)
    assert table.cost("gpt-4.1", usage(0, 0)) == 0.0


def test_a_dated_model_id_takes_the_longest_matching_entry() -> None:
    table = PriceTable()
    # gpt-4o-mini-... starts with both gpt-4o and gpt-4o-mini: the longer one wins
    assert table.price("gpt-4o-mini-2024-07-18") == DEFAULT_PRICES["gpt-4o-mini"]
    assert table.price("gpt-4o-2024-08-06") == DEFAULT_PRICES["gpt-4o"]
    assert table.price("gpt-4.1-nano-2025-04-14") == DEFAULT_PRICES["gpt-4.1-nano"]
    assert table.price("claude-sonnet-4-20250514") == DEFAULT_PRICES["claude-sonnet-4"]
    assert table.cost("gpt-4o-mini-2024-07-18", usage(1_000_000, 0)) == pytest.approx(0.15)
    assert table.price("my-gpt-4o") is None  # a prefix, not a substring


def test_overrides_replace_and_add_prices() -> None:
    table = PriceTable({"gpt-4o": Price(input=1.0, output=2.0), "local-llava": Price(input=0.5, output=0.5)})
    assert table.cost("gpt-4o", usage(1_000_000, 1_000_000)) == pytest.approx(3.0)
    assert table.cost("gpt-4o-2024-08-06", usage(1_000_000, 0)) == pytest.approx(1.0)  # prefixes use the override
    assert table.cost("local-llava", usage(2_000_000, 0)) == pytest.approx(1.0)
    assert table.cost("gpt-4o-mini", usage(1_000_000, 0)) == pytest.approx(0.15)  # the rest stay
    assert DEFAULT_PRICES["gpt-4o"] == Price(input=2.50, output=10.00)  # the defaults are not changed
    assert PriceTable().cost("gpt-4o", usage(1_000_000, 0)) == pytest.approx(2.50)


def test_an_override_can_make_a_prefix_more_specific() -> None:
    table = PriceTable({"gpt-4o-2024-05-13": Price(input=5.0, output=15.0)})
    assert table.cost("gpt-4o-2024-05-13", usage(1_000_000, 0)) == pytest.approx(5.0)
    assert table.cost("gpt-4o-2024-08-06", usage(1_000_000, 0)) == pytest.approx(2.50)


def test_the_configs_prices_section_reaches_the_table(tmp_path: Path) -> None:
    from mmaip_core import PluginManager
    from mmaip_core.config import load_config

    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"prices": {"my-model": {"input": 4.0, "output": 8.0}}}))
    loaded = load_config(config, PluginManager())
    assert PriceTable(loaded.prices).cost("my-model", usage(500_000, 250_000)) == pytest.approx(4.0)


def test_prices_are_validated() -> None:
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        Price(input=-1.0, output=1.0)
    with pytest.raises(ValueError, match=r"[Ee]xtra"):
        Price.model_validate({"input": 1.0, "output": 1.0, "cached": 0.5})


def test_local_models_and_calls_without_usage_cost_nothing(caplog: pytest.LogCaptureFixture) -> None:
    table = PriceTable()
    with caplog.at_level(logging.WARNING, logger="mmaip_core.calls.pricing"):
        assert table.cost(None, usage(1_000, 1_000)) == 0.0
        assert table.cost("gpt-4o", None) == 0.0
    assert caplog.records == []  # nothing to warn about


def test_an_unknown_model_is_free_and_warned_about_once(caplog: pytest.LogCaptureFixture) -> None:
    table = PriceTable()
    with caplog.at_level(logging.WARNING, logger="mmaip_core.calls.pricing"):
        assert table.price("mystery-model") is None
        assert table.cost("mystery-model", usage(1_000, 1_000)) == 0.0
        assert table.cost("mystery-model", usage(5_000, 0)) == 0.0
        assert table.cost("another-mystery", usage(1, 1)) == 0.0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "mystery-model" in warnings[0] and "prices" in warnings[0]
    assert "another-mystery" in warnings[1]


def test_the_warning_is_once_per_table() -> None:
    first, second = PriceTable(), PriceTable()
    first.cost("mystery-model", usage(1, 1))
    assert "mystery-model" in first._unpriced and "mystery-model" not in second._unpriced


def test_the_batch_discount_is_a_share_of_the_list_price() -> None:
    assert BATCH_DISCOUNT == 0.5  # both providers' batch APIs charge half
    table = PriceTable()
    listed = table.cost("gpt-4o", usage(1_000, 1_000))
    # the table itself prices at list; callers of batch APIs apply the share (judging.py)
    assert listed == pytest.approx((1_000 * 2.50 + 1_000 * 10.00) / 1e6)
    assert listed * BATCH_DISCOUNT == pytest.approx(listed / 2)
