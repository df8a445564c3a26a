"""Speed of the ARC data pipeline on one CPU core: building the arc1 preset, and the TrainStream.

    python benchmarks/bench_stream.py [--repeats 3] [--batches 20] [--num-aug 1000] [--no-record]

Measures (arc1 preset, canvas 30, global batch 768):
- build: `arc_trm.data.arc.build` (load + leak guard + dedup of all versions + Arrow write), and
  `ArcSource.load` of the result;
- stream: examples/s of `TrainStream` for world 1, and for rank 0 of world 4 (which only materialises
  its quarter of each global batch), counted in CPU seconds of this process so that other load on a
  shared machine does not distort it.
An H100 consumes about 1,500 fresh examples/s of TRM training, so the stream must beat that per
process or be given more cores. Results are appended to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import os

# One core: no hidden BLAS/OpenMP threads (set before numpy and torch load).
for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(variable, "1")

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

from arc_trm.data.arc import ArcSource, build
from arc_trm.data.stream import TrainStream

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/common.py, however the script is started
from common import command_line, describe_device, entry, publish, timed  # noqa: E402

H100_EXAMPLES_PER_S = 1500
GLOBAL_BATCH = 768


def cpu_seconds(function: Callable[[], object]) -> float:
    """CPU seconds of this process that one call of `function` takes."""
    return timed(function, clock=time.process_time)[0]


def stream_rates(source: ArcSource, batches: int, repeats: int, rank: int, world: int) -> list[float]:
    """Examples per CPU-second of one rank's slices, one figure per repeat (after two warm-up batches)."""
    stream = TrainStream(source, GLOBAL_BATCH, rank=rank, world=world, seed=0)
    for _ in range(2):
        next(stream)
    examples = batches * stream.local_batch
    return [examples / cpu_seconds(lambda: [next(stream) for _ in range(batches)]) for _ in range(repeats)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batches", type=int, default=20, help="batches per stream repeat")
    parser.add_argument("--num-aug", type=int, default=1000)
    parser.add_argument("--no-record", action="store_true", help="print only, do not append to RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(1)

    built: list[ArcSource] = []
    build_s, load_s = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as folder:
            build_s.append(cpu_seconds(lambda: built.append(build("arc1", folder, args.num_aug, seed=0, canvas=30))))
            load_s.append(cpu_seconds(lambda: ArcSource.load(folder)))
    source = built[0]
    world1 = stream_rates(source, args.batches, args.repeats, rank=0, world=1)
    rank0 = stream_rates(source, args.batches, args.repeats, rank=0, world=4)
    mean_rate = sum(world1) / len(world1)
    cores = max(1, math.ceil(H100_EXAMPLES_PER_S / mean_rate))

    versions = sum(len(ks) for ks in source.distinct)
    rows = [
        (f"build arc1, num_aug {args.num_aug} ({len(source)} tasks, {versions:,} distinct versions), CPU s", build_s, min),
        ("ArcSource.load of that folder, CPU s", load_s, min),
        (f"TrainStream world 1, global batch {GLOBAL_BATCH}: examples per CPU-second", world1, max),
        (f"TrainStream rank 0 of 4 ({GLOBAL_BATCH // 4} per rank): examples per CPU-second", rank0, max),
    ]
    table = ["| what | mean | best |", "| --- | ---: | ---: |"]
    table += [f"| {what} | {sum(v) / len(v):,.1f} | {best(v):,.1f} |" for what, v, best in rows]
    text = entry(
        __file__, describe_device(), command_line(__file__),
        f"mean and best of {args.repeats} repeats ({args.batches} batches per stream repeat)",
        [*table, "", f"An H100 consumes ~{H100_EXAMPLES_PER_S:,} examples/s: the stream needs {cores} core(s) per GPU "
                     f"(one core gives {mean_rate / H100_EXAMPLES_PER_S:.1f}x that)."],
    )
    publish(text, args.no_record)


if __name__ == "__main__":
    main()
