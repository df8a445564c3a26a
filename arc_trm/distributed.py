"""Processes: the Accelerator every entry point builds, and the process group's end.

Without CUDA the Accelerator is built with `cpu=True`: then `accelerate launch --multi_gpu
--num_processes N` (or a multi-node launch) forms one gloo group of N CPU processes, where a plain
`Accelerator()` would leave each process training alone. Under a DeepSpeed launch without CUDA,
`cpu=True` would switch DeepSpeed off (Accelerate only enables it on accelerators), so there the
Accelerator is built normally with a gloo backend: DeepSpeed's CPU accelerator then runs ZeRO over
gloo, which is how the ZeRO configs are tested on a CPU-only machine. The process group is
destroyed on the way out, or the interpreter aborts at exit.

`run_on_processes` starts a module under `accelerate launch` on N processes (N GPUs, or N gloo
processes without CUDA) and waits for it, for a caller that stays one process (submissions.make).
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import logging
import os
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import IO, Any, Iterator

import psutil
import torch
from accelerate import Accelerator
from accelerate.utils import InitProcessGroupKwargs

from arc_trm.errors import ConfigError


def make_accelerator(**kwargs: Any) -> Accelerator:
    """The Accelerator for this launch. Only the main process logs arc_trm's warnings: every process
    loads the same data, so the others would repeat them."""
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true" and importlib.util.find_spec("deepspeed") is None:
        raise ConfigError("a DeepSpeed launch needs DeepSpeed: pip install 'arc_trm[deepspeed]' (or launch without it: DDP)")
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


def free_port() -> int:
    """A TCP port nothing listens on now, for a process group's rendezvous."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


OUT_OF_MEMORY = "out of memory"


@dataclass(frozen=True)
class Launched:
    returncode: int
    out_of_memory: bool  # "out of memory" appeared anywhere in the processes' error output
    stderr_tail: str  # its last lines


class ErrorOutput:
    """Passes a launch's error output through to ours as it comes, and remembers its tail and whether
    it ever reported running out of memory (the worker's own error scrolls far up: the launcher
    reports every other process after it)."""

    def __init__(self, stream: IO[bytes], keep: int = 4000):
        self.stream, self.keep = stream, keep
        self.tail, self.out_of_memory = "", False
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        sink = getattr(sys.stderr, "buffer", None)
        for chunk in iter(lambda: self.stream.read1(1 << 16), b""):
            text = chunk.decode(errors="replace")
            if sink is not None:
                sink.write(chunk)
                sink.flush()
            else:
                sys.stderr.write(text)
            # the end of the previous chunk too: the phrase may straddle two chunks
            self.out_of_memory |= OUT_OF_MEMORY in (self.tail[-len(OUT_OF_MEMORY) :] + text).lower()
            self.tail = (self.tail + text)[-self.keep :]


def run_on_processes(module: str, args: list[str], processes: int, timeout: float | None = None) -> Launched:
    """`accelerate launch --multi_gpu --num_processes N -m module args`, waited for. Its output goes
    to ours as it comes. Past `timeout` seconds (or when this process is interrupted) every process it
    started is killed; then `subprocess.TimeoutExpired` (or the interruption) is raised."""
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
        "--num_machines", "1", "--main_process_port", str(free_port()), "-m", module, *args,
    ]
    child = subprocess.Popen(command, stderr=subprocess.PIPE)
    errors = ErrorOutput(child.stderr)
    try:
        child.wait(timeout=timeout)
    except BaseException:
        kill_tree(child.pid)
        raise
    finally:
        errors.thread.join(timeout=60)  # the pipe closes when the last process holding it ends
    return Launched(child.returncode, errors.out_of_memory, errors.tail)


def kill_tree(pid: int) -> None:
    """Kill a process and all its descendants. Not by process group: the launcher starts each worker
    in a session of its own."""
    try:
        root = psutil.Process(pid)
        family = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for process in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(family, timeout=30)
