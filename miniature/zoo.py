"""The miniature's zoo: tiny video MLLMs of two architectures, trained by supervised fine-tuning on ShapesQA
for different budgets and seeds, so that their answers range from weak to strong.

Each member is a real checkpoint folder (``hf`` generator, ``video-dpo`` trainer and ``mmaip extrapolate`` all
load it), cached under a key of everything that makes it: the member, the training data, the frames and the
recipe, so a second run trains nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel, Field

from mmaip_core import Frames, VideoQA, is_complete, stable_hash
from mmaip_plugins.trainers.sft import SftOptions, sft
from mmaip_plugins.zoo.tiny import TinyFamily, build_tiny_model

__all__ = [
    "BASE_CANDIDATES",
    "DEFAULT_ZOO",
    "OTHER_MEMBERS",
    "RECIPE_VERSION",
    "ZooMember",
    "build_zoo",
    "member_folder",
]

RECIPE_VERSION = 1  # bump when the same member and data would train a different model


class ZooMember(BaseModel):
    """One model of the zoo: a tiny random model of ``family`` and ``seed``, fine-tuned for ``steps``."""

    name: str
    family: TinyFamily
    seed: int = 0
    steps: int = Field(ge=1, description="SFT optimizer steps: the member's budget.")
    learning_rate: float = Field(default=3e-3, gt=0)


BASE_CANDIDATES = [
    ZooMember(name="llava-weak", family="llava-onevision", seed=0, steps=300),
    ZooMember(name="llava-500-s0", family="llava-onevision", seed=0, steps=500),
    ZooMember(name="llava-500-s1", family="llava-onevision", seed=1, steps=500),
    ZooMember(name="llava-700-s0", family="llava-onevision", seed=0, steps=700),
]
"""The full run's candidates for the base (LLaVA-OneVision at 300, 500 and 700 steps, seeds 0 and 1); the rule
of base.py chooses among them on the validation questions, :data:`OTHER_MEMBERS` set the bar."""

OTHER_MEMBERS = [
    ZooMember(name="qwen2vl", family="qwen2-vl", seed=1, steps=1500),
    ZooMember(name="llava-mid", family="llava-onevision", seed=1, steps=700),
    ZooMember(name="llava-strong", family="llava-onevision", seed=2, steps=1500),
]
"""The zoo besides the base: another architecture and two stronger LLaVA-OneVision members."""

DEFAULT_ZOO = [BASE_CANDIDATES[1], *OTHER_MEMBERS]
"""The default run's zoo; the first member is the base, the policy that training improves: the candidate the
full run's rule chose on 2026-11-30 (llava-500-s0: 36.7% on the 300 validation questions, video gap real minus
shuffled 3.3 [0.3, 6.3] points; the 300-step member's gap, 1.7 [-1.0, 4.3], does not clear 0; docs/miniature.md).
With fewer steps a tiny model answers every question of a type alike: it has learnt the answers' prior, not to
look, and can only learn better priors."""


def member_folder(cache: Path, member: ZooMember, data_key: str, batch_size: int) -> Path:
    key = stable_hash({"member": member.model_dump(), "data": data_key, "batch": batch_size, "v": RECIPE_VERSION})
    return cache / f"{member.name}-{key[:12]}"


def build_zoo(
    members: Sequence[ZooMember],
    samples: Sequence[VideoQA],
    frames: Callable[[], Mapping[str, Frames]],
    cache: Path,
    *,
    data_key: str,
    batch_size: int = 32,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Path]:
    """Fine-tune every member on ``samples`` unless its checkpoint is cached; return the folders by member
    name. ``frames()`` gives the samples' frames by video; it is called only if a member must be trained.
    ``data_key`` identifies the samples and frames (part of the cache key)."""
    folders = {}
    loaded: Mapping[str, Frames] | None = None
    for done, member in enumerate(members):
        folder = member_folder(cache, member, data_key, batch_size)
        if progress is not None:
            progress(f"zoo: {member.name}", done, len(members))
        if not is_complete(folder):
            loaded = loaded if loaded is not None else frames()
            base = build_tiny_model(member.family, member.seed, cache / "tiny-models")
            options = SftOptions(
                max_steps=member.steps,
                learning_rate=member.learning_rate,
                batch_size=batch_size,
                seed=member.seed,
                cache_dir=cache / "features",
            )
            sft(base, samples, loaded, folder, options)
        folders[member.name] = folder
    if progress is not None:
        progress("zoo", len(members), len(members))
    return folders
