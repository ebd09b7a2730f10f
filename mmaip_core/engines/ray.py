"""Ray as the distributed engine of a build: ``mmaip build CONFIG --out DIR --engine ray --shards N``.

Each of the N shards (:mod:`mmaip_core.stages.shards`) runs as one Ray task, on an existing cluster
(``--ray-address`` or ``RAY_ADDRESS``) or on a Ray started in this process when none is given; the workers must
see ``DIR`` (a shared filesystem), since each shard keeps its ledger there. The guarantees are the shards': every
call is committed to its shard's ledger the moment it ends, so a killed run, rerun, pays for no finished call
twice; the last shard to end merges. Progress is reported by every task to one small actor, which the driver
reads to draw a single set of progress bars across the workers.

Ray is an optional extra (``pip install mmaip[ray]``); mmaip schedules nothing itself.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from mmaip_core.config import RunConfig
from mmaip_core.errors import UserError
from mmaip_core.stages.run import BuildSummary, Progress
from mmaip_core.store import layout
from mmaip_core.store.files import read_record

__all__ = ["run_build_on_ray"]

POLL_S = 0.5
PASSED_ON = ("OPENAI_", "ANTHROPIC_", "HF_", "MMAIP_")


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError("--engine ray needs Ray: pip install 'mmaip[ray]'") from None
    return ray


def run_build_on_ray(
    config: RunConfig,
    out: Path,
    shards: int | None = None,
    address: str | None = None,
    progress: Progress | None = None,
    max_cost: float | None = None,
    limit: int | None = None,
) -> BuildSummary:
    """Build ``out`` as ``shards`` Ray tasks (default: one per CPU of the cluster) and return the merged summary. ``max_cost`` is shared equally
    between the shards (each shard's ledger keeps its own spending). The variables mmaip and the API clients
    read (``OPENAI_*``, ``ANTHROPIC_*``, ``HF_*``, ``MMAIP_*``) are passed on to the workers."""
    ray = _ray()
    started = not ray.is_initialized()
    if started:
        env = {k: v for k, v in os.environ.items() if k.startswith(PASSED_ON)}
        ray.init(address=address, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
    try:
        shards = shards or max(1, int(ray.cluster_resources().get("CPU", 1)))
        board = ray.remote(_Board).remote()
        task = ray.remote(_build_shard)
        share = max_cost / shards if max_cost is not None else None
        pending = [task.remote(config, str(out), i, shards, board, share, limit) for i in range(shards)]
        _wait(ray, pending, board, progress or (lambda *_: None))
    finally:
        if started:
            ray.shutdown()
    return read_record(out / layout.SUMMARY, BuildSummary)


def _wait(ray: Any, pending: list[Any], board: Any, progress: Progress) -> None:
    """Draw the board's progress until every task ended; the first task's error is raised as it was raised."""
    waiting = list(pending)
    while waiting:
        _, waiting = ray.wait(waiting, num_returns=len(waiting), timeout=POLL_S)
        for stage, (done, total, spent) in ray.get(board.totals.remote()).items():
            progress(stage, done, total, spent)
    try:
        ray.get(pending)
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause if isinstance(exc.cause, Exception) else exc
        raise cause from None


class _Board:
    """The progress of every shard (a Ray actor): the latest (done, total) per shard and stage, and the latest
    spending of each shard's folder."""

    def __init__(self) -> None:
        self.latest: dict[tuple[int, str], tuple[int, int]] = {}
        self.spent: dict[int, float] = {}

    def report(self, shard: int, stage: str, done: int, total: int, spent: float) -> None:
        self.latest[(shard, stage)] = (done, total)
        self.spent[shard] = spent

    def totals(self) -> dict[str, tuple[int, int, float]]:
        """Per stage: done and total added up over the shards, with the spending of all shards."""
        spent = sum(self.spent.values())
        merged: dict[str, tuple[int, int, float]] = {}
        for (_, stage), (done, total) in self.latest.items():
            old = merged.get(stage, (0, 0, 0.0))
            merged[stage] = (old[0] + done, old[1] + total, spent)
        return merged


def _build_shard(
    config: RunConfig,
    out: str,
    index: int,
    count: int,
    board: Any,
    max_cost: float | None,
    limit: int | None,
) -> None:
    """One shard, in a Ray worker: the same build as ``mmaip build --shard index/count``."""
    from mmaip_core.plugins.manager import get_plugin_manager
    from mmaip_core.stages.build import run_build
    from mmaip_core.stages.stream import Shard

    last = [0.0]

    def report(stage: str, done: int, total: int, spent: float) -> None:
        if time.monotonic() - last[0] >= POLL_S / 2 or done == total:
            last[0] = time.monotonic()
            board.report.remote(index, stage, done, total, spent)

    run_build(
        config, out, get_plugin_manager(), progress=report, max_cost=max_cost, limit=limit, shard=Shard(index, count)
    )
