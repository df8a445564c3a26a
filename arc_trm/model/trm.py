"""The Tiny Recursive Model: one small network that refines an answer y and a latent z by recursion.

One *supervision step* (paper, Fig. 1; docs/model.md):

    x = sqrt(D) * [puzzle prefix (16 tokens); token embeddings]          (B, P+L, D)
    T-1 times without gradient:  n times z = f(z + y + x);  y = f(y + z)
    once with gradient:          n times z = f(z + y + x);  y = f(y + z)
    logits = lm_head(y)[:, P:];  q_halt, q_continue = q_head(y[:, 0])

`f` is the same stack of blocks for both updates; whether x is injected is the only difference.
Across supervision steps (y, z) are carried, detached; the carry and halting live in `act.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
from huggingface_hub import PyTorchModelHubMixin, hf_hub_download
from safetensors.torch import load_model, save_model
from torch import nn

from arc_trm.errors import DataError
from arc_trm.io import atomic_write, read_json
from arc_trm.model.layers import Block, CastedEmbedding, CastedLinear, RotaryEmbedding, trunc_normal_

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


@dataclass
class ModelConfig:
    """TRM shape and recursion. Defaults are the reference's ARC model (6,829,058 parameters)."""

    vocab_size: int = 12
    """Token vocabulary: ARC 12 (PAD, EOS, 10 colours), Sudoku 11, Maze 6."""
    seq_len: int = 900
    """Tokens per example without the puzzle prefix: canvas * canvas for ARC."""
    hidden: int = 512
    """Width D of every token vector (y, z, x)."""
    heads: int = 8
    """Attention heads; hidden / heads must be even for rope."""
    expansion: float = 4.0
    """SwiGLU expansion; the width is rounded up to a multiple of 256."""
    layers: int = 2
    """Blocks in the one network f."""
    T: int = 3
    """Recursion cycles per supervision step (T-1 without gradient, 1 with)."""
    n: int = 4
    """z-updates per cycle (the reference README uses 4 for ARC and Maze, 6 for Sudoku)."""
    halt_max_steps: int = 16
    """Supervision steps N_sup: training halts by then at the latest; evaluation always runs all of them."""
    halt_exploration_prob: float = 0.1
    """Probability that a sample draws a minimum step count uniform in [2, halt_max_steps]."""
    puzzle_emb_len: int = 16
    """Prefix tokens (>= 1); token 0 carries the puzzle embedding, the rest are zero registers."""
    mixer: str = "attention"
    """'attention' or 'mlp_t' (SwiGLU along the sequence axis, the Sudoku model)."""
    pos_encodings: str = "rope"
    """'rope', 'learned' or 'none'."""
    rope_theta: float = 10000.0
    """Rotary position base."""
    rms_eps: float = 1e-5
    """RMSNorm epsilon."""
    forward_dtype: str = "bfloat16"
    """Compute dtype; weights stay fp32 and are cast at use."""

    @property
    def total_len(self) -> int:
        return self.seq_len + self.puzzle_emb_len


class StepOutput(NamedTuple):
    y: torch.Tensor  # (B, P+L, D), detached
    z: torch.Tensor  # (B, P+L, D), detached
    logits: torch.Tensor  # (B, L, vocab)
    q_halt: torch.Tensor  # (B,) fp32 logit
    q_continue: torch.Tensor  # (B,) fp32 logit


WEIGHTS_FILE = "weights.safetensors"
"""The dense weights of an exported model (beside config.json, the model config as flat JSON)."""
HUB_DOWNLOAD_OPTIONS = ("revision", "cache_dir", "force_download", "local_files_only", "token")


class TRM(nn.Module, PyTorchModelHubMixin, library_name="arc_trm", tags=["arc-agi", "tiny-recursive-model"]):
    """The dense part of TRM. The puzzle-embedding table is kept outside (see puzzle_embedding.py):
    callers pass the batch's rows, shape (B, D).

    `TRM.from_pretrained(folder or hub id)` and `model.save_pretrained(folder)` (huggingface_hub's
    mixin) read and write the same pair an export holds: config.json and weights.safetensors. The
    project's own loader (`arc_trm.checkpoint.load_model`) also reads the puzzle table and data.json.
    `from_pretrained` raises `arc_trm.errors.DataError`, naming the file, for a folder without config.json
    or weights.safetensors and for a config.json that is not a valid model config (a field of the wrong
    type or out of its range, such as negative heads)."""

    def _save_pretrained(self, save_directory: Path) -> None:
        atomic_write(save_directory / WEIGHTS_FILE, lambda tmp: save_model(self, str(tmp)))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs) -> "TRM":  # type: ignore[override]
        folder = Path(pretrained_model_name_or_path)
        if folder.is_dir():  # checked before the mixin reads config.json, which it does without a word on errors
            from arc_trm.checkpoint import check_weights_fit, model_config_from  # it imports this module

            for name in ("config.json", WEIGHTS_FILE):
                if not (folder / name).is_file():
                    raise DataError(f"{folder}: not a saved TRM (no {name})")
            config = model_config_from(read_json(folder / "config.json"), folder / "config.json")
            check_weights_fit(config, folder / "config.json", folder / WEIGHTS_FILE)
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    @classmethod
    def _from_pretrained(cls, *, model_id: str, map_location: str = "cpu", strict: bool = True, **kwargs) -> "TRM":
        hub = {key: kwargs.pop(key) for key in list(kwargs) if key in (*HUB_DOWNLOAD_OPTIONS, "proxies", "resume_download")}
        if kwargs.get("config") is None:
            raise DataError(f"{model_id}: not a saved TRM (no config.json)")
        if isinstance(kwargs["config"], dict):  # config.json's fields (annotations are strings here)
            from arc_trm.checkpoint import model_config_from

            kwargs["config"] = model_config_from(kwargs["config"], f"{model_id}/config.json")
        model = cls(**kwargs)
        if Path(model_id).is_dir():
            weights = Path(model_id) / WEIGHTS_FILE
        else:
            weights = hf_hub_download(repo_id=model_id, filename=WEIGHTS_FILE,
                                      **{key: value for key, value in hub.items() if key in HUB_DOWNLOAD_OPTIONS})
        load_model(model, str(weights), strict=strict, device=map_location)
        return model

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.mixer not in ("attention", "mlp_t"):
            raise ValueError(f"model.mixer must be 'attention' or 'mlp_t', not {config.mixer!r}")
        if config.pos_encodings not in ("rope", "learned", "none"):
            raise ValueError(f"model.pos_encodings must be rope|learned|none, not {config.pos_encodings!r}")
        self.config = config
        self.dtype = DTYPES[config.forward_dtype]
        D = config.hidden
        self.embed_scale = math.sqrt(D)
        self.embed_tokens = CastedEmbedding(config.vocab_size, D, init_std=1 / self.embed_scale, dtype=self.dtype)
        self.lm_head = CastedLinear(D, config.vocab_size)
        self.q_head = CastedLinear(D, 2, bias=True)
        with torch.no_grad():  # start by never halting: q_halt = -5
            self.q_head.weight.zero_()
            self.q_head.bias.fill_(-5.0)
        self.rope = None
        if config.pos_encodings == "rope":
            self.rope = RotaryEmbedding(D // config.heads, config.total_len, config.rope_theta)
        elif config.pos_encodings == "learned":
            self.embed_pos = CastedEmbedding(config.total_len, D, init_std=1 / self.embed_scale, dtype=self.dtype)
        self.blocks = nn.ModuleList(
            Block(D, config.heads, config.expansion, config.mixer, config.total_len, config.rms_eps)
            for _ in range(config.layers)
        )
        # fixed random starting points of y and z, broadcast to every position; not learned
        self.register_buffer("y_init", trunc_normal_(torch.empty(D), 1.0))
        self.register_buffer("z_init", trunc_normal_(torch.empty(D), 1.0))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def embed_input(self, inputs: torch.Tensor, puzzle_emb: torch.Tensor | None) -> torch.Tensor:
        """x = sqrt(D) * [prefix; tokens]: the prefix is the puzzle embedding then zero registers."""
        x = self.embed_tokens(inputs.long())  # (B, L, D)
        P = self.config.puzzle_emb_len
        if P > 0:
            prefix = x.new_zeros(x.shape[0], P, x.shape[2])
            if puzzle_emb is not None:
                prefix[:, 0] = puzzle_emb.to(x.dtype)
            x = torch.cat((prefix, x), dim=1)  # (B, P+L, D)
        if self.config.pos_encodings == "learned":
            # scale by 1/sqrt(2) to keep the variance of the sum, as the reference
            x = 0.707106781 * (x + self.embed_pos.embedding_weight.to(self.dtype))
        return self.embed_scale * x

    def f(self, h: torch.Tensor, injection: torch.Tensor) -> torch.Tensor:
        h = h + injection
        for block in self.blocks:
            h = block(h, self.rope)
        return h

    def cycle(self, y: torch.Tensor, z: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        injection = y + x  # y is fixed during the n z-updates: add it to x once per cycle
        for _ in range(self.config.n):
            z = self.f(z, injection)
        y = self.f(y, z)
        return y, z

    def initial_state(self, batch_size: int, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (batch_size, self.config.total_len, self.config.hidden)
        y = self.y_init.to(self.dtype).expand(shape)
        z = self.z_init.to(self.dtype).expand(shape)
        return y.to(device) if device is not None else y, z.to(device) if device is not None else z

    def forward(self, y: torch.Tensor, z: torch.Tensor, inputs: torch.Tensor, puzzle_emb: torch.Tensor | None) -> StepOutput:
        """One supervision step from the carried (y, z); gradients flow through the last cycle only."""
        x = self.embed_input(inputs, puzzle_emb)
        y, z = y.to(self.dtype), z.to(self.dtype)
        with torch.no_grad():
            for _ in range(self.config.T - 1):
                y, z = self.cycle(y, z, x)
        y, z = self.cycle(y, z, x)
        logits = self.lm_head(y)[:, self.config.puzzle_emb_len :]
        q = self.q_head(y[:, 0]).float()
        return StepOutput(y.detach(), z.detach(), logits, q[:, 0], q[:, 1])

