"""Typed configuration: dataclasses with a docstring per field, YAML presets, dotted overrides.

    accelerate launch -m arc_trm.train preset=arc1 train.global_batch=384 model.n=6

`preset=NAME` loads `arc_trm/presets/NAME.yaml` (default `tiny`); every other argument is
`section.field=value` (or `--section.field value`), parsed by the field's type. Unknown keys and
values that do not parse are a `ConfigError` naming the key.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from arc_trm.errors import ConfigError
from arc_trm.io import atomic_write_bytes
from arc_trm.model.trm import ModelConfig

PRESETS_DIR = Path(__file__).parent / "presets"
TRACKERS = ("none", "tensorboard", "wandb", "mlflow", "aim", "comet_ml", "clearml", "dvclive", "swanlab", "trackio")
"""`run.tracker` values: Accelerate's trackers (accelerate.utils.LoggerType, less 'all') and 'none'."""


@dataclass
class DataConfig:
    track: str = "arc"
    """'arc', 'sudoku' or 'maze'."""
    tasks: str = "arc1"
    """ARC task set: 'arc1' (ARC-AGI-1 training + evaluation, evaluation test outputs held out), 'arc2', or a
    path (task folder, task file, Kaggle challenges file) whose demos are trained on and test inputs held out."""
    concept: str = ""
    """ARC: a ConceptARC Kaggle challenges file to add to training (optional)."""
    max_tasks: int = 0
    """ARC: keep only the first N training and the first N held-out tasks that fit the canvas (0 = all)."""
    num_aug: int = 1000
    """Augmented versions per task / puzzle besides the original."""
    canvas: int = 30
    """ARC: side of the token canvas; tasks with a larger grid are skipped."""
    hold_out_training_tests: bool = False
    """ARC presets: also hold out the test pairs of the training split's tasks (their demos are still
    trained on), a second held-out group reported apart from the evaluation tasks (the accuracy ladder)."""
    translate: bool = True
    """ARC: place each training pair at a random offset on the canvas (the reference); false keeps every
    grid top-left, where prediction places the test inputs (less to learn on a small compute budget)."""
    path: str = ""
    """Sudoku / Maze: folder holding train.csv and test.csv. ARC: a folder built by `python -m arc_trm.data.arc`
    (used instead of `tasks`)."""
    subsample: int = 0
    """Sudoku: train on a seeded subsample of N puzzles (0 = all)."""
    max_test: int = 0
    """Sudoku / Maze: evaluate on the first N test puzzles only (0 = all)."""


@dataclass
class TrainConfig:
    global_batch: int = 768
    """Examples per optimizer step over all processes and accumulation micro-steps."""
    grad_accum: int = 1
    """Micro-steps per optimizer step (the local batch is split into this many chunks)."""
    steps: int = 519_000
    """Optimizer steps (= supervision steps). The reference's ARC-1 run is about 519k at batch 768."""
    lr: float = 1e-4
    """Peak learning rate of the dense weights (AdamATan2)."""
    lr_warmup_steps: int = 2000
    """Linear warmup from 0 over this many steps (both optimizers)."""
    lr_min_ratio: float = 1.0
    """Final lr as a fraction of `lr` after cosine decay; 1.0 = constant after warmup (reference)."""
    weight_decay: float = 0.1
    """Decoupled weight decay of the dense weights."""
    beta1: float = 0.9
    """AdamATan2 first-moment decay."""
    beta2: float = 0.95
    """AdamATan2 second-moment decay."""
    puzzle_emb_lr: float = 1e-2
    """Learning rate of the puzzle embeddings (SignSGD on the rows a batch touches)."""
    puzzle_emb_weight_decay: float = 0.1
    """Decoupled weight decay of the touched puzzle-embedding rows."""
    ema: bool = True
    """Keep an exponential moving average of the weights for evaluation and export."""
    ema_rate: float = 0.999
    """Per-step decay of the weight average."""
    compile: bool = False
    """torch.compile the model (GPU runs)."""
    seed: int = 0
    """Seeds weights, data order and augmentations: the same seed and config give the same run."""
    init_from: str = ""
    """Start from an exported model (fine-tuning): its dense weights and model config; every puzzle id of
    the new data starts at the mean of its puzzle embeddings."""
    freeze_dense_steps: int = 0
    """Train only the puzzle embeddings for the first N steps (N >= train.steps: embeddings-only)."""
    max_minutes: float = 0.0
    """Stop, checkpoint and export once this much time has passed since the command started, loading
    included (0 = no limit). Each re-run (resume) gets the whole budget again. With several processes the
    clock is read at log steps (run.log_every), so a run may end up to that many steps past it."""
    puzzle_table: str = "sharded"
    """'sharded': with several processes each holds 1/processes of the puzzle-embedding table (same
    numbers, less memory); 'replicated': each holds all of it (no row exchange per step)."""


@dataclass
class RunConfig:
    dir: str = "runs/tiny"
    """Run directory: config, checkpoints, TensorBoard logs, final model. Re-running resumes from it."""
    checkpoint_every: int = 1000
    """Optimizer steps between checkpoints."""
    keep_checkpoints: int = 2
    """Complete checkpoints kept on disk (the newest; the one just written is never deleted; an incomplete
    copy counts for nothing)."""
    eval_every: int = 10_000
    """Optimizer steps between evaluations on the held-out test inputs (0 = only at the end)."""
    eval_aug: int = 8
    """Augmentations per held-out test input in periodic evaluation (identity included)."""
    log_every: int = 10
    """Optimizer steps between metric lines (metrics.jsonl, tracker, progress bar)."""
    tracker: str = "tensorboard"
    """Where metrics go besides metrics.jsonl: any tracker Accelerate supports (tensorboard, wandb, mlflow,
    aim, comet_ml, clearml, dvclive, swanlab, trackio) or 'none'. Its package must be installed."""


@dataclass
class Config:
    preset: str = "tiny"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SECTIONS = {f.name: f for f in dataclasses.fields(Config) if f.name != "preset"}


def parse_value(key: str, raw: Any, kind: type) -> Any:
    """Convert a YAML or command-line value to the field's type, or raise ConfigError."""
    if isinstance(raw, str) and kind is not str:
        text = raw.strip()
        try:
            if kind is bool:
                if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                return text.lower() in ("true", "1", "yes")
            if kind is int:
                number = float(text) if any(c in text for c in ".eE") else int(text)
                if number != int(number):
                    raise ValueError
                return int(number)
            return kind(text)
        except (ValueError, OverflowError):
            raise ConfigError(f"{key}: cannot read {raw!r} as {kind.__name__}") from None
    if kind is float and isinstance(raw, int) and not isinstance(raw, bool):
        return float(raw)
    if kind is str and isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return str(raw)
    if not isinstance(raw, kind) or (kind is int and isinstance(raw, bool)):
        raise ConfigError(f"{key}: expected {kind.__name__}, got {raw!r}")
    return raw


_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def field_types(section: Any) -> dict[str, type]:
    # annotations are strings (postponed evaluation) in every config module
    return {f.name: _TYPES[f.type] for f in dataclasses.fields(section)}


def set_key(config: Config, key: str, raw: Any) -> None:
    section_name, _, name = key.partition(".")
    if section_name not in SECTIONS or not name:
        raise ConfigError(f"unknown config key '{key}' (sections: {', '.join(SECTIONS)})")
    section = getattr(config, section_name)
    types = field_types(section)
    if name not in types:
        raise ConfigError(f"unknown config key '{key}' (known in {section_name}: {', '.join(types)})")
    setattr(section, name, parse_value(key, raw, types[name]))


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load_preset(name: str) -> Config:
    path = PRESETS_DIR / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(f"unknown preset '{name}' (known: {', '.join(preset_names())})")
    return from_dict(read_yaml(path) or {}, Config(preset=name), source=str(path))


def from_dict(values: dict[str, Any], config: Config, source: str = "config") -> Config:
    for section_name, section_values in values.items():
        if section_name == "preset":
            config.preset = str(section_values)
            continue
        if not isinstance(section_values, dict):
            raise ConfigError(f"{source}: '{section_name}' must be a section of key: value pairs")
        for name, raw in section_values.items():
            set_key(config, f"{section_name}.{name}", raw)
    return config


def key_value_pairs(argv: Sequence[str]) -> list[str]:
    """`key=value` arguments, also written `--key value` or `--key=value` (dashes read as underscores):
    the flag style of the other commands works for training and prediction too."""
    pairs, items = [], list(argv)
    while items:
        arg = items.pop(0)
        if arg.startswith("--"):
            key, sep, value = arg[2:].partition("=")
            if not sep:
                if not items:
                    raise ConfigError(f"argument '{arg}' needs a value")
                value = items.pop(0)
            arg = f"{key.replace('-', '_')}={value}"
        pairs.append(arg)
    return pairs


def load_config(argv: Sequence[str]) -> Config:
    """A preset (`preset=NAME`, default tiny) or a whole config file (`config=PATH`, e.g. a run's
    config.yaml), then `section.field=value` overrides in order (`--section.field value` too)."""
    pairs = []
    for arg in key_value_pairs(argv):
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise ConfigError(f"argument '{arg}' is not key=value (e.g. preset=arc1 train.steps=1000)")
        pairs.append((key.strip(), value))
    bases = {key: value for key, value in pairs if key in ("preset", "config")}
    if len(bases) > 1:
        raise ConfigError("give preset=NAME or config=PATH, not both")
    config = load_config_file(Path(bases["config"])) if "config" in bases else load_preset(bases.get("preset", "tiny"))
    for key, value in pairs:
        if key not in bases:
            set_key(config, key, value)
    validate(config)
    return config


def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a dataclass (the string literal that follows it in the source)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs = {}
    for node, following in zip(body, body[1:]):
        if (
            isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def describe_fields(obj: Any, prefix: str = "") -> list[str]:
    """One line per field of a dataclass instance: key, type, default (its current value) and docstring."""
    docs = field_docs(type(obj))
    lines = []
    for f in dataclasses.fields(obj):
        key = f"{prefix}{f.name}"
        allowed = RANGES.get(key)
        limits = f"; {allowed.describe(f.type == 'int')}" if allowed else ""
        doc = docs.get(f.name, "")
        lines.append(f"  {key}={getattr(obj, f.name)!r}  ({f.type}{limits}){'  ' + doc if doc else ''}")
    return lines


def config_help(command: str, what: str) -> str:
    """`--help` of a command that takes `preset=NAME | config=FILE` and `section.key=value` overrides."""
    config = Config()
    lines = [
        f"usage: {command} [preset=NAME | config=FILE] [section.key=value ...]",
        "(--key value and --key=value work too)",
        "",
        what,
        "",
        f"presets (arc_trm/presets/NAME.yaml; default tiny): {', '.join(preset_names())}",
        "",
        "fields (key=default  (type; allowed)  meaning), the defaults before a preset is applied:",
    ]
    for name in SECTIONS:
        lines += ["", f"[{name}]", *describe_fields(getattr(config, name), f"{name}.")]
    return "\n".join(lines)


class UniqueKeyLoader(yaml.SafeLoader):
    """yaml's safe loader that refuses a key given twice in one mapping (plain YAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise DuplicateKeyError(key, key_node.start_mark.line + 1)
            seen.add(key)
        return super().construct_mapping(node, deep)


class DuplicateKeyError(yaml.YAMLError):
    def __init__(self, key: Any, line: int):
        super().__init__(f"key '{key}' appears twice (again on line {line})")


def read_yaml(path: Path) -> Any:
    """A YAML file's contents; a key given twice in one mapping is a ConfigError naming file and key."""
    try:
        return yaml.load(path.read_text(), Loader=UniqueKeyLoader)
    except DuplicateKeyError as error:
        raise ConfigError(f"{path}: {error}") from None


def save_config_file(config: Config, path: Path) -> None:
    """The whole config as YAML, atomically: what `config=PATH` (`load_config_file`) reads back."""
    atomic_write_bytes(path, yaml.safe_dump(config.to_dict(), sort_keys=False).encode())


def load_config_file(path: Path) -> Config:
    """A whole config as YAML (what a run directory's config.yaml holds)."""
    try:
        values = read_yaml(path)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: cannot read the config ({type(error).__name__})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: not a config (expected sections of key: value pairs)")
    return from_dict(values, Config(), source=str(path))


@dataclass(frozen=True)
class Range:
    """Allowed values of a numeric field: finite, within [low, high] (an open end where `*_open`)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def allows(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def describe(self, integer: bool) -> str:
        def number(value: float) -> str:  # 4294967295, not 4.29497e+09
            return str(int(value)) if integer and float(value).is_integer() else f"{value:g}"

        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {number(self.low)}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {number(self.high)}")
        kind = "an integer" if integer else "a finite number"
        return f"{kind} {' and '.join(parts)}" if parts else kind


AT_LEAST_1, AT_LEAST_0, POSITIVE, FRACTION = Range(1), Range(0), Range(0, low_open=True), Range(0, 1)
UNIT_OPEN = Range(0, 1, high_open=True)
RANGES: dict[str, Range] = {
    **{f"model.{k}": AT_LEAST_1 for k in ("vocab_size", "seq_len", "hidden", "heads", "layers", "T", "n", "halt_max_steps")},
    # rope_theta below 1 gives a frequency above 1 per position; 1e-300 overflows to NaN
    "model.expansion": POSITIVE, "model.rope_theta": Range(1), "model.rms_eps": POSITIVE,
    "model.halt_exploration_prob": FRACTION, "model.puzzle_emb_len": AT_LEAST_1,
    # num_aug: the augmentation tables grow as tasks x (num_aug + 1); 1e8 exhausted memory while building the data
    "data.canvas": Range(1, 30), "data.max_tasks": AT_LEAST_0, "data.num_aug": Range(0, 100_000),
    "data.subsample": AT_LEAST_0, "data.max_test": AT_LEAST_0,
    "train.global_batch": AT_LEAST_1, "train.grad_accum": AT_LEAST_1, "train.steps": AT_LEAST_1,
    "train.lr": POSITIVE, "train.lr_warmup_steps": AT_LEAST_0, "train.lr_min_ratio": FRACTION,
    "train.weight_decay": AT_LEAST_0, "train.beta1": UNIT_OPEN, "train.beta2": UNIT_OPEN,
    "train.puzzle_emb_lr": AT_LEAST_0, "train.puzzle_emb_weight_decay": AT_LEAST_0, "train.ema_rate": UNIT_OPEN,
    "train.seed": Range(0, 2**32 - 1), "train.freeze_dense_steps": AT_LEAST_0, "train.max_minutes": AT_LEAST_0,  # seeds: numpy takes 32 bits
    "run.checkpoint_every": AT_LEAST_1, "run.keep_checkpoints": AT_LEAST_1, "run.eval_every": AT_LEAST_0,
    "run.eval_aug": AT_LEAST_1, "run.log_every": AT_LEAST_1,
}


INT64_MAX = 2**63 - 1
"""The largest integer torch, numpy and the JSON writer (orjson) take: a larger one (model.T=1e21) used to
run, then fail with a traceback when the model was exported."""


def check_ranges(config: Config) -> None:
    """Every numeric field within the bounds the code relies on: one line naming key, value and range."""
    for key, allowed in RANGES.items():
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        if not allowed.allows(value):
            raise ConfigError(f"{key}={value}: must be {allowed.describe(isinstance(value, int))}")
    for section in SECTIONS:
        for f in dataclasses.fields(getattr(config, section)):
            value = getattr(getattr(config, section), f.name)
            if isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT64_MAX:
                raise ConfigError(f"{section}.{f.name}={value}: must be an integer of at most 64 bits (<= {INT64_MAX})")


def validate(config: Config) -> None:
    """Checks that do not need the data or the number of processes."""
    check_ranges(config)
    checks = [
        (config.data.track in ("arc", "sudoku", "maze"), "data.track must be arc, sudoku or maze"),
        (config.model.mixer in ("attention", "mlp_t"), "model.mixer must be attention or mlp_t"),
        (config.model.pos_encodings in ("rope", "learned", "none"), "model.pos_encodings must be rope, learned or none"),
        (config.model.forward_dtype in ("bfloat16", "float16", "float32"), "model.forward_dtype must be bfloat16, float16 or float32"),
        (config.model.hidden % config.model.heads == 0, "model.hidden must be divisible by model.heads"),
        (config.model.pos_encodings != "rope" or (config.model.hidden // config.model.heads) % 2 == 0,
         "model.hidden / model.heads must be even for rope (rotary pairs)"),
        (config.run.tracker in TRACKERS, f"run.tracker must be one of {', '.join(TRACKERS)}"),
        (config.train.puzzle_table in ("sharded", "replicated"), "train.puzzle_table must be sharded or replicated"),
        (config.data.track == "arc" or config.data.path, f"data.path must name a folder with train.csv/test.csv for track {config.data.track}"),
        (config.run.dir.strip() != "", "run.dir must name a folder (an empty one would mean the current folder)"),
        (config.data.track != "arc" or config.data.path or config.data.tasks.strip() != "", "data.tasks must be arc1, arc2 or a path"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def check_batch(config: Config, world: int) -> int:
    """Local micro-batch per process; the global batch must split evenly."""
    per_step = world * config.train.grad_accum
    if config.train.global_batch % per_step:
        raise ConfigError(
            f"train.global_batch={config.train.global_batch} is not divisible by processes ({world}) x "
            f"train.grad_accum ({config.train.grad_accum})"
        )
    return config.train.global_batch // per_step
