"""Exponential moving average of the dense weights (rate 0.999, every optimizer step).

Only parameters are averaged: the puzzle table and the y/z init buffers are not, as the reference.
Evaluation and export use the averaged weights.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, rate: float):
        self.model = model
        self.rate = rate
        self.shadow = {name: p.detach().float().clone() for name, p in model.named_parameters()}

    @torch.no_grad()
    def update(self) -> None:
        names = list(self.shadow)
        params = dict(self.model.named_parameters())
        torch._foreach_lerp_([self.shadow[n] for n in names], [params[n].detach().float() for n in names], 1 - self.rate)

    @contextlib.contextmanager
    @torch.no_grad()
    def averaged(self) -> Iterator[nn.Module]:
        """Temporarily load the averaged weights into the model."""
        params = dict(self.model.named_parameters())
        saved = {name: p.detach().clone() for name, p in params.items()}
        for name, p in params.items():
            p.copy_(self.shadow[name])
        try:
            yield self.model
        finally:
            for name, p in params.items():
                p.copy_(saved[name])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.shadow)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for name, tensor in state.items():
            self.shadow[name].copy_(tensor)
