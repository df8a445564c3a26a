"""Training throughput of the real TRM training step: examples x supervision steps per second, MFU.

    python benchmarks/train_throughput.py                                  # arc1 shapes, eager + compiled
    python benchmarks/train_throughput.py --preset tiny --batch 32 --steps 20
    python benchmarks/train_throughput.py --modes eager --batch 192 --steps 30   # a GPU

Runs `Trainer.train_step` (ACT carry, stablemax + halt losses, AdamATan2, sparse puzzle-embedding
SignSGD, EMA) on real ARC-AGI-1 batches from the training stream, after warm-up steps, in each mode
(`eager`: plain PyTorch; `compiled`: torch.compile of the whole model, as the reference does). Also
measures the device's dense matmul rate (square matmuls in the compute dtype) in the same run, so
MFU = achieved model FLOP/s / measured matmul FLOP/s. Appends an entry to benchmarks/RESULTS.md.

FLOP count per example and supervision step: `arc_trm.model.flops.flops_per_example_step` with
training=True (matmuls only; the last cycle's layer passes are back-propagated at twice the forward
cost). For arc1 (D 512, L 916, W 1536, T 3, n 4) that is 50 layer-pass equivalents, about 0.40 TFLOP.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from accelerate import Accelerator

from arc_trm.config import load_config
from arc_trm.data.arc import ArcSource, arc_tasks
from arc_trm.model.flops import flops_per_example_step
from arc_trm.distributed import make_accelerator, process_group
from arc_trm.train import build_trainer

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/common.py, however the script is started
from common import command_line, describe_device, entry, matmul_rate, publish, timed  # noqa: E402


def run_mode(mode: str, args: argparse.Namespace, accelerator: Accelerator, source: ArcSource) -> dict[str, float]:
    overrides = [f"preset={args.preset}", f"train.global_batch={args.batch}", f"train.compile={mode == 'compiled'}",
                 "train.lr_warmup_steps=0", "run.tracker=none"]
    if accelerator.device.type != "cuda":
        overrides.append("model.forward_dtype=float32")
    config = load_config(overrides)
    config.model.vocab_size, config.model.seq_len = source.vocab_size, source.seq_len
    trainer = build_trainer(config, accelerator, source)
    stream = iter(trainer.stream)
    batches = [{k: v.to(accelerator.device) for k, v in next(stream).items()} for _ in range(args.warmup + args.steps)]

    def train_steps(chosen: list[dict[str, torch.Tensor]]) -> None:
        for batch in chosen:
            trainer.train_step(batch)

    if accelerator.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    train_steps(batches[: args.warmup])
    elapsed, _ = timed(lambda: train_steps(batches[args.warmup :]), accelerator.device)
    rate = args.batch * args.steps / elapsed
    flops = flops_per_example_step(config.model, training=True)
    return {
        "examples_per_s": rate,
        "tokens_per_s": rate * config.model.total_len,
        "tflops": rate * flops / 1e12,
        "flop_per_example_step": flops,
        "peak_memory_gb": torch.cuda.max_memory_allocated() / 2**30 if accelerator.device.type == "cuda" else float("nan"),
        "dtype": config.model.forward_dtype,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="arc1")
    parser.add_argument("--batch", type=int, default=2, help="examples per step on this device")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--modes", default="eager,compiled")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args()

    accelerator = make_accelerator()
    config = load_config([f"preset={args.preset}"])
    tasks, held_out = arc_tasks(config.data.tasks)
    source = ArcSource.from_tasks(tasks, held_out, num_aug=8, seed=0, canvas=config.data.canvas)
    dtype = torch.bfloat16 if accelerator.device.type == "cuda" else torch.float32
    peak = matmul_rate(accelerator.device, dtype)
    rows = []
    for mode in args.modes.split(","):
        result = run_mode(mode, args, accelerator, source)
        result["mfu"] = result["tflops"] * 1e12 / peak
        rows.append((mode, result))
        print(f"{mode}: {result['examples_per_s']:.2f} examples x steps/s, {result['tokens_per_s']:.0f} tokens/s, "
              f"{result['tflops']:.3f} TFLOP/s, MFU {result['mfu']:.1%} of measured {peak / 1e12:.3f} TFLOP/s")
    body = [
        "| mode | dtype | examples x steps/s | tokens/s | TFLOP/s | MFU | peak memory GiB | vs eager |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    base = rows[0][1]["examples_per_s"]
    for mode, r in rows:
        body.append(f"| {mode} | {r['dtype']} | {r['examples_per_s']:.3f} | {r['tokens_per_s']:.0f} | {r['tflops']:.4f} | "
                    f"{r['mfu']:.1%} | {r['peak_memory_gb']:.2f} | {r['examples_per_s'] / base:.2f}x |")
    figures = (
        f"{args.preset} shapes, per-device batch {args.batch}, {args.steps} timed steps after {args.warmup} warm-up; "
        f"{rows[0][1]['flop_per_example_step'] / 1e9:.1f} GFLOP per example-step (analytic, arc_trm/model/flops.py); "
        f"measured matmul rate {peak / 1e12:.3f} TFLOP/s ({dtype}); MFU = achieved / measured"
    )
    text = entry(__file__, describe_device(accelerator.device), command_line(__file__), figures, body)
    publish(text, args.no_record)


if __name__ == "__main__":
    with process_group():
        main()
