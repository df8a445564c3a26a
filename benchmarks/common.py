"""What the benchmark scripts in this folder share: where results go, how the device is described,
timing, the peak an MFU divides by (measured, and the device's published one) and the MFU itself,
peak memory, and the shape of a RESULTS.md entry.

The scripts run as `python benchmarks/NAME.py` and import this as `from common import ...`. Only the
standard library is imported at module level, so scripts that must configure threads before numpy
or torch load (bench_stream.py) and scripts that do not use torch at all can import it first; torch
is imported inside the functions that need it.
"""

from __future__ import annotations

import datetime
import math
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, TypeVar

if TYPE_CHECKING:
    import torch

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
RESULTS = BENCHMARKS / "RESULTS.md"
RESULTS_HEADER = "# Benchmark results\n"
DEFAULT_DATA = Path(os.environ.get("ARC_TRM_SHARED_DATA", REPO.parent / "shared" / "data"))
"""The shared data folder (ARC, Sudoku, Kaggle files): $ARC_TRM_SHARED_DATA or ../shared/data."""

T = TypeVar("T")


def missing_data(data: Path, needed: list[str]) -> str | None:
    """The `parser.error` message for the first of `needed` (paths under `data`) that is absent, else
    None: a benchmark that reads the shared data checks before it spends any time."""
    for name in needed:
        if not (data / name).exists():
            return (f"{data / name}: no such file or folder; give --data the folder that holds {name} "
                    "(or set ARC_TRM_SHARED_DATA)")
    return None


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


MATMUL_SIZE_CUDA = 4096
"""Side of the square matmuls that measure a GPU's rate: large enough to reach the tensor cores' peak."""
CPU_MATMUL_SECONDS = 0.2
"""On a CPU the side is grown until one matmul takes at least this long (timer and scheduler noise
then stay small), up to CPU_MATMUL_MAX_SIZE."""
CPU_MATMUL_MAX_SIZE = 4096
MFU_ERROR = "measurement error (MFU > 100%)"
"""What a table shows instead of an MFU above 100%: such a figure cannot be true (the peak it divides by
was measured low, e.g. at a busy moment), so it is never printed as a number."""

# Published dense (no sparsity) tensor-core peaks, FLOP/s, keyed by a model name found as a whole word
# in the CUDA device's name, and the dtype's name. Checked in order: a more specific name comes before
# one it contains (H100 PCIe and NVL before H100). Sources: NVIDIA's data sheets (sparse figures halved).
PUBLISHED_PEAKS: tuple[tuple[str, str, float], ...] = (
    ("H200", "bfloat16", 989.4e12),
    ("H100 PCIe", "bfloat16", 756.5e12),
    ("H100 NVL", "bfloat16", 835.5e12),
    ("H100", "bfloat16", 989.4e12),  # SXM (the name reads e.g. "NVIDIA H100 80GB HBM3")
    ("A100", "bfloat16", 312e12),
    ("L40S", "bfloat16", 362e12),
    ("L4", "bfloat16", 121e12),
)


class MfuError(ValueError):
    """An MFU above 100%: the measurement behind it is wrong, so it is not reported."""


def mfu(achieved: float, peak: float | None) -> float | None:
    """Model FLOP utilisation: `achieved` FLOP/s over `peak` FLOP/s, as a fraction.

    None when the peak is unknown (None, NaN, or not positive). Raises MfuError when the ratio is above
    1 (100% is allowed): a value that cannot be true is refused rather than reported."""
    if peak is None or not math.isfinite(peak) or peak <= 0 or not math.isfinite(achieved):
        return None
    ratio = achieved / peak
    if ratio > 1.0:
        raise MfuError(f"MFU {ratio:.1%} > 100%: achieved {achieved:.4g} FLOP/s against a peak of {peak:.4g} FLOP/s")
    return ratio


def mfu_cell(achieved: float, peak: float | None) -> str:
    """An MFU as a table cell: "41.2%", "unknown" (no peak), or MFU_ERROR (above 100%)."""
    try:
        value = mfu(achieved, peak)
    except MfuError:
        return MFU_ERROR
    return "unknown" if value is None else f"{value:.1%}"


def published_peak(device_name: str | None, dtype: torch.dtype | str) -> float | None:
    """The published dense peak FLOP/s of the device named `device_name` (a CUDA device's name; None
    for a CPU) in `dtype`, from PUBLISHED_PEAKS; None when it is not known (a CPU, fp32, another GPU)."""
    if not device_name:
        return None
    dtype_name = str(dtype).removeprefix("torch.")
    for model, peak_dtype, flops in PUBLISHED_PEAKS:
        # the model as a whole word: "L4" is not in "NVIDIA L40S" nor in "NVIDIA L40"
        if re.search(rf"(?<![a-z0-9]){re.escape(model.lower())}(?![a-z0-9])", device_name.lower()):
            return flops if peak_dtype == dtype_name else None
    return None


def device_name(device: torch.device) -> str | None:
    """A CUDA device's name (what PUBLISHED_PEAKS is keyed by); None for any other device."""
    if device.type != "cuda":
        return None
    import torch

    return torch.cuda.get_device_name(device)


def peak_memory(device: torch.device) -> tuple[float, float]:
    """(allocated, reserved) peak GiB on a CUDA device since the last torch.cuda.reset_peak_memory_stats;
    NaN for both elsewhere (shown as n/a by memory_cell)."""
    if device.type != "cuda":
        return float("nan"), float("nan")
    import torch

    return torch.cuda.max_memory_allocated(device) / 2**30, torch.cuda.max_memory_reserved(device) / 2**30


def reset_peak_memory(device: torch.device) -> None:
    """Start peak_memory's count afresh on a CUDA device: the allocator's cached blocks (an earlier
    mode's) are released first, so that the reserved peak is this mode's own."""
    if device.type == "cuda":
        import torch

        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def memory_cell(gib: float) -> str:
    return "n/a" if math.isnan(gib) else f"{gib:.2f}"


@dataclass
class MatmulPeak:
    """A measured dense matmul rate and how it was measured."""

    rate: float
    """FLOP/s: the best of the timed repeats."""
    size: int
    repeats: int
    dtype: str

    def describe(self) -> str:
        return (f"measured matmul rate {self.rate / 1e12:.3f} TFLOP/s ({self.dtype}, best of {self.repeats} "
                f"{self.size}x{self.size} matmuls after warm-up)")


def _time_matmuls(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, count: int) -> float:
    """Seconds per matmul over `count` back-to-back a @ b into `out`: CUDA events on a GPU (the kernels'
    own time, no host round trip in it), the wall clock elsewhere."""
    import torch

    if a.device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(count):
            torch.matmul(a, b, out=out)
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000 / count
    begin = time.perf_counter()
    for _ in range(count):
        torch.matmul(a, b, out=out)
    return (time.perf_counter() - begin) / count


def _operands(size: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    import torch

    generator = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=generator).to(device=device, dtype=dtype)
    return a, b, torch.empty(size, size, device=device, dtype=dtype)


def cpu_matmul_size(dtype: torch.dtype, min_seconds: float = CPU_MATMUL_SECONDS, max_size: int = CPU_MATMUL_MAX_SIZE) -> int:
    """The side (a multiple of 256) at which one square matmul in `dtype` takes about `min_seconds` on
    this CPU with torch's threads: grown from 512 by the cube root of the time still missing."""
    import torch

    size = 512
    while size < max_size:
        a, b, out = _operands(size, torch.device("cpu"), dtype)
        _time_matmuls(a, b, out, 1)  # first touch
        seconds = _time_matmuls(a, b, out, 1)
        if seconds >= min_seconds:
            break
        grown = size * (min_seconds / max(seconds, 1e-6)) ** (1 / 3) * 1.1  # 10% over, to land above
        size = min(max_size, max(size + 256, math.ceil(grown / 256) * 256))
    return min(size, max_size)


def measure_peak(device: torch.device, dtype: torch.dtype, size: int | None = None, repeats: int | None = None,
                 warmup_seconds: float | None = None, warmup_iterations: int | None = None) -> MatmulPeak:
    """This device's dense matmul rate in `dtype`, the peak that MFU divides by, measured so that it is
    hard to under-estimate (an under-estimate is what makes an MFU above 100%):

    - size: 4096 on a GPU; on a CPU, grown until one matmul takes >= CPU_MATMUL_SECONDS;
    - warm-up: on a GPU at least `warmup_seconds` (1 s) of matmuls, which raises the clocks; on a CPU
      `warmup_iterations` (3) matmuls;
    - then `repeats` (20 on a GPU, 10 on a CPU) timed rounds, each of 10 back-to-back matmuls on a
      GPU (timed with CUDA events) or one on a CPU, and the best round counts: a busy moment or a
      clock dip lowers some rounds, never the best one.
    """
    cuda = device.type == "cuda"
    size = size or (MATMUL_SIZE_CUDA if cuda else cpu_matmul_size(dtype))
    repeats = repeats or (20 if cuda else 10)
    warmup_seconds = (1.0 if cuda else 0.0) if warmup_seconds is None else warmup_seconds
    warmup_iterations = (3 if not cuda else 10) if warmup_iterations is None else warmup_iterations
    per_round = 10 if cuda else 1
    a, b, out = _operands(size, device, dtype)
    begin, done = time.perf_counter(), 0
    while done < warmup_iterations or time.perf_counter() - begin < warmup_seconds:
        _time_matmuls(a, b, out, per_round)  # waits for the GPU, so the wall clock counts GPU time
        done += per_round
    best = min(_time_matmuls(a, b, out, per_round) for _ in range(repeats))
    return MatmulPeak(2 * size**3 / best, size, repeats, str(dtype).removeprefix("torch."))


def matmul_rate(device: torch.device, dtype: torch.dtype, size: int | None = None, repeats: int | None = None,
                warmup_seconds: float | None = None, warmup_iterations: int | None = None) -> float:
    """This device's dense matmul FLOP/s in `dtype` (see measure_peak for how it is measured)."""
    return measure_peak(device, dtype, size, repeats, warmup_seconds, warmup_iterations).rate


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


def publish(text: str, no_record: bool, path: Path = RESULTS) -> None:
    """Print an entry, and append it to RESULTS.md (or `path`) unless `--no-record` was given."""
    print(text)
    if not no_record:
        record(text, path)


def check_results(parser: Any, results: str, inputs: Mapping[str, Path | None] | None = None) -> None:
    """--results, checked before any work: a file in an existing folder (else `parser.error`), and none of
    the command's `inputs` (`{what it is: path}`), which appending an entry would corrupt (a ConfigError)."""
    from arc_trm.io import refuse_output_on_input

    path = Path(results)
    if path.is_dir() or not path.parent.is_dir():
        parser.error(f"--results {path}: not a file in an existing folder")
    refuse_output_on_input(path, inputs or {}, option="--results")


def publish_entry(script: str, args: Any, argv: list[str], device: str, figures: str, body: list[str]) -> None:
    """The entry of `script` (its `__file__`) from its parsed `args` (`no_record`, `results`): printed, and
    appended to the results file unless --no-record."""
    publish(entry(script, device, command_line(script, argv), figures, body), args.no_record, Path(args.results))


def finish_fraction_axes(axis: Any, ylabel: str, title: str) -> None:
    """The look every accuracy curve shares: a fraction from 0 to 1, a light grid, the legend top left."""
    axis.set_ylabel(ylabel)
    axis.set_ylim(0, 1)
    axis.grid(alpha=0.3)
    axis.legend(loc="upper left", fontsize=8)
    axis.set_title(title)
    axis.figure.tight_layout()


def save_figure(figure: Any, path: Path) -> None:
    """Write a matplotlib figure to `path` atomically (a picture beside an entry is never half-written) and close it."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    figure.savefig(tmp)
    plt.close(figure)
    tmp.replace(path)
