"""Run ``mmaip`` (argv) with accelerate's FSDP on the CPU (gloo), for the tests: accelerate 1.x turns FSDP on
for accelerators only (``AcceleratorState`` keeps ``MULTI_CPU`` and ignores the FSDP plugin), though PyTorch's
FSDP2 runs on gloo. This marks the state FSDP once accelerate has set it up, so that the trainer takes
accelerate's FSDP2 paths (``fully_shard`` in ``prepare``, the full state dict, sharded step checkpoints) as on
GPUs, and reports on stderr how many parameters ``prepare`` sharded."""

from __future__ import annotations

import sys
from typing import Any

import accelerate.accelerator
from accelerate.state import AcceleratorState, PartialState
from accelerate.utils import DistributedType

from mmaip_cli.cli import main

_setup = AcceleratorState.__init__
_shard = accelerate.accelerator.fsdp2_prepare_model


def _fsdp_on_cpu(self: AcceleratorState, *args: Any, fsdp_plugin: Any = None, **kwargs: Any) -> None:
    _setup(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
    if fsdp_plugin is not None and self.distributed_type in (DistributedType.MULTI_CPU, DistributedType.FSDP):
        PartialState().distributed_type = DistributedType.FSDP
        self.distributed_type = DistributedType.FSDP
        self.fsdp_plugin = fsdp_plugin


def _reported_shard(accelerator: Any, model: Any) -> Any:
    from torch.distributed.tensor import DTensor

    model = _shard(accelerator, model)
    sharded = sum(isinstance(p, DTensor) for p in model.parameters())
    print(f"fully_shard: {sharded} of {len(list(model.parameters()))} parameters sharded", file=sys.stderr)
    return model


AcceleratorState.__init__ = _fsdp_on_cpu
accelerate.accelerator.fsdp2_prepare_model = _reported_shard

if __name__ == "__main__":
    main()
