"""Speed of the weight-sharing NAS algorithms: toy epochs, and one search step against xautodl's.

    python benchmarks/nas201_weight_sharing.py                 # --repeat 5 --threads 1
    python benchmarks/nas201_weight_sharing.py --channels 16 --cells 5 --batch-size 64
    python benchmarks/nas201_weight_sharing.py --gpu            # on a GPU machine (see below)

1. Seconds per search epoch of each algorithm in toy mode (``mode=toy``: C=8, N=1, 4 batches of 16
   digits), in-process, the median over the epochs of one search.
2. One search step of our supernet against the reference implementation's (xautodl 1.0.0's NB201
   search models: ``pip install --no-deps xautodl==1.0.0``), same CPU, batch, C, N and 32x32
   inputs, interleaved, medians of ``--repeat``: for darts-v1, gdas, setn, enas and rsps one
   forward and backward of the supernet as the algorithm runs it (mixture, hard Gumbel sample,
   a uniform path, a controller's path); for darts-v2 the whole architecture step, unrolled, with
   the reference's method (a deep copy of the model loaded with the virtual weights, then the
   finite-difference Hessian-vector product) written against xautodl's model. Prints::

       RATIO ws_step_darts-v2 (xautodl's seconds over ours) = 1.40x (target >= 1.0): PASS

``--gpu`` (for a machine with one; not run here): a full DARTS-V1 epoch and a full GDAS epoch
(C=16, N=5, batch 64, 25k synthetic images per half: 390 iterations) through the driver itself
(``python -m driver --task-name nas201_darts_v1 --set mode=full --set data=synthetic ...
--set epochs=1``), which records the time and the GPU's peak memory.
"""

from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from _common import machine_line, median, print_ratio, spread  # noqa: E402
from plugins.nas201.space import OPS, NB201Space  # noqa: E402
from plugins.nas201.supernet import Mixture, Path as CellPath, Supernet  # noqa: E402
from plugins.weight_sharing import darts, gdas  # noqa: E402
from plugins.weight_sharing.algorithms import ALGORITHMS  # noqa: E402
from plugins.weight_sharing.loop import Batch, WeightOptimizer, random_choices  # noqa: E402
from plugins.weight_sharing.settings import DARTS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
Step = Callable[[], None]


def toy_epochs(names: list[str]) -> None:
    """Part 1: seconds per toy search epoch per algorithm."""
    for name in names:
        algorithm = ALGORITHMS[name]()
        algorithm.run(NB201Space(), 0, lambda line: None, score=lambda arch: 0.0)
        times = [r.time_s for r in algorithm.outcome.epochs]
        print(f"toy epoch {name:9s} median {median(times):.3f} s ({spread(times)}; "
              f"{algorithm.settings.train_batches} iterations of {algorithm.settings.batch_size})",
              flush=True)


def reference_model(kind: str, channels: int, cells: int) -> torch.nn.Module:
    """xautodl's NB201 search model of *kind* (cell BN without affine, running statistics)."""
    from xautodl.models.cell_searchs import nas201_super_nets

    return nas201_super_nets[kind](channels, cells, 4, 10, list(OPS), False, True)


def our_steps(channels: int, cells: int, batch: Batch) -> dict[str, Step]:
    """Our timed steps (see the module docstring)."""
    torch.manual_seed(0)
    net = Supernet(10, channels, cells)
    settings = replace(DARTS, channels=channels, cells_per_stage=cells)
    g = torch.Generator().manual_seed(0)
    first = darts.FirstOrder(net, settings, g)
    second = darts.SecondOrder(net, settings, g)
    sampler = gdas.GDAS(net, replace(settings, epochs=250), g)
    weights = WeightOptimizer(net, settings)
    weights.set_epoch(0)

    def backward(plan_of: Callable[[], object]) -> Step:
        def step() -> None:
            net.zero_grad(set_to_none=True)
            F.cross_entropy(net(batch.x, plan_of()), batch.y).backward()  # type: ignore[arg-type]
        return step

    def unrolled() -> None:
        second.unrolled_gradient(batch, weights)

    return {
        "darts-v1": backward(lambda: Mixture(first.alpha.softmax(-1))),
        "darts-v2": unrolled,
        "gdas": backward(sampler.sample),
        "setn": backward(lambda: CellPath(random_choices(1, g)[0])),
        "enas": backward(lambda: CellPath(random_choices(1, g)[0])),
        "rsps": backward(lambda: CellPath(random_choices(1, g)[0])),
    }


def reference_steps(channels: int, cells: int, batch: Batch) -> dict[str, Step]:
    """The reference's timed steps on xautodl's models."""
    torch.manual_seed(0)
    models = {kind: reference_model(kind, channels, cells)
              for kind in ("DARTS-V1", "GDAS", "SETN", "ENAS", "RANDOM")}
    models["GDAS"].set_tau(10.0)
    models["SETN"].set_cal_mode("urs")

    def backward(model: torch.nn.Module, before: Callable[[], object] = lambda: None) -> Step:
        def step() -> None:
            before()
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(batch.x)[1], batch.y).backward()
        return step

    enas_model, random_model = models["ENAS"], models["RANDOM"]
    darts_model = models["DARTS-V1"]
    sgd = torch.optim.SGD(darts_model.get_weights(), lr=0.025, momentum=0.9, nesterov=True,
                          weight_decay=5e-4)
    return {
        "darts-v1": backward(darts_model),
        "darts-v2": lambda: reference_unrolled_step(darts_model, sgd, batch),
        "gdas": backward(models["GDAS"]),
        "setn": backward(models["SETN"]),
        "enas": backward(enas_model, lambda: enas_model.update_arch(
            [int(i) for i in torch.randint(5, (6,))])),
        "rsps": backward(random_model, lambda: random_model.random_genotype(True)),
    }


def reference_unrolled_step(model: torch.nn.Module, sgd: torch.optim.SGD, batch: Batch) -> None:
    """The architecture gradient of DARTS-V2 the way AutoDL's script computes it: the virtual
    step, a deep copy of the model loaded with the virtual weights, its validation gradient, and
    the finite-difference Hessian-vector product on the original model."""
    weights = model.get_weights()
    loss = F.cross_entropy(model(batch.x)[1], batch.y)
    lr, wd, momentum = 0.025, 5e-4, 0.9
    with torch.no_grad():
        theta = torch.cat([w.view(-1) for w in weights])
        buffers = [sgd.state.get(w, {}).get("momentum_buffer") for w in weights]
        moment = (torch.cat([b.view(-1) for b in buffers]) * momentum
                  if all(b is not None for b in buffers) else torch.zeros_like(theta))
        grads = torch.autograd.grad(loss, weights)
        dtheta = torch.cat([g.view(-1) for g in grads]) + wd * theta
        params = theta - lr * (moment + dtheta)
    unrolled = copy.deepcopy(model)
    state, offset = unrolled.state_dict(), 0
    for name, value in model.named_parameters():
        if "arch_parameters" in name:
            continue
        state[name] = params[offset:offset + value.numel()].view(value.size())
        offset += value.numel()
    unrolled.load_state_dict(state)
    unrolled.zero_grad()
    F.cross_entropy(unrolled(batch.arch_x)[1], batch.arch_y).backward()
    vector = [w.grad for w in unrolled.get_weights()]
    radius = 1e-2 / torch.cat([v.view(-1) for v in vector]).norm()
    alphas = []
    for sign in (1.0, -2.0):
        with torch.no_grad():
            for w, v in zip(weights, vector):
                w.add_(v, alpha=float(sign * radius))
        alphas.append(torch.autograd.grad(F.cross_entropy(model(batch.x)[1], batch.y),
                                          model.get_alphas())[0])
    with torch.no_grad():
        for w, v in zip(weights, vector):
            w.add_(v, alpha=float(radius))
    hessian_vector = (alphas[0] - alphas[1]) / (2 * radius)
    model.arch_parameters.grad = unrolled.arch_parameters.grad - lr * hessian_vector


def time_interleaved(ours: Step, theirs: Step, repeat: int) -> tuple[list[float], list[float]]:
    """Seconds of each step, alternating which goes first; one warm-up call each."""
    ours(), theirs()
    times: tuple[list[float], list[float]] = ([], [])
    for i in range(repeat):
        for side in ((0, 1) if i % 2 == 0 else (1, 0)):
            start = time.perf_counter()
            (ours, theirs)[side]()
            times[side].append(time.perf_counter() - start)
    return times


def compare_steps(names: list[str], channels: int, cells: int, batch_size: int,
                  repeat: int) -> None:
    """Part 2: one step, ours against the reference's."""
    g = torch.Generator().manual_seed(0)
    x, ax = (torch.randn(batch_size, 3, 32, 32, generator=g) for _ in range(2))
    y, ay = (torch.randint(0, 10, (batch_size,), generator=g) for _ in range(2))
    batch = Batch(x, y, ax, ay)
    ours, theirs = our_steps(channels, cells, batch), reference_steps(channels, cells, batch)
    for name in names:
        mine, reference = time_interleaved(ours[name], theirs[name], repeat)
        ratio = median(reference) / median(mine)
        print(f"step {name:9s} ours {median(mine):.4f} s ({spread(mine, '{:.4f}')}), xautodl "
              f"{median(reference):.4f} s ({spread(reference, '{:.4f}')})", flush=True)
        print_ratio(f"ws_step_{name} (xautodl's seconds over ours, C={channels} N={cells} "
                    f"batch {batch_size})", ratio, ">= 1.0", ratio >= 1.0)


def gpu_epochs() -> int:
    """The GPU check: one full DARTS-V1 and one full GDAS epoch through the driver."""
    if not torch.cuda.is_available():
        print("--gpu: no CUDA device is visible; run this on a GPU machine", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        for task in ("nas201_darts_v1", "nas201_gdas"):
            out = Path(tmp, f"{task}.json")
            subprocess.run([sys.executable, "-m", "driver", "run", "--config",
                            str(REPO / "task_config.toml"), "--task-name", task, "--set",
                            "mode=full", "--set", "data=synthetic", "--set", "epochs=1",
                            "--set", "device=cuda", "--set", "threads=0", "--timeout", "1800",
                            "--output", str(out), "--runs-dir", str(Path(tmp, "runs"))],
                           check=False, cwd=REPO)
            print(task, out.read_text() if out.exists() else "(no result)", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the parts the options ask for (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--cells", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--skip-epochs", action="store_true", help="only the step comparison")
    parser.add_argument("--gpu", action="store_true", help="the full-epoch GPU check instead")
    args = parser.parse_args(argv)
    if args.gpu:
        return gpu_epochs()
    torch.set_num_threads(args.threads)
    names = args.algorithms.split(",")
    print(machine_line(), f"torch {torch.__version__}, {args.threads} thread(s)", flush=True)
    if not args.skip_epochs:
        toy_epochs(names)
    compare_steps(names, args.channels, args.cells, args.batch_size, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
