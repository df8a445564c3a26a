"""TRM model, losses, ACT carry, puzzle-embedding SignSGD, AdamATan2 and the lr schedule."""

from __future__ import annotations

import math

import pytest
import torch

from arc_trm.ema import EMA
from arc_trm.model.act import Carry, empty_carry, halt_decision, refill
from arc_trm.model.layers import rms_norm, swiglu_width, trunc_normal_
from arc_trm.model.losses import act_loss, log_stablemax, stablemax_cross_entropy
from arc_trm.model.puzzle_embedding import PuzzleEmbedding, SparseSignSGD
from arc_trm.model.trm import TRM, ModelConfig
from arc_trm.optim import AdamATan2, learning_rate

SMALL = dict(hidden=32, heads=4, seq_len=16, vocab_size=12, T=2, n=2, puzzle_emb_len=4, forward_dtype="float32")


def test_parameter_counts_match_the_reference():
    assert TRM(ModelConfig()).num_parameters() == 6_829_058  # ARC TRM-Att
    sudoku_mlp = ModelConfig(vocab_size=11, seq_len=81, mixer="mlp_t", pos_encodings="none", n=6)
    assert TRM(sudoku_mlp).num_parameters() == 5_028_866
    sudoku_att = ModelConfig(vocab_size=11, seq_len=81, n=6)
    assert TRM(sudoku_att).num_parameters() == 6_828_034


def test_reference_shapes_and_init():
    model = TRM(ModelConfig())
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["blocks.0.self_attn.qkv_proj.weight"] == (1536, 512)
    assert shapes["blocks.0.mlp.gate_up_proj.weight"] == (3072, 512)
    assert shapes["blocks.0.mlp.down_proj.weight"] == (512, 1536)
    assert swiglu_width(512, 4) == 1536
    assert torch.all(model.q_head.weight == 0) and torch.all(model.q_head.bias == -5)
    # LeCun truncated normal: std 1/sqrt(fan_in), nothing beyond 2 sigma of the corrected draw
    w = model.blocks[0].mlp.gate_up_proj.weight
    assert abs(w.std().item() - 1 / math.sqrt(512)) < 2e-3
    assert w.abs().max().item() <= 2 / math.sqrt(512) / 0.8796 + 1e-6


def test_truncated_normal_has_the_asked_std():
    t = trunc_normal_(torch.empty(200_000), 0.5)
    assert abs(t.std().item() - 0.5) < 0.01


def test_rms_norm_without_scale():
    h = torch.randn(3, 5, 8) * 7
    out = rms_norm(h)
    assert torch.allclose(out.square().mean(-1), torch.ones(3, 5), atol=1e-4)


def test_forward_shapes_and_gradients_reach_puzzle_rows():
    model = TRM(ModelConfig(**SMALL))
    y, z = model.initial_state(3)
    rows = torch.randn(3, 32, requires_grad=True)
    out = model(y, z, torch.randint(0, 12, (3, 16)), rows)
    assert out.logits.shape == (3, 16, 12) and out.q_halt.shape == (3,)
    assert out.y.shape == (3, 20, 32) and not out.y.requires_grad
    out.logits.float().sum().backward()
    assert rows.grad is not None and rows.grad.abs().sum() > 0
    assert all(p.grad is not None for n, p in model.named_parameters() if not n.startswith("q_head"))


@pytest.mark.parametrize("mixer,pos", [("attention", "rope"), ("attention", "learned"), ("attention", "none"), ("mlp_t", "none")])
def test_variants_run_forward_and_backward(mixer, pos):
    model = TRM(ModelConfig(**SMALL, mixer=mixer, pos_encodings=pos))
    y, z = model.initial_state(2)
    out = model(y, z, torch.randint(0, 12, (2, 16)), torch.zeros(2, 32))
    loss, _ = act_loss(out.logits, out.q_halt, torch.randint(0, 12, (2, 16)), torch.ones(2, dtype=torch.bool))
    loss.backward()
    assert torch.isfinite(loss)


def test_only_the_last_cycle_carries_gradient():
    """With T cycles, gradients equal those of one graded cycle started from the no-grad state."""
    torch.manual_seed(0)
    model = TRM(ModelConfig(**{**SMALL, "T": 3}))
    inputs = torch.randint(0, 12, (2, 16))
    y, z = model.initial_state(2)
    out = model(y, z, inputs, None)
    out.logits.sum().backward()
    grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad()
    x = model.embed_input(inputs, None)
    with torch.no_grad():
        y2, z2 = model.cycle(y, z, x)
        y2, z2 = model.cycle(y2, z2, x)
    y2, z2 = model.cycle(y2, z2, x)
    model.lm_head(y2)[:, 4:].sum().backward()
    grads2 = [p.grad for p in model.parameters() if p.grad is not None]
    assert len(grads) == len(grads2) > 0
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(grads, grads2, strict=True))


def test_stablemax():
    x = torch.tensor([[1.0, -1.0, 0.0]], dtype=torch.float64)
    s = torch.tensor([2.0, 0.5, 1.0], dtype=torch.float64)
    assert torch.allclose(log_stablemax(x), torch.log(s / s.sum()).unsqueeze(0))
    logits = torch.tensor([[[1.0, -1.0, 0.0], [0.0, 0.0, 0.0]]])
    loss = stablemax_cross_entropy(logits, torch.tensor([[0, -100]]))
    assert loss[0, 1] == 0 and torch.isclose(loss[0, 0], -torch.log(torch.tensor(2.0 / 3.5, dtype=torch.float64)))


def test_act_loss_normalises_per_sequence_and_scores_halted_only():
    logits = torch.zeros(2, 3, 4)
    logits[0, :, 1] = 5  # sequence 0 predicts token 1 everywhere
    labels = torch.tensor([[1, 1, -100], [1, 2, 3]])
    q_halt = torch.tensor([1.0, -1.0])
    loss, m = act_loss(logits, q_halt, labels, halted=torch.tensor([True, False]))
    assert m["count"] == 1 and m["exact_accuracy"] == 1 and m["q_halt_accuracy"] == 1
    per_token_0 = stablemax_cross_entropy(logits[:1], labels[:1]).sum() / 2
    per_token_1 = stablemax_cross_entropy(logits[1:], labels[1:]).sum() / 3
    bce = torch.nn.functional.binary_cross_entropy_with_logits(q_halt, torch.tensor([1.0, 0.0]), reduction="sum")
    assert torch.isclose(loss, per_token_0 + per_token_1 + 0.5 * bce)


def test_halting_rules():
    steps = torch.tensor([1, 2, 16, 3])
    q = torch.tensor([-1.0, 1.0, -1.0, 1.0])
    # evaluation: only the step limit halts
    assert halt_decision(steps, q, 16, 0.1, training=False).tolist() == [False, False, True, False]
    # training without exploration: q_halt > 0 also halts
    assert halt_decision(steps, q, 16, 0.0, training=True).tolist() == [False, True, True, True]
    # exploration forces a minimum of at least 2 steps, so a step-1 sample never halts early
    torch.manual_seed(0)
    for _ in range(50):
        assert not halt_decision(torch.tensor([1]), torch.tensor([5.0]), 16, 1.0, True).item()


def test_refill_replaces_only_halted_slots():
    model = TRM(ModelConfig(**SMALL))
    batch = {"inputs": torch.ones(3, 16, dtype=torch.int32), "labels": torch.ones(3, 16), "puzzle_ids": torch.tensor([1, 2, 3])}
    carry = refill(model, empty_carry(model, batch), batch)
    assert carry.puzzle_ids.tolist() == [1, 2, 3]
    carry = Carry(carry.y + 1, carry.z, torch.tensor([2, 2, 2], dtype=torch.int32), torch.tensor([True, False, True]),
                  carry.inputs, carry.labels, carry.puzzle_ids)
    new_batch = {k: v * 2 for k, v in batch.items()}
    refilled = refill(model, carry, new_batch)
    assert refilled.puzzle_ids.tolist() == [2, 2, 6]
    assert refilled.steps.tolist() == [0, 2, 0]
    y_init, _ = model.initial_state(1)
    assert torch.equal(refilled.y[0], y_init[0]) and torch.equal(refilled.y[1], carry.y[1])


def test_sign_sgd_updates_touched_rows_only_and_sums_duplicates():
    table = PuzzleEmbedding(5, 2)
    table.weights[:] = 1.0
    opt = SparseSignSGD(table, weight_decay=0.5)
    ids = torch.tensor([1, 3, 1])
    grads = torch.tensor([[1.0, -1.0], [-2.0, 0.0], [-3.0, 2.0]])  # id 1 sums to (-2, 1)
    opt.step(ids, grads, lr=0.1)
    decay = 1 - 0.1 * 0.5
    assert torch.allclose(table.weights[1], torch.tensor([decay + 0.1, decay - 0.1]))
    assert torch.allclose(table.weights[3], torch.tensor([decay + 0.1, decay]))
    assert torch.all(table.weights[[0, 2, 4]] == 1.0)


def test_sign_sgd_gathered_equals_single_process():
    """Two processes' (ids, grads) gathered give the update one process computes on the union."""
    a, b = PuzzleEmbedding(4, 3), PuzzleEmbedding(4, 3)
    ids1, g1 = torch.tensor([0, 2]), torch.randn(2, 3)
    ids2, g2 = torch.tensor([2, 3]), torch.randn(2, 3)
    SparseSignSGD(a, 0.1).step(torch.cat([ids1, ids2]), torch.cat([g1, g2]), 0.01)
    fake_gather = {id(ids1): torch.cat([ids1, ids2]), id(g1): torch.cat([g1, g2])}
    SparseSignSGD(b, 0.1).step(ids1, g1, 0.01, gather=lambda t: fake_gather[id(t)])
    assert torch.equal(a.weights, b.weights)


def test_resized_table_initialises_new_rows_to_the_mean():
    table = PuzzleEmbedding(3, 2)
    table.weights[1:] = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    bigger = table.resized(5)
    assert torch.equal(bigger.weights[:3], table.weights)
    assert torch.equal(bigger.weights[3], torch.tensor([2.0, 3.0]))


def reference_adam_atan2(p, grads, lr, beta1, beta2, wd):
    """The `adam-atan2` CUDA kernel's arithmetic, one scalar at a time in float64."""
    p, m, v = float(p), 0.0, 0.0
    path = []
    for t, g in enumerate(grads, start=1):
        p *= 1 - lr * wd
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        p -= lr / (1 - beta1**t) * math.atan2(m, math.sqrt(v) / math.sqrt(1 - beta2**t))
        path.append(p)
    return path


def test_adam_atan2_is_the_reference_kernel_over_many_steps():
    # a biased, noisy gradient: the bias corrections matter for the first ~50 steps, the noise after
    generator = torch.Generator().manual_seed(0)
    grads = 0.2 + torch.randn(200, 3, generator=generator, dtype=torch.float64)
    start = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    p = torch.nn.Parameter(start.clone())
    opt = AdamATan2([p], lr=0.05, betas=(0.9, 0.95), weight_decay=0.1)
    ours = []
    for g in grads:
        p.grad = g.clone()
        opt.step()
        ours.append(p.detach().clone())
    ours = torch.stack(ours)
    for i in range(3):
        expected = torch.tensor(reference_adam_atan2(start[i], grads[:, i].tolist(), 0.05, 0.9, 0.95, 0.1), dtype=torch.float64)
        assert torch.allclose(ours[:, i], expected, rtol=1e-12, atol=1e-12)


def test_adam_atan2_first_step_with_a_constant_gradient():
    # m = 0.1, sqrt(v / (1 - beta2)) = 1: the kernel steps atan2(0.1, 1) / 0.1 = 0.997 lr, not atan2(1, 1) = 0.785 lr
    p = torch.nn.Parameter(torch.zeros(1))
    p.grad = torch.ones(1)
    AdamATan2([p], lr=1.0, betas=(0.9, 0.95)).step()
    assert -p.item() == pytest.approx(math.atan2(0.1, 1.0) / 0.1) == pytest.approx(0.9967, abs=1e-4)


def test_adam_atan2_accepts_zero_lr():
    p = torch.nn.Parameter(torch.ones(2))
    p.grad = torch.ones(2)
    AdamATan2([p], lr=0.0, weight_decay=0.1).step()
    assert torch.equal(p.detach(), torch.ones(2))


def test_learning_rate_schedule():
    assert learning_rate(0, 1e-4, 2000) == 0
    assert learning_rate(1000, 1e-4, 2000) == pytest.approx(5e-5)
    assert learning_rate(5000, 1e-4, 2000) == 1e-4  # constant after warmup (reference)
    assert learning_rate(100, 1.0, 0, min_ratio=0.1, total_steps=100) == pytest.approx(0.1)
    assert learning_rate(50, 1.0, 0, min_ratio=0.0, total_steps=100) == pytest.approx(0.5)


def test_ema_tracks_and_swaps_back():
    model = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = EMA(model, rate=0.5)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update()
    with ema.averaged() as averaged:
        assert torch.allclose(averaged.weight, torch.full((1, 2), 0.5))
    assert torch.allclose(model.weight, torch.ones(1, 2))


def supervision_step(model: torch.nn.Module, inputs: torch.Tensor, rows: torch.Tensor) -> tuple:
    """One training supervision step from the initial (y, z), every slot halting: the output and the
    parameters' gradients."""
    y, z = model.initial_state(inputs.shape[0])
    out = model(y, z, inputs, rows)
    loss, _ = act_loss(out.logits, out.q_halt, inputs.long(), torch.ones(inputs.shape[0], dtype=torch.bool))
    loss.backward()
    return out, [p.grad for p in model.parameters()]


@pytest.mark.slow
def test_compiled_model_matches_eager():
    """torch.compile (the GPU training path) keeps the eager numerics: logits, halt logit, gradients."""
    torch.manual_seed(0)
    eager = TRM(ModelConfig(**SMALL))
    twin = TRM(ModelConfig(**SMALL))
    twin.load_state_dict(eager.state_dict())
    compiled = torch.compile(twin)
    inputs, rows = torch.randint(0, 12, (4, 16)), torch.randn(4, 32)
    (a, grads_a), (b, grads_b) = supervision_step(eager, inputs, rows), supervision_step(compiled, inputs, rows)
    assert torch.allclose(a.logits, b.logits, atol=1e-4) and torch.allclose(a.q_halt, b.q_halt, atol=1e-4)
    assert torch.allclose(a.y, b.y, atol=1e-4)
    assert len(grads_a) == len(grads_b) > 0
    assert all(torch.allclose(x, y, atol=1e-4, rtol=1e-3) for x, y in zip(grads_a, grads_b, strict=True))


def test_bf16_compute_keeps_fp32_master_weights_and_gradients():
    """forward_dtype=bfloat16 (the GPU presets): activations in bf16, weights in fp32, and the step's
    output and gradients close to the fp32 one's (within bf16 rounding)."""
    torch.manual_seed(0)
    full = TRM(ModelConfig(**SMALL))
    half = TRM(ModelConfig(**{**SMALL, "forward_dtype": "bfloat16"}))
    half.load_state_dict(full.state_dict())
    inputs, rows = torch.randint(0, 12, (4, 16)), torch.randn(4, 32)
    (out_full, grads_full), (out_half, grads_half) = supervision_step(full, inputs, rows), supervision_step(half, inputs, rows)
    grad_full, grad_half = torch.cat([g.flatten() for g in grads_full]), torch.cat([g.flatten() for g in grads_half])
    assert out_half.y.dtype == torch.bfloat16 and out_half.logits.dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in half.parameters())
    assert (out_half.logits.float() - out_full.logits).norm() / out_full.logits.norm() < 2e-2
    assert torch.nn.functional.cosine_similarity(grad_half, grad_full, dim=0) > 0.99


def test_supervision_step_traces_as_one_graph():
    """torch.compile sees the whole step (all T cycles, the no-gradient ones included) as one graph:
    no graph break splits it into pieces that would run, and fuse, separately."""
    model = TRM(ModelConfig(**SMALL))
    y, z = model.initial_state(4)
    explained = torch._dynamo.explain(model)(y, z, torch.randint(0, 12, (4, 16)), torch.randn(4, 32, requires_grad=True))
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons


def test_cycle_adds_y_to_x_once_with_the_paper_numbers():
    # the paper's loop recomputes y + x for each of the n z-updates; y does not change there, so once suffices
    torch.manual_seed(0)
    model = TRM(ModelConfig(**{**SMALL, "n": 3}))
    y, z, x = (torch.randn(2, 20, 32) for _ in range(3))
    expected_z = z
    for _ in range(3):
        expected_z = model.f(expected_z, y + x)
    expected_y = model.f(y, expected_z)
    got_y, got_z = model.cycle(y, z, x)
    assert torch.equal(got_z, expected_z) and torch.equal(got_y, expected_y)
