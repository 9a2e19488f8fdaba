"""Data-parallel training under ``torchrun``: which process this is, the process
group, and the few collective calls a trainer needs (``vla-bc``, ``vla-grpo``, ``vla-dpo``).

``torchrun --nproc_per_node=N -m agents train ...`` starts N copies of the command
with ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` in their environment. Each copy
joins one process group (``gloo`` on CPU, ``nccl`` on GPU, one GPU per process)
and trains on its share of every global batch; PyTorch's DistributedDataParallel
averages the gradients, so the N processes take the steps one process would take on
the same global batch. Rank 0, the main process, makes the run folder and is the
only one to write logs, checkpoints and the summary, and to evaluate.

Without ``torchrun`` (no ``WORLD_SIZE``) everything here is a no-op: a world of one.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class World:
    """This process's place among the ``torchrun`` processes."""

    rank: int = 0
    local_rank: int = 0
    """Rank on this machine: which GPU the process uses."""
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.size > 1


def world() -> World:
    """Read from the variables ``torchrun`` sets (a world of one without them)."""
    try:
        return World(rank=int(os.environ.get("RANK", 0)),
                     local_rank=int(os.environ.get("LOCAL_RANK", 0)),
                     size=int(os.environ.get("WORLD_SIZE", 1)))
    except ValueError as error:
        raise ValueError(f"RANK, LOCAL_RANK and WORLD_SIZE must be integers (torchrun sets "
                         f"them): {error}") from None


def join(device: str) -> str:
    """Joins the process group (once) and returns the device this process trains on:
    ``cuda:LOCAL_RANK`` for a CUDA run, else ``device`` unchanged."""
    here = world()
    if not here.is_distributed:
        return device
    import torch
    import torch.distributed as dist

    if device.startswith("cuda"):
        if here.local_rank >= torch.cuda.device_count():
            raise ValueError(f"process {here.rank} has LOCAL_RANK {here.local_rank} but this "
                             f"machine has {torch.cuda.device_count()} GPU(s): give torchrun "
                             f"--nproc_per_node at most that many")
        device = f"cuda:{here.local_rank}"
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return device


def leave() -> None:
    """Leaves the process group, if this process joined one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def from_main(make: Callable[[], T]) -> T:
    """``make()`` run by the main process only, its result sent to every process
    (e.g. the run folder's timestamped name, which must be one folder for all)."""
    here = world()
    if not here.is_distributed:
        return make()
    import torch.distributed as dist

    box: list[Any] = [make() if here.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def main_only(log: Callable[..., Any]) -> Callable[..., Any]:
    """``log`` in the main process; a log that prints nothing in the others."""
    return log if world().is_main else _silent


def _silent(*args: Any, **kwargs: Any) -> None:
    """The log of processes other than the main one."""


def gather(item: T) -> list[T]:
    """Every process's ``item`` (any picklable object), in rank order, on every
    process (``[item]`` in a world of one)."""
    here = world()
    if not here.is_distributed:
        return [item]
    import torch.distributed as dist

    items: list[Any] = [None] * here.size
    dist.all_gather_object(items, item)
    return items


def data_parallel(module: Any, device: str) -> Any:
    """``module`` (whose ``forward`` returns the loss) wrapped in PyTorch's
    DistributedDataParallel under torchrun: it broadcasts rank 0's parameters now and
    averages the gradients in every backward. The module itself in a world of one."""
    if not world().is_distributed:
        return module
    import torch

    # The VLA's value head gets no gradient from cloning or GRPO: unused parameters.
    return torch.nn.parallel.DistributedDataParallel(
        module, device_ids=[torch.device(device).index] if device.startswith("cuda") else None,
        find_unused_parameters=True)


def average(values: Any) -> Any:
    """The mean over processes of a tensor (every process gets it)."""
    if not world().is_distributed:
        return values
    import torch.distributed as dist

    values = values.clone()
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values / world().size


def barrier() -> None:
    """Waits until every process gets here (e.g. until the main process has written
    files the others read next)."""
    if not world().is_distributed:
        return
    import torch.distributed as dist

    dist.barrier()


def sum_gradients(parameters: Any) -> None:
    """Replaces each trainable parameter's gradient with the sum over processes (a
    parameter without one counts as zeros): for a trainer that accumulates its share
    of a batch by hand, over a number of backward passes that differs between
    processes, which DistributedDataParallel's per-backward synchronisation cannot do."""
    if not world().is_distributed:
        return
    import torch
    import torch.distributed as dist

    trainable = [p for p in parameters if p.requires_grad]
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                      for p in trainable])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)  # one call: gloo pays per message
    offset = 0
    for p in trainable:
        p.grad = flat[offset:offset + p.numel()].view_as(p).clone()
        offset += p.numel()
