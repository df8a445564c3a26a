"""Prediction throughput: candidates per second of `predict_queries` (test inputs x augmentations x steps / s).

    python benchmarks/predict_throughput.py                        # arc1 and tiny shapes on this device
    python benchmarks/predict_throughput.py --shapes arc1 --batch 256 --batches 8   # a GPU
    python benchmarks/predict_throughput.py --shapes tiny --no-record
    python benchmarks/predict_throughput.py --shapes arc1 --modes compiled --compile-scope block

Times `arc_trm.inference.predict_queries` (all supervision steps without halting, argmax, decoding,
inverse augmentation, one Candidate per step) on real ARC-AGI-1 evaluation test inputs under sampled
augmentations, with random weights (speed does not depend on them). Shapes:

- `arc1`: the reference ARC model (hidden 512, 8 heads, seq 900 + 16 prefix, T=3, n=4, 16 steps);
- `tiny`: the tiny preset (hidden 64, canvas 10: seq 100 + 4, T=2, n=2, 4 steps).

Modes (`--modes`): `eager`, and `compiled`: torch.compile of the whole model with `--compile-scope
model`, the default and what `python -m arc_trm.predict compile=true` does, or of each repeated block
alone with `--compile-scope block` (one small graph instead of T(n+1) x layers unrolled block calls:
expected to compile faster, fusing nothing across blocks). MFU is measured against the matmul rate
this run measures (common.measure_peak) and, on a GPU whose published dense peak is known, against
that; an MFU above 100% cannot be true and is shown as "measurement error (MFU > 100%)". Peak memory
allocated and reserved by PyTorch's CUDA allocator, per shape and mode (n/a on a CPU).
bf16 on CUDA (the reference's forward dtype), fp32 on CPU (CPU bf16 matmuls are slow). One warm-up
batch of two steps, then `--batches` timed batches. One candidate = one example-step, so
"time per supervision step per example" = 1 / (candidates/s). Appends an entry to benchmarks/RESULTS.md
with a projection (not a measurement) of ARC-AGI-2 evaluation on Kaggle's 4 x L4; see `projection`.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import torch

from arc_trm.config import load_config
from arc_trm.exported import DataInfo, PuzzleIndex
from arc_trm.inference import predict_queries, queries
from arc_trm.model.flops import flops_per_example_step, layer_passes
from arc_trm.model.puzzle_embedding import PuzzleEmbedding
from arc_trm.model.trm import TRM, ModelConfig
from arc_trm.splits import resolve

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

# Projection inputs (sources: docs/model.md#published-figures-this-project-relies-on)
H100_TRAIN_EXAMPLE_STEPS = 800.0  # reference training, example-steps/s per H100 (Trelis / McGovern, arXiv 2511.02886)
L4_PER_H100 = 1 / 8  # L4 ~ 1/8 H100 in bf16 (NVIDIA data sheets: 121 vs 989 dense TFLOP/s)
KAGGLE_L4S = 4
ARC2_TEST_INPUTS = 167  # ARC-AGI-2 evaluation: 120 tasks, 167 test inputs
AUGMENTATIONS = 1001  # identity + 1000
STEPS = 16


def shape_config(name: str, cuda: bool) -> ModelConfig:
    dtype = "bfloat16" if cuda else "float32"
    if name == "arc1":
        return ModelConfig(seq_len=900, forward_dtype=dtype)  # the defaults are the reference ARC model
    if name == "tiny":
        config = load_config(["preset=tiny"])
        model = config.model
        return ModelConfig(
            vocab_size=12, seq_len=config.data.canvas**2, hidden=model.hidden, heads=model.heads, expansion=model.expansion,
            layers=model.layers, T=model.T, n=model.n, halt_max_steps=model.halt_max_steps,
            puzzle_emb_len=model.puzzle_emb_len, forward_dtype=dtype,
        )
    raise SystemExit(f"error: unknown shape '{name}' (arc1, tiny)")


def workload(canvas: int, count: int, seed: int = 0) -> list:
    """`count` queries: ARC-AGI-1 evaluation test inputs that fit the canvas, each under augmentations
    0, 1, 2, ... (as prediction orders them), with their own puzzle ids."""
    tasks = [t for t in resolve("arc-agi-1/evaluation") if all(max(p.input.shape) <= canvas for p in t.test)]
    per_input = min(AUGMENTATIONS - 1, count)
    tasks = tasks[: count // (per_input + 1) + 1]
    index = PuzzleIndex.from_data(DataInfo(task_ids=tuple(t.id for t in tasks), num_aug=per_input, seed=seed, canvas=canvas))
    return list(itertools.islice(queries(tasks, index, per_input), count))


def measure(name: str, mode: str, batch: int, batches: int, steps: int | None, device: torch.device,
            compile_scope: str = "model") -> dict:
    """One shape in one mode: `eager`, or `compiled` (torch.compile of the whole model, as
    `python -m arc_trm.predict compile=true` runs it, or of each block with compile_scope "block")."""
    config = shape_config(name, device.type == "cuda")
    steps = steps or config.halt_max_steps
    torch.manual_seed(0)
    model = TRM(config).to(device).eval()
    if mode == "compiled" and compile_scope == "model":
        model.compile()
    elif mode == "compiled":
        for block in model.blocks:
            block.compile()
    items = workload(int(round(config.seq_len**0.5)), batch * (batches + 1))
    table = PuzzleEmbedding(max(q.version.puzzle_id for q in items) + 1, config.hidden, device)
    table.weights.normal_(0, 0.02)
    warm, measured = items[:batch], items[batch:]
    reset_peak_memory(device)
    # warm-up (kernels, allocator, compilation): two steps, as the first step's (y, z) are laid out differently
    warmup_seconds, _ = timed(lambda: predict_queries(model, table, warm, batch, min(2, steps), device), device)
    elapsed, (candidates, _) = timed(lambda: predict_queries(model, table, measured, batch, steps, device), device)
    assert len(candidates) == len(measured) * steps
    rate = len(candidates) / elapsed
    flops = flops_per_example_step(config, training=False)
    allocated, reserved = peak_memory(device)
    return {"shape": name, "mode": mode if mode == "eager" else f"{mode} ({compile_scope})",
            "allocated_gib": allocated, "reserved_gib": reserved, "warmup_s": warmup_seconds, "dtype": config.forward_dtype,
            "batch": batch, "batches": batches, "steps": steps, "candidates": len(candidates), "seconds": elapsed, "rate": rate, "per_step_ms": 1000 / rate,
            "gflop": flops / 1e9, "gflops_s": rate * flops / 1e9, "config": config}


def projection() -> list[str]:
    """ARC-AGI-2 evaluation on Kaggle's 4 x L4, from published training rates: a projection, not a measurement."""
    arc1 = ModelConfig()
    train_passes, infer_passes = layer_passes(arc1, True), layer_passes(arc1, False)
    work = ARC2_TEST_INPUTS * AUGMENTATIONS * STEPS
    h100 = H100_TRAIN_EXAMPLE_STEPS * train_passes / infer_passes
    kaggle = h100 * L4_PER_H100 * KAGGLE_L4S
    kaggle_third = H100_TRAIN_EXAMPLE_STEPS * 3 * L4_PER_H100 * KAGGLE_L4S
    return [
        "",
        "**Projection (not a measurement): ARC-AGI-2 evaluation on Kaggle's 4 x L4, arc1 shape, bf16.**",
        f"- work: {ARC2_TEST_INPUTS} test inputs (120 tasks) x {AUGMENTATIONS} augmentations x {STEPS} steps = {work:,} example-steps (candidates)",
        f"- assumed: the reference trains at ~{H100_TRAIN_EXAMPLE_STEPS:.0f} example-steps/s per H100 (Trelis, arXiv 2511.02886); "
        f"a training step is {train_passes} layer-pass equivalents (T(n+1)x2 = {infer_passes} forward + 2 x (n+1)x2 = "
        f"{train_passes - infer_passes} for the backward of the last cycle only), an inference step {infer_passes}; "
        f"so inference ~ {H100_TRAIN_EXAMPLE_STEPS:.0f} x {train_passes}/{infer_passes} = {h100:,.0f} example-steps/s per H100; "
        f"L4 ~ 1/8 H100 bf16 (data sheets); batches large enough to reach the training efficiency",
        f"- 4 x L4: {h100:,.0f} x 1/8 x 4 = {kaggle:,.0f} example-steps/s -> {work:,} / {kaggle:,.0f} = "
        f"{work / kaggle:,.0f} s = **{work / kaggle / 60:.0f} min**",
        f"- with the cruder 'inference = 1/3 of a training step' rule (backward = 2 x forward over the whole step, "
        f"which over-counts: TRM back-propagates only the last of its T cycles): {H100_TRAIN_EXAMPLE_STEPS:.0f} x 3 x 1/8 x 4 = "
        f"{kaggle_third:,.0f} /s -> {work / kaggle_third / 60:.0f} min",
        f"- cross-check: Trelis report ~1 h of inference on 4 x L4 with 256-512 augmentations (arXiv 2511.02886); this projection gives "
        f"{ARC2_TEST_INPUTS * 513 * STEPS / kaggle / 60:.0f} min for 512, so expect real runs up to ~2x slower than projected",
        "- not included: loading the ~2.6 GB puzzle table, CPU decoding/voting, and the test-time fine-tuning that "
        "new (hidden) tasks need before their puzzle ids mean anything",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default="arc1,tiny", help="comma-separated: arc1, tiny")
    parser.add_argument("--batch", type=int, default=None, help="queries per batch (default: arc1 2 on CPU / 256 on CUDA; tiny 64)")
    parser.add_argument("--batches", type=int, default=None, help="timed batches (default: arc1 2 on CPU / 8 on CUDA; tiny 8)")
    parser.add_argument("--steps", type=int, default=None, help="supervision steps (default: the shape's halt_max_steps)")
    parser.add_argument("--modes", default="eager,compiled", help="comma-separated: eager, compiled")
    parser.add_argument("--compile-scope", choices=("model", "block"), default="model",
                        help="what `compiled` compiles: the whole model (what predict compile=true runs) or each block")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args()
    modes, shapes = args.modes.split(","), args.shapes.split(",")
    if unknown := [mode for mode in modes if mode not in ("eager", "compiled")]:
        parser.error(f"unknown mode {unknown[0]!r} (eager, compiled)")
    if unknown := [shape for shape in shapes if shape not in ("arc1", "tiny")]:
        parser.error(f"unknown shape {unknown[0]!r} (arc1, tiny)")

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device.type == "cuda"
    print(f"device: {describe_device(device)}")
    peak = measure_peak(device, torch.bfloat16 if cuda else torch.float32)
    device_label = device_name(device)
    results = []
    for name in shapes:
        batch = args.batch or {"arc1": 256 if cuda else 2, "tiny": 64}[name]
        batches = args.batches or {"arc1": 8 if cuda else 2, "tiny": 8}[name]
        for mode in modes:
            r = measure(name, mode, batch, batches, args.steps, device, args.compile_scope)
            achieved, published = r["gflops_s"] * 1e9, published_peak(device_label, r["dtype"])
            r["mfu"], r["mfu_published"] = mfu_cell(achieved, peak.rate), mfu_cell(achieved, published)
            results.append(r)
            print(f"{name} {r['mode']}: batch {r['batch']}, {r['candidates']} candidates in {r['seconds']:.2f} s: "
                  f"{r['rate']:.2f} candidates/s, {r['per_step_ms']:.2f} ms per supervision step per example, "
                  f"{r['gflops_s']:.1f} GFLOP/s ({r['gflop']:.2f} GFLOP per example-step, {r['dtype']}), MFU {r['mfu']} of measured, "
                  f"{r['mfu_published']} of published; peak memory {memory_cell(r['allocated_gib'])} GiB allocated, "
                  f"{memory_cell(r['reserved_gib'])} GiB reserved; warm-up {r['warmup_s']:.1f} s")

    lines = [
        "| shape | mode | dtype | batch | candidates timed | candidates/s | ms per step per example | GFLOP per example-step | "
        "GFLOP/s | MFU (measured peak) | MFU (published peak) | peak memory allocated GiB | peak memory reserved GiB | warm-up s | "
        "vs eager |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        c = r["config"]
        shape = f"{r['shape']} (D {c.hidden}, seq {c.seq_len}+{c.puzzle_emb_len}, T {c.T}, n {c.n}, {r['steps']} steps)"
        base = next((b["rate"] for b in results if b["shape"] == r["shape"] and b["mode"] == "eager"), None)
        versus = "-" if base is None else f"{r['rate'] / base:.2f}x"
        lines.append(f"| {shape} | {r['mode']} | {r['dtype']} | {r['batch']} | {r['candidates']} | {r['rate']:.2f} | "
                     f"{r['per_step_ms']:.2f} | {r['gflop']:.2f} | {r['gflops_s']:.1f} | {r['mfu']} | {r['mfu_published']} | "
                     f"{memory_cell(r['allocated_gib'])} | {memory_cell(r['reserved_gib'])} | {r['warmup_s']:.1f} | {versus} |")
    arc1 = max((r for r in results if r["shape"] == "arc1"), key=lambda r: r["rate"], default=None)
    if arc1 is not None:
        work = ARC2_TEST_INPUTS * AUGMENTATIONS * STEPS
        lines.append(f"\nAt the measured arc1 rate, this device would take {work / arc1['rate'] / 3600:,.0f} h for ARC-AGI-2 "
                     f"evaluation ({work:,} example-steps).")
    lines += projection()
    published = published_peak(device_label, results[0]["dtype"])
    published_text = "unknown" if published is None else f"{published / 1e12:.1f} TFLOP/s, {results[0]['dtype']}, {device_label}"
    figures = ("one timed run of `predict_queries` per shape and mode (after a two-step warm-up batch), random weights, "
               "real ARC-AGI-1 evaluation test inputs under sampled augmentations; candidates/s = example-steps/s; "
               f"MFU = achieved / the {peak.describe()} in the same run, and / the published dense peak "
               f"({published_text}); an MFU above 100% is a measurement error and shown as such; warm-up s: the warm-up "
               "batch, compilation included")
    text = entry(__file__, describe_device(device), command_line(__file__), figures, lines)
    publish(text, args.no_record)


if __name__ == "__main__":
    main()
