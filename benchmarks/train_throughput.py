"""Training throughput of the real TRM training step: examples x supervision steps per second, MFU.

    python benchmarks/train_throughput.py                                  # arc1 shapes, eager + compiled
    python benchmarks/train_throughput.py --preset tiny --batch 32 --steps 20
    python benchmarks/train_throughput.py --modes eager --batch 192 --steps 30   # a GPU

Runs `Trainer.train_step` (ACT carry, stablemax + halt losses, AdamATan2, sparse puzzle-embedding
SignSGD, EMA) on real ARC-AGI-1 batches from the training stream, after warm-up steps, in each mode
(`eager`: plain PyTorch; `compiled`: torch.compile of the whole model, as the reference does). Also
measures the device's dense matmul rate (square matmuls in the compute dtype) in the same run, so
MFU = achieved model FLOP/s / measured matmul FLOP/s. Appends an entry to benchmarks/RESULTS.md.

FLOP count per example and supervision step (matmuls only, 2 FLOP per multiply-add): a layer pass
costs, per token, 2·D·3D (QKV) + 2·D·D (output) + 4·L·D (scores and values) + 2·D·2W + 2·W·D
(SwiGLU); one step makes T·(n+1)·layers forward layer passes, and the last cycle's (n+1)·layers
passes are also back-propagated at twice the forward cost; plus the output head. For arc1
(D 512, L 916, W 1536, T 3, n 4) that is 50 layer-pass equivalents, about 0.40 TFLOP.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
from pathlib import Path

import torch
from accelerate import Accelerator

from arc_trm.config import load_config
from arc_trm.data.arc import ArcSource, arc_tasks
from arc_trm.model.layers import swiglu_width
from arc_trm.model.trm import ModelConfig
from arc_trm.train import build_trainer

RESULTS = Path(__file__).parent / "RESULTS.md"


def flops_per_example_step(c: ModelConfig) -> float:
    L, D = c.total_len, c.hidden
    W = swiglu_width(D, c.expansion)
    if c.mixer == "attention":
        mixer = 2 * D * 3 * D + 2 * D * D + 4 * L * D
    else:  # a SwiGLU over the sequence for each of the D channels, spread over the L tokens
        mixer = 6 * swiglu_width(L, c.expansion) * D
    per_token_layer = mixer + 2 * D * 2 * W + 2 * W * D
    layer_passes = c.T * (c.n + 1) * c.layers + 2 * (c.n + 1) * c.layers
    head = 3 * 2 * D * c.vocab_size  # forward + backward of lm_head
    return L * (layer_passes * per_token_layer + head)


def matmul_rate(device: torch.device, dtype: torch.dtype, size: int = 4096, repeats: int = 10) -> float:
    """Measured dense matmul FLOP/s on this device in this dtype."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


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
    if accelerator.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for batch in batches[: args.warmup]:
        trainer.train_step(batch)
    sync(accelerator.device)
    start = time.perf_counter()
    for batch in batches[args.warmup :]:
        trainer.train_step(batch)
    sync(accelerator.device)
    elapsed = time.perf_counter() - start
    rate = args.batch * args.steps / elapsed
    flops = flops_per_example_step(config.model)
    return {
        "examples_per_s": rate,
        "tokens_per_s": rate * config.model.total_len,
        "tflops": rate * flops / 1e12,
        "flop_per_example_step": flops,
        "peak_memory_gb": torch.cuda.max_memory_allocated() / 2**30 if accelerator.device.type == "cuda" else float("nan"),
        "dtype": config.model.forward_dtype,
    }


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return f"CPU {model}, {torch.get_num_threads()} threads"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="arc1")
    parser.add_argument("--batch", type=int, default=2, help="examples per step on this device")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--modes", default="eager,compiled")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args()

    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    config = load_config([f"preset={args.preset}"])
    tasks, held_out = arc_tasks(config.data.tasks)
    source = ArcSource.from_tasks(tasks, held_out, num_aug=8, seed=0, canvas=config.data.canvas)
    dtype = torch.bfloat16 if accelerator.device.type == "cuda" else torch.float32
    peak = matmul_rate(accelerator.device, dtype, size=4096 if accelerator.device.type == "cuda" else 1024)
    rows = []
    for mode in args.modes.split(","):
        result = run_mode(mode, args, accelerator, source)
        result["mfu"] = result["tflops"] * 1e12 / peak
        rows.append((mode, result))
        print(f"{mode}: {result['examples_per_s']:.2f} examples x steps/s, {result['tokens_per_s']:.0f} tokens/s, "
              f"{result['tflops']:.3f} TFLOP/s, MFU {result['mfu']:.1%} of measured {peak / 1e12:.3f} TFLOP/s")
    lines = [
        f"\n## Training throughput, {args.preset} shapes — {datetime.date.today()}",
        f"- device: {device_name(accelerator.device)}; torch {torch.__version__}; CUDA {torch.version.cuda}",
        f"- command: `python benchmarks/{Path(__file__).name} --preset {args.preset} --batch {args.batch} "
        f"--steps {args.steps} --warmup {args.warmup} --modes {args.modes}`",
        f"- per-device batch {args.batch}; {rows[0][1]['flop_per_example_step'] / 1e9:.1f} GFLOP per example-step (analytic, see the script); "
        f"measured matmul rate {peak / 1e12:.3f} TFLOP/s ({dtype})",
        "",
        "| mode | dtype | examples x steps/s | tokens/s | TFLOP/s | MFU | peak memory GiB | vs eager |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    base = rows[0][1]["examples_per_s"]
    for mode, r in rows:
        lines.append(f"| {mode} | {r['dtype']} | {r['examples_per_s']:.3f} | {r['tokens_per_s']:.0f} | {r['tflops']:.4f} | "
                     f"{r['mfu']:.1%} | {r['peak_memory_gb']:.2f} | {r['examples_per_s'] / base:.2f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_record:
        with open(RESULTS, "a") as handle:
            handle.write(text)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
