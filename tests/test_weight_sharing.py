"""Correctness of the six weight-sharing algorithms (plugins/weight_sharing), on a CPU, in-process:
DARTS-V2's gradient against exact double backward, GDAS's sampling, SETN's/RSPS's/ENAS's
choices by their own evaluation, ENAS's controller, the direction of each architecture update,
and the same trajectory from the same seed."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Iterator

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from plugins.nas201.images import BenchmarkImages
from plugins.nas201.space import EDGES, OPS, NB201Space
from plugins.nas201.supernet import NONE, Mixture, Path, Plan, Supernet
from plugins.weight_sharing import darts, enas, gdas, rsps, setn
from plugins.weight_sharing.algorithms import ALGORITHMS
from plugins.weight_sharing.loop import (
    Batch, EpochStats, SearchData, WeightOptimizer, score_candidates,
)
from plugins.weight_sharing.settings import DARTS, GDAS, PAPER, SearchSettings, settings_for

TINY = replace(DARTS, channels=2, cells_per_stage=1, epochs=5, batch_size=4, eval_batch_size=8,
               candidates=12, controller_steps=30, controller_aggregate=4)


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """One torch thread, deterministic algorithms: results depend on both."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(False)
    torch.set_num_threads(before)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images_batch(seed: int = 0, n: int = 4, dtype: torch.dtype = torch.float32) -> Batch:
    g = gen(seed)
    x, ax = (torch.randn(n, 3, 8, 8, generator=g, dtype=dtype) for _ in range(2))
    y, ay = (torch.randint(0, 10, (n,), generator=g) for _ in range(2))
    return Batch(x, y, ax, ay)


def tiny_supernet(dtype: torch.dtype = torch.float32) -> Supernet:
    torch.manual_seed(0)
    return Supernet(10, channels=2, cells_per_stage=1).to(dtype)


# --- DARTS-V2: the unrolled gradient ------------------------------------------------------------

def exact_unrolled_gradient(strategy: darts.SecondOrder, batch: Batch,
                            weights: WeightOptimizer) -> tuple[torch.Tensor, torch.Tensor]:
    """d L_val(w'(alpha), alpha) / d alpha by double backward, and its first-order part."""
    net, alpha, settings = strategy.net, strategy.alpha, strategy.settings
    names, params = zip(*net.named_parameters())
    train_loss = F.cross_entropy(net(batch.x, Mixture(alpha.softmax(-1))), batch.y)
    grads = torch.autograd.grad(train_loss, params, create_graph=True)
    virtual = {}
    for name, p, g in zip(names, params, grads):
        buf = weights.sgd.state[p]["momentum_buffer"]
        virtual[name] = p - weights.lr * (settings.momentum * buf + g + settings.weight_decay * p)
    buffers = {name: b.clone() for name, b in net.named_buffers()}
    logits = functional_call(net, {**virtual, **buffers}, (batch.arch_x, Mixture(alpha.softmax(-1))))
    val_loss = F.cross_entropy(logits, batch.arch_y)
    (exact,) = torch.autograd.grad(val_loss, [alpha], retain_graph=True)
    detached = {name: v.detach() for name, v in virtual.items()}
    logits = functional_call(net, {**detached, **buffers}, (batch.arch_x, Mixture(alpha.softmax(-1))))
    (first_order,) = torch.autograd.grad(F.cross_entropy(logits, batch.arch_y), [alpha])
    return exact, first_order


def test_darts_v2_gradient_equals_double_backward_through_the_unrolled_step() -> None:
    net = tiny_supernet(torch.float64)
    settings = replace(TINY, learning_rate=0.5, unroll_r=1e-4)  # a large lr: a large 2nd-order term
    strategy = darts.SecondOrder(net, settings, gen())
    with torch.no_grad():
        strategy.alpha.normal_(0, 1, generator=gen(3))
    weights = WeightOptimizer(net, settings)
    weights.set_epoch(0)
    for seed in (1, 2):  # real steps first, so that the momentum term takes part
        weights.step(F.cross_entropy(net(images_batch(seed, dtype=torch.float64).x,
                                         strategy.mixture(detach=True)), torch.arange(4)))
    batch = images_batch(4, dtype=torch.float64)
    exact, first_order = exact_unrolled_gradient(strategy, batch, weights)
    strategy.unrolled_gradient(batch, weights)
    ours = strategy.alpha.grad
    assert ours is not None
    second_order = (exact - first_order).norm()
    assert second_order > 1e-3 * exact.norm()  # the Hessian term matters here
    assert (ours - exact).norm() < 1e-3 * second_order  # finite differences: close, not exact
    torch.testing.assert_close(ours, exact, rtol=1e-5, atol=1e-8)


def test_darts_v2_uses_the_paper_finite_difference_radius() -> None:
    assert PAPER["darts-v2"].unroll_r == 1e-2 and ALGORITHMS["darts-v2"].strategy.endswith(
        "darts:SecondOrder")


# --- GDAS ---------------------------------------------------------------------------------------

def count_op_calls(net: Supernet) -> tuple[dict[tuple[int, int, int], int], list]:
    calls: dict[tuple[int, int, int], int] = {}
    handles = []
    for c, cell in enumerate(net.cells()):
        for k, edge in enumerate(cell.edges):
            for i, op in enumerate(edge):  # type: ignore[arg-type]
                def hook(module: nn.Module, args: object, out: object,
                         key: tuple[int, int, int] = (c, k, i)) -> None:
                    calls[key] = calls.get(key, 0) + 1
                handles.append(op.register_forward_hook(hook))
    return calls, handles


def test_gdas_computes_only_the_sampled_op_and_its_gradient_reaches_alpha() -> None:
    net = Supernet(10, channels=2, cells_per_stage=2)
    strategy = gdas.GDAS(net, replace(GDAS, epochs=3), gen())
    calls, handles = count_op_calls(net)
    plan = strategy.sample()
    loss = F.cross_entropy(net(images_batch().x, plan), torch.arange(4))
    for handle in handles:
        handle.remove()
    expected = {(c, k, i): 1 for c in range(6) for k, i in enumerate(plan.index) if i != NONE}
    assert calls == expected  # one op per edge and cell, the sampled one; `none` never computed
    assert any(i != NONE for i in plan.index)
    loss.backward()
    grad = strategy.alpha.grad
    assert grad is not None and bool((grad != 0).any()) and bool(torch.isfinite(grad).all())


def test_gdas_samples_follow_the_distribution_and_tau_falls_linearly() -> None:
    settings = replace(GDAS, epochs=250)
    assert [settings.tau_at(e) for e in (0, 249)] == [10.0, pytest.approx(0.1)]
    assert settings.tau_at(100) == pytest.approx(10 - 9.9 * 100 / 249)
    strategy = gdas.GDAS(Supernet(10, channels=2, cells_per_stage=1), settings, gen())
    strategy.begin_epoch(100)
    assert strategy.tau() == settings.tau_at(100)
    with torch.no_grad():
        strategy.alpha.zero_()
        strategy.alpha[:, 3] = 2.0  # nor_conv_3x3: probability e^2 / (e^2 + 4) = 0.65 per edge
    picks = torch.tensor([strategy.sample().index for _ in range(600)])
    frequency = (picks == 3).float().mean().item()
    assert frequency == pytest.approx(math.exp(2) / (math.exp(2) + 4), abs=0.05)
    plan = strategy.sample()
    assert torch.equal(plan.hard.detach().sum(-1), torch.ones(len(EDGES), dtype=plan.hard.dtype))


# --- the candidates: SETN, RSPS, ENAS choose by their own evaluation ----------------------------

class ScoredCells(nn.Module):
    """A stand-in supernet: on a batch whose labels are all 0 it is right on a fraction of the
    images equal to the fraction of edges whose op is *target*'s."""

    def __init__(self, target: tuple[int, ...]) -> None:
        super().__init__()
        self.target = target
        self.gain = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor, plan: Plan) -> torch.Tensor:
        assert isinstance(plan, Path)
        matches = sum(a == b for a, b in zip(plan.choice, self.target))
        right = torch.arange(len(x)) < round(len(x) * matches / len(EDGES))
        return torch.stack([right.float(), (~right).float()], 1) * self.gain


def zero_label_data(settings: SearchSettings, n: int = 12) -> SearchData:
    x = torch.zeros(n, 3, 4, 4, dtype=torch.uint8)
    y = torch.zeros(n, dtype=torch.int64)
    images = BenchmarkImages(x, y, x, y, (0.5,) * 3, (0.25,) * 3, 1, "test")
    return SearchData(images, settings, 0, torch.device("cpu"))


def test_score_candidates_is_each_cells_accuracy_on_its_validation_batch() -> None:
    target = (3, 3, 1, 2, 4, 0)
    data = zero_label_data(TINY)
    scores = score_candidates(ScoredCells(target), [target, (0,) * 6, (3, 3, 1, 0, 0, 1)], data)
    assert scores == [100.0, pytest.approx(100 / 8 * 1), 50.0]  # 8 images: 6, 1 and 3 edges match


def test_setn_scores_its_top_cells_by_log_probability_and_keeps_the_best() -> None:
    target = (1, 1, 3, 1, 1, 1)
    net = ScoredCells(target)
    strategy = setn.SETN(net, TINY, gen())
    with torch.no_grad():  # the most probable cell is all-skip; the target is second
        strategy.alpha.zero_()
        strategy.alpha[:, 1] = 3.0
        strategy.alpha[2, 3] = 2.95
    top = setn.top_by_log_probability(strategy.alpha, 12)
    assert top[0] == (1, 1, 1, 1, 1, 1) and top[1] == target
    logp = strategy.alpha.detach().log_softmax(-1)

    def log_probability(cell: tuple[int, ...]) -> float:
        return float(sum(logp[k, op] for k, op in enumerate(cell)))

    every = sorted((log_probability(tuple(c)) for c in setn.all_choices().tolist()), reverse=True)
    assert [log_probability(c) for c in top] == pytest.approx(every[:12])  # ties in any order
    assert strategy.current(zero_label_data(TINY), final=True) == target
    assert strategy.best_score == 100.0 and strategy.last_scores[0] == tuple(top)


def test_rsps_keeps_the_best_of_its_random_cells_by_its_own_scores() -> None:
    target = (4, 2, 3, 1, 2, 3)
    strategy = rsps.RSPS(ScoredCells(target), replace(TINY, candidates=40), gen(5))
    chosen = strategy.current(zero_label_data(TINY), final=True)
    candidates, scores = strategy.last_scores
    assert len(set(candidates)) > 30  # random cells, not one cell forty times
    assert chosen == candidates[scores.index(max(scores))]
    matches = [sum(a == b for a, b in zip(c, target)) for c in candidates]
    assert sum(a == b for a, b in zip(chosen, target)) == max(matches)


def test_enas_keeps_the_best_of_its_controller_samples() -> None:
    target = (3, 3, 3, 3, 3, 3)
    strategy = enas.ENAS(ScoredCells(target), TINY, gen(1))
    chosen = strategy.current(zero_label_data(TINY), final=True)
    candidates, scores = strategy.last_scores
    assert len(candidates) == TINY.candidates and chosen == candidates[scores.index(max(scores))]


# --- architecture updates point the right way ---------------------------------------------------

BEST = (3, 2, 4, 1, 3, 2)  # the op that is best on each edge


class ScaledOps(nn.Module):
    """A stand-in supernet on inputs of ones: op i of edge k outputs x (when i == BEST[k]) or
    zeros, and the logit of class 0 is gain * (the sum over edges): with every label 0 the loss
    falls as more weight goes to each edge's best op."""

    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(()))
        self.edge_ops = nn.ModuleList(
            nn.ModuleList(Scale(3.0 if i == BEST[k] else 0.0) for i in range(len(OPS)))
            for k in range(len(EDGES)))

    def forward(self, x: torch.Tensor, plan: Plan) -> torch.Tensor:
        total = torch.zeros(len(x))
        for k, ops in enumerate(self.edge_ops):
            out = plan.edge(k, x, ops)  # type: ignore[arg-type]
            if out is not None:
                total = total + out.mean(1)
        return torch.stack([self.gain * total, torch.zeros(len(x))], 1)


class Scale(nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.value


def ones_batch() -> Batch:
    x, y = torch.ones(8, 1), torch.zeros(8, dtype=torch.int64)
    return Batch(x, y, x, y)


@pytest.mark.parametrize("cls", [darts.FirstOrder, darts.SecondOrder, gdas.GDAS, setn.SETN])
def test_alpha_updates_raise_the_best_ops_probability_on_every_edge(cls: type) -> None:
    torch.manual_seed(0)
    net = ScaledOps()
    strategy = cls(net, replace(TINY, arch_learning_rate=0.05), gen())
    before = strategy.alpha.detach().softmax(-1)[range(6), BEST].clone()
    weights = WeightOptimizer(net, strategy.settings)
    for _ in range(10):
        strategy.step(ones_batch(), weights, EpochStats())
    after = strategy.alpha.detach().softmax(-1)[range(6), BEST]
    assert bool((after > before).all()), (before, after)
    assert tuple(strategy.alpha.argmax(-1).tolist()) == BEST


def frequencies(controller: enas.Controller, samples: int = 300) -> list[float]:
    """How often the controller samples BEST[k] on each edge k."""
    with torch.no_grad():
        g = gen(9)
        drawn = torch.tensor([controller(g)[2] for _ in range(samples)])
    return (drawn == torch.tensor(BEST)).float().mean(0).tolist()


@pytest.mark.parametrize("edge", range(len(EDGES)))
def test_enas_controller_moves_toward_the_rewarded_choice(edge: int) -> None:
    """REINFORCE on a toy reward (1 when the edge holds its best op): the controller samples it
    more often. (A reward summed over edges also rises, but which edges get there first
    depends on the noise: REINFORCE reinforces what it happened to sample.)"""
    torch.manual_seed(0)
    settings = replace(TINY, arch_learning_rate=0.01, controller_steps=20,
                       controller_aggregate=10)
    strategy = enas.ENAS(ScaledOps(), settings, gen(2))
    before = frequencies(strategy.controller)[edge]
    strategy.train_controller(lambda i, choice: float(choice[edge] == BEST[edge]))
    after = frequencies(strategy.controller)[edge]
    assert after > before + 0.1, (before, after)
    assert strategy.baseline is not None and 0 < strategy.baseline < 1


def test_enas_teacher_forcing_gives_the_log_probability_of_a_cell() -> None:
    controller = enas.Controller()
    log_prob, _, _ = controller(gen(), forced=BEST)
    first, _, _ = controller(gen(), forced=BEST[:1])
    assert float(log_prob.detach()) < float(first.detach()) < 0


# --- reproducibility and settings ----------------------------------------------------------------

QUICK = {"epochs": 2, "train_batches": 2, "candidates": 3, "controller_steps": 2,
         "eval_batch_size": 16}


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_the_same_seed_gives_the_same_trajectory(name: str) -> None:
    def trajectory(seed: int) -> tuple[tuple[str, ...], list[float]]:
        algorithm = ALGORITHMS[name](data="synthetic", synthetic_images=(64, 48), **QUICK)
        lines: list[str] = []
        arch = algorithm.run(NB201Space(), seed, lines.append, score=lambda arch: 0.0)
        assert len(lines) == 2 and arch == algorithm.outcome.arch
        return (algorithm.outcome.trajectory + (arch,),
                [r.train_loss for r in algorithm.outcome.epochs])

    first, again, other = trajectory(0), trajectory(0), trajectory(1)
    assert first == again
    assert other[1] != first[1]  # another seed: other weights, other data order


def test_toy_and_full_settings() -> None:
    toy = settings_for(PAPER["gdas"], "toy")
    assert (toy.channels, toy.cells_per_stage, toy.epochs) == (8, 1, 3)
    assert settings_for(PAPER["gdas"], "full", "nats").track_running_stats is False
    assert settings_for(PAPER["enas"], "toy", overrides={"epochs": 5}).epochs == 5
