"""What the benchmark scripts in this folder share: where results go, how the device is described,
timing, and the shape of a RESULTS.md entry.

The scripts run as `python benchmarks/NAME.py` and import this as `from common import ...`. Only the
standard library is imported at module level, so scripts that must configure threads before numpy
or torch load (bench_stream.py) and scripts that do not use torch at all can import it first; torch
is imported inside the functions that need it.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, TypeVar

if TYPE_CHECKING:
    import torch

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
RESULTS = BENCHMARKS / "RESULTS.md"
RESULTS_HEADER = "# Benchmark results\n"
DEFAULT_DATA = Path(os.environ.get("ARC_TRM_SHARED_DATA", REPO.parent / "shared" / "data"))
"""The shared data folder (ARC, Sudoku, Kaggle files): $ARC_TRM_SHARED_DATA or ../shared/data."""

T = TypeVar("T")


def cpu_model() -> str:
    """The CPU's model name: from `lscpu`, else /proc/cpuinfo, else what `platform` knows."""
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        pass
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        return next(line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def describe_device(device: torch.device | None = None) -> str:
    """The `device:` line of a results entry.

    - None (a single-process benchmark that does not use torch's thread pool): CPU model, CPU count
      with 1 used, OS and Python;
    - a CPU torch device: the same with torch's thread count as the CPUs used, plus the torch version;
    - a CUDA device: its name and the CUDA version, OS, Python and torch versions.
    """
    host = f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    if device is None:
        return f"{cpu_model()}, {os.cpu_count()} CPUs (1 used), {host}"
    import torch

    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}), {host}, torch {torch.__version__}"
    return f"{cpu_model()}, {os.cpu_count()} CPUs ({torch.get_num_threads()} used), {host}, torch {torch.__version__}"


def sync(device: torch.device | None) -> None:
    """Wait for the work queued on a CUDA device (nothing to wait for elsewhere)."""
    if device is not None and device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def timed(function: Callable[[], T], device: torch.device | None = None,
          clock: Callable[[], float] = time.perf_counter) -> tuple[float, T]:
    """(seconds, result) of one call of `function`, on `clock` (wall time unless told, e.g.
    `time.process_time` for CPU seconds). With a CUDA `device`, queued work is waited for before the
    clock starts and before it stops, so the time covers the kernels the call launched."""
    sync(device)
    start = clock()
    result = function()
    sync(device)
    return clock() - start, result


def matmul_rate(device: torch.device, dtype: torch.dtype, size: int = 4096, repeats: int = 5) -> float:
    """This device's dense matmul FLOP/s in this dtype: the best of `repeats` timed square matmuls, so
    that a busy moment does not lower the peak that MFU is measured against."""
    import torch

    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b  # warm-up
    best = min(timed(lambda: a @ b, device)[0] for _ in range(repeats))
    return 2 * size**3 / best


def command_line(script: str, argv: list[str] | None = None) -> str:
    """The command that ran `script` (pass `__file__`) from the repository root, with `argv`
    (default: this process's arguments)."""
    return " ".join(["python", f"benchmarks/{Path(script).name}", *(sys.argv[1:] if argv is None else argv)])


def entry(script: str, device: str, command: str, figures: str, body: list[str]) -> str:
    """One RESULTS.md entry in the format its header describes: a `##` heading with the UTC date and
    the script, the device, the command and what the figures are, then `body` (the table and notes)."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"## {stamp}: {Path(script).name}", "", f"- device: {device}", f"- command: `{command}`",
             f"- figures: {figures}", "", *body]
    return "\n" + "\n".join(lines) + "\n"


def record(text: str, path: Path = RESULTS) -> None:
    """Append an entry to RESULTS.md after a blank line, creating the file with its header if it is
    missing; never rewrite what is there."""
    try:  # create with the header unless another script already did
        with path.open("x") as handle:
            handle.write(RESULTS_HEADER)
    except FileExistsError:
        pass
    with path.open("a") as handle:
        handle.write("\n" + text.lstrip("\n") + ("" if text.endswith("\n") else "\n"))


def publish(text: str, no_record: bool) -> None:
    """Print an entry, and append it to RESULTS.md unless `--no-record` was given."""
    print(text)
    if not no_record:
        record(text)
