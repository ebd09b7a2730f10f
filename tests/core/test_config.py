from __future__ import annotations

from pathlib import Path

import pytest

from mmaip_core import ConfigError, PluginManager, UserError
from mmaip_core.config import load_config

GOOD = """
samples:
  reader: jsonl
  path: data/qa.jsonl
frames:
  sampler: uniform
  num_frames: 4
  max_side: 64
  cache_dir: cache
zoo:
  - name: tiny-a
    generator: smoke
    seed: 1
  - name: qwen2vl-7b
    generator: hf
    model: Qwen/Qwen2-VL-7B-Instruct
    n: 2
    params: {temperature: 0.7, max_new_tokens: 256}
scorer:
  name: exact-match
  partial: contains
pairs:
  strategy: margin
  min_margin: 2
"""


def _write(tmp_path: Path, text: str, name: str = "run.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_good_config_loads_with_paths_relative_to_the_file(tmp_path: Path, manager: PluginManager) -> None:
    config = load_config(_write(tmp_path, GOOD), manager)
    assert config.samples is not None
    assert config.samples.options["path"] == str(tmp_path.resolve() / "data" / "qa.jsonl")
    assert config.frames.cache_dir == tmp_path.resolve() / "cache"
    assert [z.name for z in config.zoo] == ["tiny-a", "qwen2vl-7b"]
    assert config.zoo[1].n == 2 and config.zoo[1].options["model"] == "Qwen/Qwen2-VL-7B-Instruct"


def test_resolved_config_fills_plugin_defaults(tmp_path: Path, manager: PluginManager) -> None:
    resolved = load_config(_write(tmp_path, GOOD), manager).resolved(manager)
    assert resolved["zoo"][1]["params"]["top_p"] == 1.0
    assert resolved["zoo"][1]["dtype"] == "auto"
    assert resolved["zoo"][0]["family"] == "qwen2-vl"
    assert resolved["scorer"] == {"name": "exact-match", "partial": "contains", "scale": {"min": 1.0, "max": 5.0}}
    assert resolved["pairs"]["max_pairs"] is None
    assert resolved["frames"]["num_frames"] == 4


def test_toml_configs_work_too(tmp_path: Path, manager: PluginManager) -> None:
    path = _write(tmp_path, '[scorer]\nname = "exact-match"\n\n[frames]\nsampler = "fps"\nfps = 2.0\n', "run.toml")
    config = load_config(path, manager)
    assert config.frames.sampler_options == {"fps": 2.0}


def test_every_error_is_reported_at_once(tmp_path: Path, manager: PluginManager) -> None:
    bad = """
samples: {reader: jsnol, path: qa.jsonl}
frames: {sampler: uniform, num_frames: 0}
zoo:
  - {name: a, generator: smoke, family: gpt}
  - {name: b, generator: hf}
scorer: {name: exact-match, partial: fuzzy}
pairs: {strategy: best-worst, max_length_ratio: 0.5}
"""
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, bad), manager)
    problems = info.value.problems
    text = "\n".join(problems)
    assert len(problems) == 6, text
    assert "samples: unknown sample-reader 'jsnol'" in text and "Did you mean 'jsonl'?" in text
    assert "frames: frame-sampler 'uniform': num_frames: Input should be greater than or equal to 1" in text
    assert (
        "zoo.0: generator 'smoke': family: Input should be 'qwen2-vl', 'qwen2.5-vl', 'qwen3-vl', 'llava-onevision' or 'llava-next-video'"
        in text
    )
    assert "zoo.1: generator 'hf': model: required key is missing" in text
    assert "scorer: scorer 'exact-match': partial" in text
    assert "pairs: pair-strategy 'best-worst': max_length_ratio: Input should be greater than 1" in text
    assert str(info.value).startswith(f"{tmp_path / 'run.yaml'}: 6 configuration error(s)")


def test_structural_errors_are_all_listed(tmp_path: Path, manager: PluginManager) -> None:
    bad = "zoo:\n  - {generator: smoke}\n  - {name: x, generator: smoke, n: 0}\nscorers: {}\n"
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, bad), manager)
    text = "\n".join(info.value.problems)
    assert "zoo.0.name: required key is missing" in text
    assert "zoo.1.n: Input should be greater than or equal to 1" in text
    assert (
        "scorers: unknown key 'scorers'; allowed keys: benchmarks, evaluators, frames, models, pairs, prices, samples, scorer, sft, train, zoo"
        in text
    )


def test_zoo_names_must_be_unique(tmp_path: Path, manager: PluginManager) -> None:
    bad = "zoo:\n  - {name: a, generator: smoke}\n  - {name: a, generator: smoke, seed: 2}\n"
    with pytest.raises(ConfigError, match="zoo names must be unique; repeated: a"):
        load_config(_write(tmp_path, bad), manager)


@pytest.mark.parametrize(
    ("text", "message"),
    [("samples: [1, 2", "cannot parse"), ("- a\n- b\n", "must hold a mapping")],
)
def test_unreadable_files(tmp_path: Path, manager: PluginManager, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(_write(tmp_path, text), manager)


def test_missing_file(tmp_path: Path, manager: PluginManager) -> None:
    with pytest.raises(UserError, match="config file not found"):
        load_config(tmp_path / "nope.yaml", manager)


def test_structural_and_plugin_errors_are_reported_together(tmp_path: Path, manager: PluginManager) -> None:
    bad = """
samples: {reader: jsnol, path: qa.jsonl}
frames: {num_frame: 3}
zoo:
  - {name: a, generator: smoke}
  - {name: b, generator: hf}
  - {name: a, generator: smok}
  - {generator: smoke}
scorers: {}
"""
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, bad), manager)
    text = "\n".join(info.value.problems)
    assert len(info.value.problems) == 7, text
    for expected in (
        "scorers: unknown key 'scorers'",
        "zoo.3.name: required key is missing",
        "zoo: zoo names must be unique; repeated: a",
        "samples: unknown sample-reader 'jsnol'",
        "zoo.1: generator 'hf': model: required key is missing",
        "zoo.2: unknown generator 'smok'",
        "frames: frame-sampler 'uniform': num_frame: unknown key 'num_frame'; allowed keys: num_frames",
    ):
        assert expected in text


def test_home_in_paths_is_expanded(tmp_path: Path, manager: PluginManager, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config = load_config(_write(tmp_path, "samples: {path: ~/qa.jsonl}\nframes: {cache_dir: ~/cache}\n"), manager)
    assert config.samples is not None and config.samples.options["path"] == str(tmp_path / "home" / "qa.jsonl")
    assert config.frames.cache_dir == tmp_path / "home" / "cache"


def test_non_utf8_file(tmp_path: Path, manager: PluginManager) -> None:
    path = tmp_path / "run.yaml"
    path.write_bytes(b"samples: \xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_config(path, manager)


def test_sizes_that_would_exhaust_memory_are_bounded(tmp_path: Path, manager: PluginManager) -> None:
    bad = (
        "zoo:\n"
        "  - {name: many, generator: smoke, n: 1000000000, batch_size: 100000}\n"
        "  - {name: long, generator: hf, model: m, params: {max_new_tokens: 10000000}}\n"
        "train: {pairs: p.jsonl, rounds: 1000000, alpha: .inf}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, bad), manager)
    text = "\n".join(info.value.problems)
    assert "zoo.0.n: Input should be less than or equal to 256" in text
    assert "zoo.0: generator 'smoke': batch_size: Input should be less than or equal to 1024" in text
    assert "zoo.1: generator 'hf': params.max_new_tokens: Input should be less than or equal to 32768" in text
    assert "train.rounds: Input should be less than or equal to 100" in text and "finite number" in text
