"""Processes: the Accelerator every entry point builds, and the process group's end.

Without CUDA the Accelerator is built with `cpu=True`: then `accelerate launch --multi_gpu
--num_processes N` (or a multi-node launch) forms one gloo group of N CPU processes, where a plain
`Accelerator()` would leave each process training alone. The process group is destroyed on the way
out, or the interpreter aborts at exit.
"""

from __future__ import annotations

import contextlib
import gc
from typing import Any, Iterator

import torch
from accelerate import Accelerator


def make_accelerator(**kwargs: Any) -> Accelerator:
    return Accelerator(cpu=not torch.cuda.is_available(), **kwargs)


def _initialized() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


@contextlib.contextmanager
def process_group() -> Iterator[None]:
    """Run the body, then destroy the process group if one was formed.

    On a normal exit every process first drops what still holds the group (a DDP model kept alive
    by reference cycles would be destroyed during interpreter shutdown, when Gloo's threads abort
    with "terminate called without an active exception"), then waits for the others. After an
    error there is no barrier, which could hang."""
    try:
        yield
        if _initialized():
            gc.collect()
            torch.distributed.barrier()
    finally:
        if _initialized():
            torch.distributed.destroy_process_group()
