"""An exported model that carries only what test-time fine-tuning reads, for uploading to Kaggle.

    python -m arc_trm.slim_export runs/arc2/model --out models/arc2-finetune

Fine-tuning (`train.init_from`, `submissions.make`) takes the dense weights and starts every puzzle
id of the new tasks at the mean of the trained puzzle embeddings: of the puzzle table (about 2.3 GB
for arc2) it reads one row. The slim copy holds the same config.json and weights.safetensors, a
table of two rows (the blank id's row and that mean) and a data.json that names no task, so the
model knows no task until it is fine-tuned (prediction without fine-tuning uses the blank id for
every task, as it would for any unseen one).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from arc_trm.errors import ArgumentParser, exit_on_user_error, nonempty_path
from arc_trm.exported import DataInfo, export_model, load_model
from arc_trm.io import refuse_output_on_input

KEPT_EXTRA = ("vocab_size",)
"""Kept of data.json's untyped keys besides the track, canvas and sequence length; no task is named."""


def slim_export(checkpoint: str | Path, out: str | Path) -> Path:
    """Write the fine-tuning-only copy of the exported model at `checkpoint` to `out`."""
    loaded = load_model(checkpoint)
    rows = torch.stack([loaded.table.weights[0], loaded.table.mean_row()])
    info = loaded.data
    slim = DataInfo(track=info.track, num_puzzle_ids=2, seq_len=info.seq_len, canvas=info.canvas, finetune_only=True,
                    source=str(Path(checkpoint).resolve()), extra={key: info.extra[key] for key in KEPT_EXTRA if key in info.extra})
    return export_model(Path(out), loaded.model, rows, slim)


def run_folder_around(checkpoint: Path) -> Path | None:
    """The run folder whose `model` the checkpoint is: a copy written into it would become what that
    run folder resolves to (`model_dir_of` prefers a model at the top)."""
    model = checkpoint.resolve()
    return model.parent if model.name == "model" and (model.parent / "config.yaml").is_file() else None


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m arc_trm.slim_export", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="an exported model folder (runs/NAME/model) or its run directory")
    parser.add_argument("--out", required=True, type=nonempty_path, help="folder for the slim copy")
    args = parser.parse_args(argv)
    checkpoint = Path(args.checkpoint)
    refuse_output_on_input(args.out, {"the checkpoint": checkpoint, "the run folder of the checkpoint": run_folder_around(checkpoint)})
    out = slim_export(args.checkpoint, args.out)
    source = Path(args.checkpoint) / "model" if (Path(args.checkpoint) / "model").is_dir() else Path(args.checkpoint)
    print(f"wrote {out}: {folder_bytes(out) / 2**20:.1f} MiB (the full model: {folder_bytes(source) / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
