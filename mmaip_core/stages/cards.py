"""What the Hub cards say: the paper to cite (dataset and model cards), and a trained model's card."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from mmaip_core.errors import UserError
from mmaip_core.records import TrainManifest
from mmaip_core.store import layout

__all__ = ["CITATION", "frame_policy", "model_card"]

CITATION = """## Citation

The method is from:

```bibtex
@article{yi2024mmaipv,
  title   = {Video-Text Dataset Construction from Multi-AI Feedback: Promoting Weak-to-Strong Preference
             Learning for Video Large Language Models},
  author  = {Yi, Hao and Li, Qingyang and Hu, Yulan and Zhang, Fuzheng and Zhang, Di and Liu, Yong},
  journal = {arXiv preprint arXiv:2411.16201},
  year    = {2024}
}
```
"""


def _code(value: Any) -> str:
    return f"`{json.dumps(value, sort_keys=True)}`"


def _evaluation(folder: Path) -> list[str]:
    """The evaluation's metrics table (ratio and mean score with their bootstrap intervals)."""
    from mmaip_core.stages.evaluate import EvalResults
    from mmaip_core.store.files import read_record

    if not (folder / layout.RESULTS).is_file():
        raise UserError(f"{folder}: not a finished evaluation (no {layout.RESULTS})")
    results = read_record(folder / layout.RESULTS, EvalResults)

    def est(value: float | None, low: float | None, high: float | None) -> str:
        return "-" if value is None else f"{value:.3f} [{low or 0:.3f}, {high or 0:.3f}]"

    rows = [
        f"| {r.model} | {r.benchmark} | {r.evaluator} | {r.metrics.n} | {est(**r.metrics.ratio.model_dump())} "
        f"| {est(**r.metrics.score.model_dump())} |"
        for r in results.metrics
    ]
    return [
        "## Evaluation",
        "",
        f"`mmaip evaluate` ({folder.name}); ratio of 'yes' verdicts and mean score, with 95% bootstrap intervals:",
        "",
        "| model | benchmark | evaluator | n | ratio | score |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def frame_policy(settings: dict[str, Any] | None) -> dict[str, Any]:
    """The frame settings that shape the model's inputs (not where this machine caches them)."""
    return {k: v for k, v in (settings or {}).items() if k not in ("cache_dir", "cache")}


def _rounds(manifest: TrainManifest) -> list[str]:
    return [
        "| round | pairs | steps | alpha | reference policy | model |",
        "|---|---|---|---|---|---|",
        *[
            f"| {r.round} | {r.result.pairs} | {r.result.steps} | {r.alpha:g} | {r.reference_policy} "
            f"| {'extrapolated' if r.strong else 'policy'} |"
            for r in manifest.rounds
        ],
    ]


HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def _hub_model(trainer: Any) -> str | None:
    """The trainer's starting model when it names a Hub repository (``owner/name`` and no folder of that name
    here), for the card's ``base_model``, which the Hub links to; None for a local checkpoint."""
    model = trainer.get("model") if isinstance(trainer, dict) else None
    if not isinstance(model, str) or not HUB_ID.fullmatch(model) or Path(model).exists():
        return None
    return model


def model_card(
    manifest: TrainManifest, repo_id: str, *, evaluation: Path | None = None, dataset: str | None = None
) -> str:
    """The model card of a finished training run: base and trainer, rounds, reference policy, alpha, the data,
    and the evaluation's figures when ``evaluation`` (an ``mmaip evaluate`` folder) is given."""
    run = manifest.run
    train: dict[str, Any] = (run.config.get("train") or {}) if run else {}
    last = manifest.rounds[-1]
    head = ["---", "library_name: transformers", "tags: [mmaip, video, dpo, iter-w2s-rlaif]"]
    base = _hub_model(train.get("trainer"))
    head += [f"base_model: {base}", "base_model_relation: finetune"] if base else []
    head += [f"datasets: [{dataset}]"] if dataset else []
    data = f"[{dataset}](https://huggingface.co/datasets/{dataset}), " if dataset else ""
    lines = [
        *head,
        "---",
        "",
        f"# {repo_id.split('/')[-1]}",
        "",
        f"A video LLM trained by mmaip {run.mmaip_version if run else ''} with Iter-W2S-RLAIF: "
        f"{len(manifest.rounds)} round(s) of `{manifest.trainer}` preference optimisation, the reference updated "
        f"every round (`{last.reference_policy}`), and weak-to-strong extrapolation with alpha {last.alpha:g}. "
        f"This is the model of round {manifest.final_round or last.round}.",
        "",
        "## Training",
        "",
        f"- Base model and trainer options: {_code(train.get('trainer'))}",
        f"- Reference policy: {_code(train.get('reference'))}; extrapolation anchor: `{train.get('anchor')}`",
        f"- Alpha: {last.alpha:g}; schedule: `{train.get('schedule')}`; model kept: `{manifest.keep}`",
        f"- Data: {data}pairs file `{Path(str(train.get('pairs'))).name}`",
        f"- Frames: {_code(frame_policy(train.get('frames') or (run.config.get('frames') if run else None)))}",
        "",
        *_rounds(manifest),
        "",
        *(_evaluation(evaluation) if evaluation else []),
        CITATION,
        f"Versions: {_code(run.packages if run else {})}",
        "",
    ]
    return "\n".join(lines)
