"""Deep supervision with adaptive halting (ACT): the carry that persists across optimizer steps.

Each batch slot holds one example and its (y, z). Every training step runs one supervision step on
every slot. A slot halts after `halt_max_steps`, or earlier when q_halt > 0 (with exploration: with
probability 0.1 it must first reach a minimum uniform in [2, halt_max_steps]). A halted slot takes
the example at its position in the next batch and restarts from (y_init, z_init); the other slots
keep theirs and the new batch's example at their position is dropped, as in the reference.
Everything stays on the device: no host synchronisation per step.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from arc_trm.model.trm import TRM


@dataclass
class Carry:
    y: torch.Tensor  # (B, P+L, D)
    z: torch.Tensor  # (B, P+L, D)
    steps: torch.Tensor  # (B,) int32: supervision steps done on the current example
    halted: torch.Tensor  # (B,) bool: the slot takes a new example at the next step
    inputs: torch.Tensor  # (B, L)
    labels: torch.Tensor  # (B, L)
    puzzle_ids: torch.Tensor  # (B,)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name).cpu() for f in fields(self)}

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor], device: torch.device) -> "Carry":
        return cls(**{name: tensor.to(device) for name, tensor in state.items()})


def empty_carry(model: TRM, batch: dict[str, torch.Tensor]) -> Carry:
    """A carry whose slots are all halted, so the first step loads the whole batch."""
    B = batch["inputs"].shape[0]
    device = batch["inputs"].device
    y, z = model.initial_state(B, device)
    return Carry(
        y=y.clone(),
        z=z.clone(),
        steps=torch.zeros(B, dtype=torch.int32, device=device),
        halted=torch.ones(B, dtype=torch.bool, device=device),
        inputs=torch.zeros_like(batch["inputs"]),
        labels=torch.zeros_like(batch["labels"]),
        puzzle_ids=torch.zeros_like(batch["puzzle_ids"]),
    )


def refill(model: TRM, carry: Carry, batch: dict[str, torch.Tensor]) -> Carry:
    """Halted slots take the batch's example at their position and restart from (y_init, z_init)."""
    halted = carry.halted

    def take(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
        return torch.where(halted.view(-1, *([1] * (old.dim() - 1))), new, old)

    y_init, z_init = model.initial_state(halted.shape[0], halted.device)
    return Carry(
        y=take(y_init.to(carry.y.dtype), carry.y),
        z=take(z_init.to(carry.z.dtype), carry.z),
        steps=torch.where(halted, 0, carry.steps),
        halted=halted,
        inputs=take(batch["inputs"], carry.inputs),
        labels=take(batch["labels"], carry.labels),
        puzzle_ids=take(batch["puzzle_ids"], carry.puzzle_ids),
    )


def halt_decision(
    steps: torch.Tensor,
    q_halt: torch.Tensor,
    halt_max_steps: int,
    exploration_prob: float,
    training: bool,
) -> torch.Tensor:
    """Which slots halt after this step (`steps` already counts it)."""
    halted = steps >= halt_max_steps
    if training and halt_max_steps > 1:
        halted = halted | (q_halt > 0)
        explore = torch.rand_like(q_halt) < exploration_prob
        min_steps = explore * torch.randint_like(steps, low=2, high=halt_max_steps + 1)
        halted = halted & (steps >= min_steps)
    return halted
