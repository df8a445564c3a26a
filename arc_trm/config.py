"""Typed configuration: dataclasses with a docstring per field, YAML presets, dotted overrides.

    accelerate launch -m arc_trm.train preset=arc1 train.global_batch=384 model.n=6

`preset=NAME` loads `arc_trm/presets/NAME.yaml` (default `tiny`); every other argument is
`section.field=value` (or `--section.field value`), parsed by the field's type. Unknown keys and
values that do not parse are a `ConfigError` naming the key.

Each field's rule is declared with the field (`arc_trm.config_fields`: a numeric range, the values of a
Literal type); a section's `check` adds the rules between its fields, `validate` runs them all once the
overrides are applied (a value may be valid only together with a later override: hidden, then heads).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence, get_args

import yaml

from arc_trm.config_fields import (
    AT_LEAST_0,
    AT_LEAST_1,
    FRACTION,
    POSITIVE,
    UNIT_OPEN,
    Range,
    check_fields,
    field_types,
    range_of,
    ranged,
)
from arc_trm.curriculum import parse_curriculum
from arc_trm.errors import ConfigError
from arc_trm.io import atomic_write_bytes
from arc_trm.model.trm import ModelConfig
from arc_trm.tracks import check_data

PRESETS_DIR = Path(__file__).parent / "presets"
Tracker = Literal["none", "tensorboard", "wandb", "mlflow", "aim", "comet_ml", "clearml", "dvclive", "swanlab", "trackio"]
"""`run.tracker` values: Accelerate's trackers (accelerate.utils.LoggerType, less 'all') and 'none'."""
TRACKERS: tuple[str, ...] = get_args(Tracker)


@dataclass
class DataConfig:
    track: str = "arc"
    """'arc', 'sudoku' or 'maze'."""
    tasks: str = "arc1"
    """ARC task set: 'arc1' (ARC-AGI-1 training + evaluation, evaluation test outputs held out), 'arc2', or a
    path (task folder, task file, Kaggle challenges file) whose demos are trained on and test inputs held out."""
    concept: str = ""
    """ARC: a ConceptARC Kaggle challenges file to add to training (optional)."""
    max_tasks: int = ranged(0, AT_LEAST_0)
    """ARC: keep only the first N training and the first N held-out tasks that fit the canvas (0 = all)."""
    # the augmentation tables grow as tasks x (num_aug + 1); 1e8 exhausted memory while building the data
    num_aug: int = ranged(1000, Range(0, 100_000))
    """Augmented versions per task / puzzle besides the original."""
    canvas: int = ranged(30, Range(1, 30))
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
    subsample: int = ranged(0, AT_LEAST_0)
    """Sudoku: train on a seeded subsample of N puzzles (0 = all)."""
    max_test: int = ranged(0, AT_LEAST_0)
    """Sudoku / Maze: evaluate on the first N test puzzles only (0 = all)."""

    def check(self) -> None:
        """Each field's own rule (the track's rules are `validate`'s)."""
        check_fields(self, "data.")


@dataclass
class TrainConfig:
    global_batch: int = ranged(768, AT_LEAST_1)
    """Examples per optimizer step over all processes and accumulation micro-steps."""
    grad_accum: int = ranged(1, AT_LEAST_1)
    """Micro-steps per optimizer step (the local batch is split into this many chunks)."""
    steps: int = ranged(519_000, AT_LEAST_1)
    """Optimizer steps (= supervision steps). The reference's ARC-1 run is about 519k at batch 768."""
    lr: float = ranged(1e-4, POSITIVE)
    """Peak learning rate of the dense weights (AdamATan2)."""
    lr_warmup_steps: int = ranged(2000, AT_LEAST_0)
    """Linear warmup from 0 over this many steps (both optimizers)."""
    lr_min_ratio: float = ranged(1.0, FRACTION)
    """Final lr as a fraction of `lr` after cosine decay; 1.0 = constant after warmup (reference)."""
    weight_decay: float = ranged(0.1, AT_LEAST_0)
    """Decoupled weight decay of the dense weights."""
    beta1: float = ranged(0.9, UNIT_OPEN)
    """AdamATan2 first-moment decay."""
    beta2: float = ranged(0.95, UNIT_OPEN)
    """AdamATan2 second-moment decay."""
    puzzle_emb_lr: float = ranged(1e-2, AT_LEAST_0)
    """Learning rate of the puzzle embeddings (SignSGD on the rows a batch touches)."""
    puzzle_emb_weight_decay: float = ranged(0.1, AT_LEAST_0)
    """Decoupled weight decay of the touched puzzle-embedding rows."""
    ema: bool = True
    """Keep an exponential moving average of the weights for evaluation and export."""
    ema_rate: float = ranged(0.999, UNIT_OPEN)
    """Per-step decay of the weight average."""
    compile: bool = False
    """torch.compile the model (GPU runs)."""
    seed: int = ranged(0, Range(0, 2**32 - 1))  # numpy takes 32 bits
    """Seeds weights, data order and augmentations: the same seed and config give the same run."""
    init_from: str = ""
    """Start from an exported model (fine-tuning): its dense weights and model config; every puzzle id of
    the new data starts at the mean of its puzzle embeddings."""
    depth_curriculum: str = ""
    """Recursion depth by stage of training, 'FRACTION:TxN,...' from fraction 0 of train.steps, ending at
    model.T x model.n (arc_trm/curriculum.py; CGAR, arXiv 2511.08653: '0:1x2,0.3:2x4,0.6:3x6'); empty: the
    model's T x n throughout. Periodic evaluation runs at the stage's depth; a run stopped early exports it."""
    freeze_dense_steps: int = ranged(0, AT_LEAST_0)
    """Train only the puzzle embeddings for the first N steps (N >= train.steps: embeddings-only)."""
    max_minutes: float = ranged(0.0, AT_LEAST_0)
    """Stop, checkpoint and export once this much time has passed since the command started, loading
    included (0 = no limit). Each re-run (resume) gets the whole budget again. With several processes the
    clock is read at log steps (run.log_every), so a run may end up to that many steps past it."""
    puzzle_table: Literal["sharded", "replicated"] = "sharded"
    """'sharded': with several processes each holds 1/processes of the puzzle-embedding table (same
    numbers, less memory); 'replicated': each holds all of it (no row exchange per step)."""

    def check(self) -> None:
        """Each field's own rule (the batch's split over processes is `check_batch`'s; the curriculum's last
        stage against the model's depth is `check_final_depth`'s, once the model config is known)."""
        check_fields(self, "train.")
        parse_curriculum(self.depth_curriculum)


@dataclass
class RunConfig:
    dir: str = "runs/tiny"
    """Run directory: config, checkpoints, TensorBoard logs, final model. Re-running resumes from it."""
    checkpoint_every: int = ranged(1000, AT_LEAST_1)
    """Optimizer steps between checkpoints."""
    keep_checkpoints: int = ranged(2, AT_LEAST_1)
    """Complete checkpoints kept on disk (the newest; the one just written is never deleted; an incomplete
    copy counts for nothing)."""
    eval_every: int = ranged(10_000, AT_LEAST_0)
    """Optimizer steps between evaluations on the held-out test inputs (0 = only at the end)."""
    eval_aug: int = ranged(8, AT_LEAST_1)
    """Augmentations per held-out test input in periodic evaluation (identity included)."""
    keep_best: bool = False
    """Also export, to run.dir/model_best, the evaluated model that scores best on the validation half
    (ARC: pass@2 of the held-out evaluation tasks, else of the held-out training tasks; Sudoku / Maze:
    exact accuracy), beside run.dir/model (the last). Checkpoint choice matters: the reference's last
    ARC-AGI-2 checkpoint scores about 2%, the one before 7-8% (its issue #26)."""
    log_every: int = ranged(10, AT_LEAST_1)
    """Optimizer steps between metric lines (metrics.jsonl, tracker, progress bar)."""
    tracker: Tracker = "tensorboard"
    """Where metrics go besides metrics.jsonl: any tracker Accelerate supports (tensorboard, wandb, mlflow,
    aim, comet_ml, clearml, dvclive, swanlab, trackio) or 'none'. Its package must be installed."""

    def check(self) -> None:
        """Each field's own rule, and a run directory that is not the current folder."""
        check_fields(self, "run.")
        if not self.dir.strip():
            raise ConfigError("run.dir must name a folder (an empty one would mean the current folder)")


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
    docs, types = field_docs(type(obj)), field_types(obj)
    lines = []
    for f in dataclasses.fields(obj):
        kind, allowed = types[f.name], range_of(f)
        limits = f"; {allowed.describe(kind is int)}" if allowed else ""
        doc = docs.get(f.name, "")
        lines.append(f"  {prefix}{f.name}={getattr(obj, f.name)!r}  ({kind.__name__}{limits}){'  ' + doc if doc else ''}")
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


def validate(config: Config) -> None:
    """Checks that do not need the data or the number of processes: each section's own rules (its `check`),
    then the data track's."""
    for name in SECTIONS:
        getattr(config, name).check()
    check_data(config.data)  # the data track's: which track, and what it reads (arc_trm.tracks)


def check_batch(config: Config, world: int) -> int:
    """Local micro-batch per process; the global batch must split evenly."""
    per_step = world * config.train.grad_accum
    if config.train.global_batch % per_step:
        raise ConfigError(
            f"train.global_batch={config.train.global_batch} is not divisible by processes ({world}) x "
            f"train.grad_accum ({config.train.grad_accum})"
        )
    return config.train.global_batch // per_step
