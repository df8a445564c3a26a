"""The puzzle-embedding table replicated vs sharded: memory per process and time per step.

    python benchmarks/puzzle_table.py                        # ARC-1 size (800,801 x 512), 2 processes
    python benchmarks/puzzle_table.py --num-ids 1279201      # ARC-2 + ConceptARC size
    python benchmarks/puzzle_table.py --processes 4 --batch 768

Starts `--processes` gloo processes on this machine. In each mode each process builds the table
(every row written, as after training), then runs the table's part of a training step on a global
batch of random ids: `rows` (sharded: all-gather of ids, all-reduce of world x local-batch rows) and
`SparseSignSGD.step` (all-gather of ids and row gradients, update of the rows held), and finally
`full()` (the whole table assembled on process 0 for export). Memory is the growth of process 0's
resident set while the table is built; times are process 0's wall time (median over steps).
Appends an entry to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import psutil
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from arc_trm.distributed import free_port
from arc_trm.model.puzzle_embedding import PuzzleEmbedding, SparseSignSGD

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/common.py, however the script is started
from common import command_line, describe_device, entry, publish  # noqa: E402

MODES = ("replicated", "sharded")


def gather(tensor: torch.Tensor) -> torch.Tensor:
    out = torch.empty(dist.get_world_size() * tensor.shape[0], *tensor.shape[1:], dtype=tensor.dtype)
    dist.all_gather_into_tensor(out, tensor.contiguous())
    return out


def measure(mode: str, rank: int, world: int, args: argparse.Namespace) -> dict[str, float]:
    process = psutil.Process()
    before = process.memory_info().rss
    sharded = mode == "sharded"
    table = PuzzleEmbedding(args.num_ids, args.dim, rank=rank if sharded else 0, world=world if sharded else 1)
    table.weights.normal_(0, 0.02)
    grown = process.memory_info().rss - before
    optimizer = SparseSignSGD(table, weight_decay=0.1)
    generator = torch.Generator().manual_seed(rank)
    local = args.batch // world
    times = []
    for step in range(args.warmup + args.steps):
        ids = torch.randint(0, args.num_ids, (local,), generator=generator)
        grads = torch.randn(local, args.dim, generator=generator)
        dist.barrier()
        start = time.perf_counter()
        table.rows(ids, requires_grad=True)
        optimizer.step(ids, grads, lr=1e-2, gather=gather)
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    dist.barrier()
    start = time.perf_counter()
    table.full()
    export = time.perf_counter() - start
    del table, optimizer
    return {"memory_gib": grown / 2**30, "rows_mib": args.num_ids * args.dim * 4 / 2**20 / (world if sharded else 1),
            "step_ms": 1e3 * statistics.median(times), "export_s": export}


def worker(rank: int, world: int, port: int, args: argparse.Namespace, results: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        for mode in MODES:
            figures = measure(mode, rank, world, args)
            if rank == 0:
                results[mode] = figures
    finally:
        dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-ids", type=int, default=800_801, help="table rows (ARC-1 at 1000 augmentations)")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--batch", type=int, default=768, help="global batch")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-record", action="store_true", help="print only, do not append to RESULTS.md")
    args = parser.parse_args()
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(worker, args=(args.processes, free_port(), args, results), nprocs=args.processes, join=True)
        results = dict(results)
    rows = [
        f"| {mode} | {r['rows_mib']:,.0f} | {r['memory_gib']:.2f} | {r['step_ms']:.1f} | "
        f"{r['step_ms'] / results['replicated']['step_ms']:.2f}x | {r['export_s']:.2f} |"
        for mode, r in results.items()
    ]
    body = [
        "| mode | table MiB per process (rows x dim x 4 B) | measured resident growth GiB | table ms per step | vs replicated | export (full table on process 0) s |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        *rows,
    ]
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // args.processes))
    figures = (
        f"{args.num_ids:,} x {args.dim} fp32 table, {args.processes} gloo processes on this machine, global batch "
        f"{args.batch} of random ids; median of {args.steps} steps after {args.warmup} warm-up; step = rows + SparseSignSGD.step"
    )
    publish(entry(__file__, describe_device(torch.device("cpu")), command_line(__file__), figures, body), args.no_record)


if __name__ == "__main__":
    main()
