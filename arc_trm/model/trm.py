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

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, NamedTuple, get_args

import torch
from huggingface_hub import PyTorchModelHubMixin, hf_hub_download
from safetensors import safe_open
from safetensors.torch import load_model, save_model
from torch import nn

from arc_trm.config_fields import AT_LEAST_1, FRACTION, POSITIVE, Range, check_fields, field_types, is_of_type, ranged
from arc_trm.errors import ConfigError, DataError, error_summary
from arc_trm.io import atomic_write, read_json
from arc_trm.model.layers import Block, CastedEmbedding, CastedLinear, RotaryEmbedding, trunc_normal_

ForwardDtype = Literal["bfloat16", "float16", "float32"]
"""`model.forward_dtype` values: the names of torch's dtypes."""
DTYPES = {name: getattr(torch, name) for name in get_args(ForwardDtype)}


@dataclass
class ModelConfig:
    """TRM shape and recursion. Defaults are the reference's ARC model (6,829,058 parameters).

    Each field's rule is declared with it (a range, the values of a Literal); `check` applies them and the
    rules between fields. Every model built (`TRM`) or read (`model_config_from`) passes it."""

    vocab_size: int = ranged(12, AT_LEAST_1)
    """Token vocabulary: ARC 12 (PAD, EOS, 10 colours), Sudoku 11, Maze 6."""
    seq_len: int = ranged(900, AT_LEAST_1)
    """Tokens per example without the puzzle prefix: canvas * canvas for ARC."""
    hidden: int = ranged(512, AT_LEAST_1)
    """Width D of every token vector (y, z, x)."""
    heads: int = ranged(8, AT_LEAST_1)
    """Attention heads; hidden / heads must be even for rope."""
    expansion: float = ranged(4.0, POSITIVE)
    """SwiGLU expansion; the width is rounded up to a multiple of 256."""
    layers: int = ranged(2, AT_LEAST_1)
    """Blocks in the one network f."""
    T: int = ranged(3, AT_LEAST_1)
    """Recursion cycles per supervision step (T-1 without gradient, 1 with)."""
    n: int = ranged(4, AT_LEAST_1)
    """z-updates per cycle (the reference README uses 4 for ARC and Maze, 6 for Sudoku)."""
    halt_max_steps: int = ranged(16, AT_LEAST_1)
    """Supervision steps N_sup: training halts by then at the latest; evaluation always runs all of them."""
    halt_exploration_prob: float = ranged(0.1, FRACTION)
    """Probability that a sample draws a minimum step count uniform in [2, halt_max_steps]."""
    puzzle_emb_len: int = ranged(16, AT_LEAST_1)
    """Prefix tokens (>= 1); token 0 carries the puzzle embedding, the rest are zero registers."""
    mixer: Literal["attention", "mlp_t"] = "attention"
    """'attention' or 'mlp_t' (SwiGLU along the sequence axis, the Sudoku model)."""
    pos_encodings: Literal["rope", "learned", "none"] = "rope"
    """'rope', 'learned' or 'none'."""
    rope_theta: float = ranged(10000.0, Range(1))  # below 1 a frequency above 1 per position; 1e-300 overflows to NaN
    """Rotary position base."""
    rms_eps: float = ranged(1e-5, POSITIVE)
    """RMSNorm epsilon."""
    forward_dtype: ForwardDtype = "bfloat16"
    """Compute dtype; weights stay fp32 and are cast at use."""

    @property
    def total_len(self) -> int:
        return self.seq_len + self.puzzle_emb_len

    def check(self) -> None:
        """Every rule of the model config: each field's own, then heads that split the width, in even halves
        for rope (rotary pairs). A `ConfigError` naming the key as the training config spells it (`model.`)."""
        check_fields(self, "model.")
        if self.hidden % self.heads:
            raise ConfigError("model.hidden must be divisible by model.heads")
        if self.pos_encodings == "rope" and (self.hidden // self.heads) % 2:
            raise ConfigError("model.hidden / model.heads must be even for rope (rotary pairs)")


def model_config_from(values: Any, source: str | Path) -> ModelConfig:
    """The model config in config.json's `values`: every field of its type and within its rules (T 2.5,
    heads true or heads 0 would build nonsense), else a DataError naming `source`."""
    if not isinstance(values, dict):
        raise DataError(f"{source}: not a model config (expected an object of fields)")
    types = field_types(ModelConfig)
    unknown = sorted(set(values) - set(types))
    if unknown:
        raise DataError(f"{source}: not a model config (unknown field {unknown[0]!r})")
    for name, value in values.items():
        if not is_of_type(value, types[name]):
            raise DataError(f"{source}: {name} must be {types[name].__name__}, not {value!r}")
    config = ModelConfig(**{name: float(v) if types[name] is float else v for name, v in values.items()})
    try:
        config.check()
    except ConfigError as error:
        raise DataError(f"{source}: {error}") from None
    return config


class StepOutput(NamedTuple):
    y: torch.Tensor  # (B, P+L, D), detached
    z: torch.Tensor  # (B, P+L, D), detached
    logits: torch.Tensor  # (B, L, vocab)
    q_halt: torch.Tensor  # (B,) fp32 logit
    q_continue: torch.Tensor  # (B,) fp32 logit


CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"
"""The dense weights of an exported model (beside config.json, the model config as flat JSON)."""
HUB_DOWNLOAD_OPTIONS = ("revision", "cache_dir", "force_download", "local_files_only", "token")


def check_weights_fit(config: ModelConfig, config_file: Path, weights_file: Path) -> None:
    """Every weight's shape in `weights_file` is the one `config` builds (on the meta device: no memory)."""
    try:
        with torch.device("meta"):
            expected = {name: tuple(t.shape) for name, t in TRM(config).state_dict().items()}
    except (RuntimeError, ValueError, OverflowError, TypeError) as error:  # sizes past what a tensor can index (64 bits: TypeError)
        raise DataError(f"{config_file}: no model of this size can be built ({error_summary(error)})") from None
    with safe_open_tensors(weights_file) as stored:
        found = {name: tuple(stored.get_slice(name).get_shape()) for name in stored.keys()}
    for name, shape in expected.items():
        if found.get(name, shape) != shape:
            raise DataError(f"{config_file}: does not fit {weights_file} ({name} is {found[name]} there, the config needs {shape})")


@contextlib.contextmanager
def safe_open_tensors(path: Path) -> Iterator[Any]:
    """safetensors' reader of `path`'s header; a file that is not safetensors is a DataError naming it."""
    try:
        handle = safe_open(str(path), framework="pt")
    except Exception as error:  # safetensors' own error type, an OSError
        raise DataError(f"{path}: cannot load ({error_summary(error)})") from None
    with handle as opened:
        yield opened


class TRM(nn.Module, PyTorchModelHubMixin, library_name="arc_trm", tags=["arc-agi", "tiny-recursive-model"]):
    """The dense part of TRM. The puzzle-embedding table is kept outside (see puzzle_embedding.py):
    callers pass the batch's rows, shape (B, D). `TRM(config)` refuses a config that breaks one of
    `ModelConfig`'s rules (`ModelConfig.check`: a `ConfigError` naming the key).

    `TRM.from_pretrained(folder or hub id)` and `model.save_pretrained(folder)` (huggingface_hub's
    mixin) read and write the same pair an export holds: config.json and weights.safetensors. The
    project's own loader (`arc_trm.exported.load_model`) also reads the puzzle table and data.json.
    `from_pretrained` raises `arc_trm.errors.DataError`, naming the file, for a folder without config.json
    or weights.safetensors and for a config.json that is not a valid model config (a field of the wrong
    type or out of its range, such as negative heads)."""

    def _save_pretrained(self, save_directory: Path) -> None:
        atomic_write(save_directory / WEIGHTS_FILE, lambda tmp: save_model(self, str(tmp)))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs) -> "TRM":  # type: ignore[override]
        folder = Path(pretrained_model_name_or_path)
        if folder.is_dir():  # checked before the mixin reads config.json, which it does without a word on errors
            for name in (CONFIG_FILE, WEIGHTS_FILE):
                if not (folder / name).is_file():
                    raise DataError(f"{folder}: not a saved TRM (no {name})")
            config = model_config_from(read_json(folder / CONFIG_FILE), folder / CONFIG_FILE)
            check_weights_fit(config, folder / CONFIG_FILE, folder / WEIGHTS_FILE)
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    @classmethod
    def _from_pretrained(cls, *, model_id: str, map_location: str = "cpu", strict: bool = True, **kwargs) -> "TRM":
        hub = {key: kwargs.pop(key) for key in list(kwargs) if key in (*HUB_DOWNLOAD_OPTIONS, "proxies", "resume_download")}
        if kwargs.get("config") is None:
            raise DataError(f"{model_id}: not a saved TRM (no config.json)")
        if isinstance(kwargs["config"], dict):  # config.json's fields (annotations are strings here)
            kwargs["config"] = model_config_from(kwargs["config"], f"{model_id}/{CONFIG_FILE}")
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
        config.check()
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

    def cycle(
        self, y: torch.Tensor, z: torch.Tensor, x: torch.Tensor, noise: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One recursion cycle. `noise` (test-time compute, inference.py): `noise(z)` is added to z after each
        of its n updates."""
        injection = y + x  # y is fixed during the n z-updates: add it to x once per cycle
        for _ in range(self.config.n):
            z = self.f(z, injection)
            if noise is not None:
                z = z + noise(z)
        y = self.f(y, z)
        return y, z

    def initial_state(self, batch_size: int, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (batch_size, self.config.total_len, self.config.hidden)
        y = self.y_init.to(self.dtype).expand(shape)
        z = self.z_init.to(self.dtype).expand(shape)
        return y.to(device) if device is not None else y, z.to(device) if device is not None else z

    def forward(
        self, y: torch.Tensor, z: torch.Tensor, inputs: torch.Tensor, puzzle_emb: torch.Tensor | None,
        noise: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> StepOutput:
        """One supervision step from the carried (y, z); gradients flow through the last cycle only.
        `noise` perturbs every latent update (`cycle`); None, the default and training's case, adds nothing."""
        x = self.embed_input(inputs, puzzle_emb)
        y, z = y.to(self.dtype), z.to(self.dtype)
        with torch.no_grad():
            for _ in range(self.config.T - 1):
                y, z = self.cycle(y, z, x, noise)
        y, z = self.cycle(y, z, x, noise)
        logits = self.lm_head(y)[:, self.config.puzzle_emb_len :]
        q = self.q_head(y[:, 0]).float()
        return StepOutput(y.detach(), z.detach(), logits, q[:, 0], q[:, 1])

