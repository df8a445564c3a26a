"""The analytic FLOP count used by the throughput benchmarks (arc_trm/model/flops.py)."""

from __future__ import annotations

import pytest

from arc_trm.model.flops import flops_per_example_step, flops_per_token_layer, layer_passes
from arc_trm.model.layers import swiglu_width
from arc_trm.model.trm import ModelConfig


def test_arc1_training_step() -> None:
    arc1 = ModelConfig()  # the reference ARC model: D 512, L 900 + 16, W 1536, T 3, n 4, 2 layers
    assert arc1.total_len == 916 and swiglu_width(arc1.hidden, arc1.expansion) == 1536
    assert flops_per_token_layer(arc1) == pytest.approx(8.69e6, rel=1e-3)
    assert layer_passes(arc1, training=True) == 50  # 3·5·2 forward + 2·5·2 backward of the last cycle
    assert flops_per_example_step(arc1, training=True) / 1e9 == pytest.approx(398.1, abs=0.05)
    # ≈ 50 layer passes × 916 tokens × 8.69 MFLOP, the head being the small rest
    assert flops_per_example_step(arc1, training=True) == pytest.approx(50 * 916 * flops_per_token_layer(arc1), rel=1e-4)


def test_arc1_inference_is_30_of_50_layer_passes() -> None:
    arc1 = ModelConfig()
    assert layer_passes(arc1, training=False) == 30
    head = 916 * 2 * 512 * 12
    assert flops_per_example_step(arc1, training=False) == 916 * 30 * flops_per_token_layer(arc1) + head
    assert flops_per_example_step(arc1, training=True) == 916 * 50 * flops_per_token_layer(arc1) + 3 * head
    assert flops_per_example_step(arc1, training=False) / 1e9 == pytest.approx(238.86, abs=0.005)  # as recorded before


def test_tiny_per_token_by_hand() -> None:
    # D 8, L 4 + 2 = 6, expansion 3: W = round(3·8·2/3) = 16, rounded up to 256
    tiny = ModelConfig(vocab_size=5, seq_len=4, hidden=8, heads=2, expansion=3.0, layers=1, T=2, n=1, puzzle_emb_len=2)
    qkv, out, scores_values = 2 * 8 * 24, 2 * 8 * 8, 4 * 6 * 8  # 384, 128, 192
    swiglu = 2 * 8 * 512 + 2 * 256 * 8  # 8192 + 4096
    assert flops_per_token_layer(tiny) == qkv + out + scores_values + swiglu == 12992
    assert layer_passes(tiny, training=False) == 4 and layer_passes(tiny, training=True) == 8
    assert flops_per_example_step(tiny, training=False) == 6 * (4 * 12992 + 2 * 8 * 5)
    assert flops_per_example_step(tiny, training=True) == 6 * (8 * 12992 + 3 * 2 * 8 * 5)


def test_mlp_t_mixer_by_hand() -> None:
    # the sequence mixer: a SwiGLU of width swiglu_width(L = 6, 3) = 256 for each of the 8 channels
    sudoku_like = ModelConfig(vocab_size=5, seq_len=4, hidden=8, expansion=3.0, puzzle_emb_len=2, mixer="mlp_t")
    assert flops_per_token_layer(sudoku_like) == 6 * 256 * 8 + 2 * 8 * 512 + 2 * 256 * 8


def test_unknown_mixer() -> None:
    with pytest.raises(ValueError, match="mixer"):
        flops_per_token_layer(ModelConfig(mixer="conv"))
