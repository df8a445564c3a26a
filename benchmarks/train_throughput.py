"""Training throughput of the real TRM training step: examples x supervision steps per second, MFU.

    python benchmarks/train_throughput.py                                  # arc1 shapes, eager + compiled
    python benchmarks/train_throughput.py --preset tiny --batch 32 --steps 20
    python benchmarks/train_throughput.py --modes eager --batch 192 --steps 30   # a GPU
    python benchmarks/train_throughput.py --modes compiled --compile-scope block --no-record

Runs `Trainer.train_step` (ACT carry, stablemax + halt losses, AdamATan2, sparse puzzle-embedding
SignSGD, EMA) on real ARC-AGI-1 batches from the training stream, after warm-up steps, in each mode
(`eager`: plain PyTorch; `compiled`: torch.compile, of the whole model with `--compile-scope model`,
the default, as `train.compile=true` and the reference do, or of each of the repeated blocks alone
with `--compile-scope block`, which traces one small graph instead of the model's T(n+1) x layers
unrolled block calls and so is expected to compile faster, but fuses nothing across blocks). Also
measures the device's dense matmul rate (square matmuls in the compute dtype, see
common.measure_peak) in the same run, so MFU = achieved model FLOP/s / measured matmul FLOP/s, and
on a GPU whose published dense peak is known (common.PUBLISHED_PEAKS) also against that. An MFU
above 100% cannot be true and is shown as "measurement error (MFU > 100%)". Peak memory: allocated
and reserved by PyTorch's CUDA allocator (n/a on a CPU). Appends an entry to benchmarks/RESULTS.md.

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
from arc_trm.distributed import make_accelerator, process_group
from arc_trm.model.flops import flops_per_example_step
from arc_trm.train import build_trainer

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/common.py, however the script is started
from common import (  # noqa: E402
    command_line,
    describe_device,
    device_name,
    entry,
    measure_peak,
    memory_cell,
    mfu_cell,
    peak_memory,
    publish,
    published_peak,
    reset_peak_memory,
    timed,
)


def run_mode(mode: str, args: argparse.Namespace, accelerator: Accelerator, source: ArcSource) -> dict:
    whole_model = mode == "compiled" and args.compile_scope == "model"
    overrides = [f"preset={args.preset}", f"train.global_batch={args.batch}", f"train.compile={whole_model}",
                 "train.lr_warmup_steps=0", "run.tracker=none"]
    if accelerator.device.type != "cuda":
        overrides.append("model.forward_dtype=float32")
    config = load_config(overrides)
    config.model.vocab_size, config.model.seq_len = source.vocab_size, source.seq_len
    trainer = build_trainer(config, accelerator, source)
    if mode == "compiled" and args.compile_scope == "block":
        for block in trainer.raw_model.blocks:  # in place, as model.compile(); the training step is unchanged
            block.compile()
    stream = iter(trainer.stream)
    batches = [{k: v.to(accelerator.device) for k, v in next(stream).items()} for _ in range(args.warmup + args.steps)]

    def train_steps(chosen: list[dict[str, torch.Tensor]]) -> None:
        for batch in chosen:
            trainer.train_step(batch)

    reset_peak_memory(accelerator.device)
    warmup_seconds, _ = timed(lambda: train_steps(batches[: args.warmup]), accelerator.device)  # compilation included
    elapsed, _ = timed(lambda: train_steps(batches[args.warmup :]), accelerator.device)
    rate = args.batch * args.steps / elapsed
    flops = flops_per_example_step(config.model, training=True)
    allocated, reserved = peak_memory(accelerator.device)
    return {
        "mode": mode if mode == "eager" else f"{mode} ({args.compile_scope})",
        "examples_per_s": rate,
        "warmup_s": warmup_seconds,
        "tokens_per_s": rate * config.model.total_len,
        "tflops": rate * flops / 1e12,
        "flop_per_example_step": flops,
        "allocated_gib": allocated,
        "reserved_gib": reserved,
        "dtype": config.model.forward_dtype,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="arc1")
    parser.add_argument("--batch", type=int, default=2, help="examples per step on this device")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--modes", default="eager,compiled", help="comma-separated: eager, compiled")
    parser.add_argument("--compile-scope", choices=("model", "block"), default="model",
                        help="what `compiled` compiles: the whole model (what train.compile=true runs) or each block")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args()
    modes = args.modes.split(",")
    if unknown := [mode for mode in modes if mode not in ("eager", "compiled")]:
        parser.error(f"unknown mode {unknown[0]!r} (eager, compiled)")

    accelerator = make_accelerator()
    config = load_config([f"preset={args.preset}"])
    tasks, held_out = arc_tasks(config.data.tasks)
    source = ArcSource.from_tasks(tasks, held_out, num_aug=8, seed=0, canvas=config.data.canvas)
    dtype = torch.bfloat16 if accelerator.device.type == "cuda" else torch.float32
    peak = measure_peak(accelerator.device, dtype)
    name = device_name(accelerator.device)
    rows = []
    for mode in modes:
        r = run_mode(mode, args, accelerator, source)
        achieved, published = r["tflops"] * 1e12, published_peak(name, r["dtype"])
        r["mfu"], r["mfu_published"] = mfu_cell(achieved, peak.rate), mfu_cell(achieved, published)
        rows.append(r)
        print(f"{r['mode']}: {r['examples_per_s']:.2f} examples x steps/s, {r['tokens_per_s']:.0f} tokens/s, "
              f"{r['tflops']:.3f} TFLOP/s, MFU {r['mfu']} of measured {peak.rate / 1e12:.3f} TFLOP/s, "
              f"{r['mfu_published']} of published; peak memory {memory_cell(r['allocated_gib'])} GiB allocated, "
              f"{memory_cell(r['reserved_gib'])} GiB reserved; warm-up {r['warmup_s']:.1f} s")
    body = [
        "| mode | dtype | examples x steps/s | tokens/s | TFLOP/s | MFU (measured peak) | MFU (published peak) | "
        "peak memory allocated GiB | peak memory reserved GiB | warm-up s | vs eager |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    base = next((r["examples_per_s"] for r in rows if r["mode"] == "eager"), None)
    for r in rows:
        versus = "-" if base is None else f"{r['examples_per_s'] / base:.2f}x"
        body.append(f"| {r['mode']} | {r['dtype']} | {r['examples_per_s']:.3f} | {r['tokens_per_s']:.0f} | {r['tflops']:.4f} | "
                    f"{r['mfu']} | {r['mfu_published']} | {memory_cell(r['allocated_gib'])} | "
                    f"{memory_cell(r['reserved_gib'])} | {r['warmup_s']:.1f} | {versus} |")
    published = published_peak(name, rows[0]["dtype"])
    published_text = "unknown" if published is None else f"{published / 1e12:.1f} TFLOP/s ({rows[0]['dtype']}, {name})"
    figures = (
        f"{args.preset} shapes, per-device batch {args.batch}, {args.steps} timed steps after {args.warmup} warm-up; "
        f"{rows[0]['flop_per_example_step'] / 1e9:.1f} GFLOP per example-step (analytic, arc_trm/model/flops.py); "
        f"{peak.describe()}; published dense peak {published_text}; warm-up s: the warm-up steps, compilation included; "
        f"MFU = achieved / peak (an MFU above 100% is a measurement error and shown as such)"
    )
    text = entry(__file__, describe_device(accelerator.device), command_line(__file__), figures, body)
    publish(text, args.no_record)


if __name__ == "__main__":
    with process_group():
        main()
