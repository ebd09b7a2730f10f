"""The processes of a training run: one, or several under ``accelerate launch`` / ``torchrun`` (or any launcher
that sets accelerate's environment, e.g. SLURM's ``srun`` with ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``).

Some steps run on the main process only (writing the base model, extrapolating, the manifest) while the others
wait. A failure there must reach every process with its cause. Without an exchange, the others learn of it only
from the transport: ``torchrun`` kills them (SIGTERM), gloo fails them with "Connection closed by peer" (seen on
the CPU), and a launcher without an elastic agent over NCCL leaves them waiting at the barrier until the process
group's timeout. :meth:`Processes.together` ends such a step with an exchange of status (accelerate's
``gather_object``), so every process raises, naming the failed process and its error, when any failed in it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from mmaip_core.errors import TrainingError

__all__ = ["Processes"]


@dataclass(frozen=True)
class Processes:
    """This process's place among the run's processes (:meth:`current`)."""

    index: int
    count: int

    @property
    def main(self) -> bool:
        return self.index == 0

    @classmethod
    def current(cls) -> Processes:
        """The processes accelerate sees (gloo on the CPU, the accelerator's backend otherwise)."""
        import torch
        from accelerate import PartialState

        state = PartialState(cpu=not torch.cuda.is_available())
        return cls(state.process_index, state.num_processes)

    @contextmanager
    def together(self) -> Iterator[None]:
        """A step that some processes (e.g. only the main one) run while the others wait: at its end every
        process waits for all, and when it failed on any, every process raises: the failed one its own error,
        the others a TrainingError naming the process and the error."""
        if self.count == 1:
            yield
            return
        from accelerate.utils import gather_object

        failure: Exception | None = None
        try:
            yield
        except Exception as exc:  # shared with the other processes below, then raised again
            failure = exc
        status = None if failure is None else f"process {self.index} failed: {type(failure).__name__}: {failure}"
        statuses = gather_object([status])
        if failure is not None:
            raise failure
        failed = [s for s in statuses if s is not None]
        if failed:
            raise TrainingError(f"the run stopped on another process ({failed[0]})")
