"""The puzzle-embedding table sharded over real gloo processes equals the replicated one, exactly."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from arc_trm.distributed import free_port
from arc_trm.model.puzzle_embedding import PuzzleEmbedding, SparseSignSGD

NUM_IDS, DIM, WORLD, STEPS, BATCH = 11, 4, 2, 5, 3



def batches(rank: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per step: this rank's ids (repeats and ids held by the other rank included) and row gradients."""
    generator = torch.Generator().manual_seed(100 + rank)
    return [
        (torch.randint(0, NUM_IDS, (BATCH,), generator=generator), torch.randn(BATCH, DIM, generator=generator))
        for _ in range(STEPS)
    ]


def initial_table() -> torch.Tensor:
    return torch.randn(NUM_IDS, DIM, generator=torch.Generator().manual_seed(0))


def train(table: PuzzleEmbedding, rank: int, gather=None) -> list[torch.Tensor]:
    """Rows read each step, then SignSGD on the gathered gradients (lr and decay as ARC)."""
    optimizer, seen = SparseSignSGD(table, weight_decay=0.1), []
    for ids, grads in batches(rank):
        seen.append(table.rows(ids, requires_grad=True).detach())
        optimizer.step(ids, grads, lr=1e-2, gather=gather)
    return seen


def replicated_run() -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
    """One process with the whole table and both ranks' batches: the expected numbers."""
    table = PuzzleEmbedding(NUM_IDS, DIM)
    table.weights.copy_(initial_table())
    optimizer, seen = SparseSignSGD(table, weight_decay=0.1), [[], []]
    for step in range(STEPS):
        parts = [batches(rank)[step] for rank in range(WORLD)]
        for rank, (ids, _) in enumerate(parts):
            seen[rank].append(table.rows(ids, requires_grad=False).clone())
        optimizer.step(torch.cat([ids for ids, _ in parts]), torch.cat([g for _, g in parts]), lr=1e-2)
    return table.weights.clone(), seen


def gather(tensor: torch.Tensor) -> torch.Tensor:
    out = torch.empty(WORLD * tensor.shape[0], *tensor.shape[1:], dtype=tensor.dtype)
    dist.all_gather_into_tensor(out, tensor.contiguous())
    return out


def worker(rank: int, port: int, folder: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        table = PuzzleEmbedding(NUM_IDS, DIM, rank=rank, world=WORLD)
        table.weights.copy_(initial_table()[rank::WORLD])
        seen = train(table, rank, gather)
        whole = table.full()
        subset = table.subset(torch.tensor([7, 2, 7, 10]))
        torch.save(table.state_dict(), f"{folder}/puzzle_table_{rank}.pt")
        torch.save({"seen": seen, "whole": whole, "subset": subset.rows(torch.tensor([10, 2]), False)},
                   f"{folder}/result_{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sharded")
    mp.spawn(worker, args=(free_port(), str(folder)), nprocs=WORLD, join=True)
    return folder, [torch.load(folder / f"result_{rank}.pt") for rank in range(WORLD)]


def test_each_process_holds_its_share_of_the_rows():
    shards = [PuzzleEmbedding(NUM_IDS, DIM, rank=r, world=WORLD) for r in range(WORLD)]
    assert [s.weights.shape[0] for s in shards] == [6, 5]
    assert shards[1].held(torch.tensor([0, 1, 2, 3])).tolist() == [False, True, False, True]
    assert shards[1].local(torch.tensor([1, 3, 9])).tolist() == [0, 1, 4]


def test_sharded_rows_and_updates_equal_the_replicated_table(sharded):
    folder, results = sharded
    expected, expected_seen = replicated_run()
    for rank in range(WORLD):
        assert all(torch.equal(a, b) for a, b in zip(results[rank]["seen"], expected_seen[rank]))
    assert torch.equal(results[0]["whole"], expected) and results[1]["whole"] is None
    for rank in range(WORLD):
        assert torch.equal(results[rank]["subset"], expected[[10, 2]])


@pytest.mark.parametrize("world", [1, 3])
def test_shards_load_into_another_number_of_processes(sharded, world):
    folder, results = sharded
    expected = results[0]["whole"]
    paths = sorted(folder.glob("puzzle_table_*.pt"))
    for rank in range(world):
        table = PuzzleEmbedding(NUM_IDS, DIM, rank=rank, world=world)
        table.load_shards(paths)
        assert torch.equal(table.weights, expected[rank::world])


def test_incomplete_or_mismatched_shards_are_refused(sharded):
    folder, _ = sharded
    with pytest.raises(ValueError, match="fill 6 of"):
        PuzzleEmbedding(NUM_IDS, DIM).load_shards([folder / "puzzle_table_0.pt"])
    with pytest.raises(ValueError, match="does not match"):
        PuzzleEmbedding(NUM_IDS + 1, DIM).load_shards([folder / "puzzle_table_0.pt"])


def unique_based_update(weights: torch.Tensor, ids: torch.Tensor, grads: torch.Tensor, lr: float, wd: float,
                        rank: int = 0, world: int = 1) -> torch.Tensor:
    """The update written the obvious way (unique ids, boolean masks): what SparseSignSGD must equal."""
    unique, inverse = ids.unique(return_inverse=True)
    summed = torch.zeros(unique.shape[0], grads.shape[1]).index_add_(0, inverse, grads)
    mine = unique % world == rank
    local = unique[mine] // world
    out = weights.clone()
    out[local] = out[local] * (1 - lr * wd) - lr * summed[mine].sign()
    return out


@pytest.mark.parametrize("rank,world", [(0, 1), (1, 3)])
def test_sign_sgd_equals_the_unique_based_update(rank, world):
    generator = torch.Generator().manual_seed(rank)
    table = PuzzleEmbedding(NUM_IDS, DIM, rank=rank, world=world)
    table.weights.copy_(torch.randn(table.weights.shape, generator=generator))
    for _ in range(3):
        ids = torch.randint(0, NUM_IDS, (24,), generator=generator)  # many repeats, ids of every shard
        grads = torch.randn(24, DIM, generator=generator)
        expected = unique_based_update(table.weights, ids, grads, 1e-2, 0.1, rank, world)
        SparseSignSGD(table, weight_decay=0.1).step(ids, grads, lr=1e-2)
        assert torch.equal(table.weights, expected)


@pytest.mark.parametrize("rank,world", [(0, 1), (1, 2)])
def test_table_step_has_no_data_dependent_shapes(rank, world):
    """Rows and the update run on the meta device, which has no values: nothing in them needs a size
    that depends on the data (`unique`, boolean-mask reads), which on a GPU is a host synchronisation
    every step. The unique-based update cannot run there."""
    meta = torch.device("meta")
    ids, grads = torch.tensor([3, 1, 3, 7, 1, 1], device=meta), torch.randn(6, DIM, device=meta)
    table = PuzzleEmbedding(NUM_IDS, DIM, meta, rank=rank, world=world)
    if not table.sharded:  # the sharded read also all-reduces, which needs a process group
        assert table.rows(ids, requires_grad=True).shape == (6, DIM)
    SparseSignSGD(table, weight_decay=0.1).step(ids, grads, lr=1e-2)
    with pytest.raises(NotImplementedError):
        unique_based_update(table.weights, ids, grads, 1e-2, 0.1, rank, world)
