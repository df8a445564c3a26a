"""Processes: the Accelerator every entry point builds, and the process group's end.

Without CUDA the Accelerator is built with `cpu=True`: then `accelerate launch --multi_gpu
--num_processes N` (or a multi-node launch) forms one gloo group of N CPU processes, where a plain
`Accelerator()` would leave each process training alone. Under a DeepSpeed launch without CUDA,
`cpu=True` would switch DeepSpeed off (Accelerate only enables it on accelerators), so there the
Accelerator is built normally with a gloo backend: DeepSpeed's CPU accelerator then runs ZeRO over
gloo, which is how the ZeRO configs are tested on a CPU-only machine. The process group is
destroyed on the way out, or the interpreter aborts at exit.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
from typing import Any, Iterator

import torch
from accelerate import Accelerator
from accelerate.utils import InitProcessGroupKwargs


def make_accelerator(**kwargs: Any) -> Accelerator:
    """The Accelerator for this launch. Only the main process logs arc_trm's warnings: every process
    loads the same data, so the others would repeat them."""
    if torch.cuda.is_available():
        accelerator = Accelerator(**kwargs)
    elif os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true":
        accelerator = Accelerator(kwargs_handlers=[InitProcessGroupKwargs(backend="gloo")], **kwargs)
    else:
        accelerator = Accelerator(cpu=True, **kwargs)
    if not accelerator.is_main_process:
        logging.getLogger("arc_trm").setLevel(logging.ERROR)
    return accelerator


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
