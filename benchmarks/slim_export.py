"""Size of an exported model folder before and after `python -m arc_trm.slim_export`, at a real
preset's shapes (random weights: only the sizes matter).

    python benchmarks/slim_export.py [--preset arc2] [--num-ids 1281281]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from arc_trm.config import load_config
from arc_trm.exported import DataInfo, export_model
from arc_trm.model.trm import TRM
from arc_trm.slim_export import folder_bytes, slim_export

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/common.py, however the script is started
from common import command_line, describe_device, entry, publish  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="arc2")
    parser.add_argument("--num-ids", type=int, default=1_281_281, help="puzzle ids (arc2 + ConceptARC as built: 1,281,281)")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)
    config = load_config([f"preset={args.preset}"]).model
    config.seq_len = 900
    model = TRM(config)
    table = torch.randn(args.num_ids, config.hidden) * 0.01
    with tempfile.TemporaryDirectory() as tmp:
        full = export_model(Path(tmp) / "full", model, table, DataInfo(seq_len=900))
        started = time.perf_counter()
        slim = slim_export(full, Path(tmp) / "slim")
        seconds = time.perf_counter() - started
        sizes = folder_bytes(full), folder_bytes(slim)
    body = [
        "| folder | MiB |",
        "| --- | ---: |",
        f"| exported model ({args.preset} shapes, {args.num_ids:,} puzzle ids) | {sizes[0] / 2**20:,.1f} |",
        f"| slim_export (fine-tuning only) | {sizes[1] / 2**20:,.1f} |",
        "",
        f"The slim copy is {sizes[0] / sizes[1]:,.0f}x smaller; writing it took {seconds:.1f} s (loading the full model included).",
    ]
    publish(entry(__file__, describe_device(None), command_line(__file__, argv), "folder sizes, one run", body), args.no_record)


if __name__ == "__main__":
    main()
