"""Processes launched by torchrun (or anything that sets RANK and WORLD_SIZE), for `embed` and `pretrain`:
which process this is, its device, the process group, and the collectives that are no-ops alone."""
from __future__ import annotations

import os
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Iterator, List, Optional, Tuple

import torch
import torch.distributed as dist

from .errors import InputError

RENDEZVOUS = ("MASTER_ADDR", "MASTER_PORT")


def world() -> Tuple[int, int]:
    """(rank, world size) from the launcher's environment; (0, 1) for a plain run.

    An environment that says distributed without torchrun's rendezvous is refused here, before any
    work: such a process would do its share alone and only fail when it looked for the others."""
    try:
        rank, size = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise InputError(f"RANK={os.environ.get('RANK')!r} and WORLD_SIZE={os.environ.get('WORLD_SIZE')!r} must be "
                         "integers (set by torchrun)") from None
    if size < 1 or not 0 <= rank < size:
        raise InputError(f"RANK={rank} and WORLD_SIZE={size} do not name one of WORLD_SIZE processes (set by torchrun)")
    missing = [name for name in RENDEZVOUS if size > 1 and not os.environ.get(name)]
    if missing:
        raise InputError(f"WORLD_SIZE={size} says this is one of {size} processes, but {' and '.join(missing)} "
                         f"{'is' if len(missing) == 1 else 'are'} not set: start the processes with `torchrun "
                         f"--nproc_per_node {size} -m spacy_elmo ...`, or unset WORLD_SIZE and RANK to run one")
    return rank, size


def local_device(size: int) -> torch.device:
    """This process's device: a GPU where there are any (its own, LOCAL_RANK, among several processes)."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    if size == 1:
        return torch.device("cuda")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(local)
    return torch.device("cuda", local)


@contextmanager
def process_group(size: int, device: torch.device, timeout: Optional[timedelta] = None) -> Iterator[None]:
    """The group of all `size` processes for the duration (none for one process): nccl between GPUs,
    gloo between CPUs of any number of machines (torchrun provides the rendezvous)."""
    if size == 1:
        yield
        return
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timeout)
    try:
        yield
    finally:
        dist.destroy_process_group()


def all_sum(tensor: torch.Tensor, size: int) -> torch.Tensor:
    """`tensor` summed over all processes, in place."""
    if size > 1:
        dist.all_reduce(tensor)
    return tensor


def all_max(tensor: torch.Tensor, size: int) -> torch.Tensor:
    """`tensor`'s elementwise maximum over all processes, in place."""
    if size > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor


def all_gather(item: Any, size: int) -> List[Any]:
    """Every process's `item`, in rank order."""
    if size == 1:
        return [item]
    items: List[Any] = [None] * size
    dist.all_gather_object(items, item)
    return items


def barrier(size: int) -> None:
    if size > 1:
        dist.barrier()
