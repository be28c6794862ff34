"""What scrape_throughput.py scrapes: the generated MXNet-style log and the four pattern sets.

* the log: MXNet Gluon image-classification output as the old driver saw it, every line
  prefixed ``INFO:root:`` (its logging shared the log file): about 5% ``Epoch[E] Batch [B]
  \\tSpeed: ... samples/sec\\taccuracy=...`` lines, per epoch a training accuracy, time cost and
  validation accuracy line, the rest other ``INFO:root:`` logging. Deterministic, cached.
* (a) ``old``: the old driver's own patterns for its MXNet image-classification task
  (``[resnet50_cifar10_hybrid]`` of tests/data/old_task_config.cfg) as ``convert-cfg`` gives
  them: unanchored, with its number group ``(\\d+\\.\\d+|\\d+)``;
* (b) ``anchored``: the same four metrics as ``^INFO:root:...`` patterns;
* (c) ``twenty``: the 20 distinct patterns of the old config's sections (all but the section
  whose ``%`` the old driver could not read), unanchored; 4 of them match this log;
* (d) ``shared``: one pattern (a's speed) feeding 8 metrics.

Each pattern has its grep twin: the same regex in POSIX ERE (``\\d`` is ``[0-9]``).
"""

from __future__ import annotations

import random
import re
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))  # the driver, when not installed

from driver.convert import convert_cfg  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OLD_CONFIG = REPO / "tests" / "data" / "old_task_config.cfg"
OLD_TASK = "resnet50_cifar10_hybrid"
UNREADABLE_SECTIONS = ("mms_resnet_18_cpu",)  # its '%' crashed the old driver's ConfigParser
GENERATOR_VERSION = 4  # bump when the log's content changes: cached logs are then regenerated
MB = 1_000_000
BATCH_LINE_SHARE = 0.05
PREFIX = "INFO:root:"
NUMBER = r"(\d+\.\d+|\d+)"


@dataclass(frozen=True)
class Metric:
    """One scraped metric: name, Python regex, compute method."""

    name: str
    pattern: str
    method: str


@dataclass(frozen=True)
class PatternSet:
    """A cell row of the matrix: the metrics and the distinct patterns grep gets."""

    key: str
    title: str
    metrics: tuple[Metric, ...]

    @property
    def patterns(self) -> list[str]:
        """Distinct patterns, in order (what grep is given)."""
        return list(dict.fromkeys(m.pattern for m in self.metrics))


def ere(pattern: str) -> str:
    """The POSIX ERE twin of a Python regex that uses only the constructs ERE shares."""
    classes = {"d": "[0-9]", "S": "[^[:space:]]", "s": "[[:space:]]", "w": "[[:alnum:]_]",
               "t": "\t"}

    def escape(found: re.Match[str]) -> str:
        char = found.group(1)
        if char in classes:
            return classes[char]
        if char in ".[]()*+?{}|^$\\/":
            return "\\" + char
        raise ValueError(f"no ERE twin for \\{char} in {pattern!r}")

    if "(?" in pattern:
        raise ValueError(f"no ERE twin for the group syntax in {pattern!r}")
    return re.sub(r"\\(.)", escape, pattern)


def old_config_tasks() -> dict[str, dict]:
    """tests/data/old_task_config.cfg as ``bench-driver convert-cfg`` converts it."""
    text, _ = convert_cfg(OLD_CONFIG.read_text(encoding="utf-8"), OLD_CONFIG.name)
    return tomllib.loads(text)["tasks"]


def pattern_sets() -> dict[str, PatternSet]:
    """The four sets, keyed a, b, c, d."""
    tasks = old_config_tasks()
    task = tasks[OLD_TASK]
    old = tuple(Metric(n, p, c) for n, p, c in
                zip(task["metrics"], task["patterns"], task["compute_method"]))
    anchored = (
        Metric("speed", rf"^INFO:root:Epoch\[\d+\] Batch \[\d+\]\tSpeed: {NUMBER} samples/sec",
               "average"),
        Metric("training_acc", rf"^INFO:root:\[Epoch \d+\] training: accuracy={NUMBER}", "last"),
        Metric("validation_acc", rf"^INFO:root:\[Epoch \d+\] validation: accuracy={NUMBER}",
               "last"),
        Metric("total_training_time", rf"^INFO:root:\[Epoch \d+\] time cost: {NUMBER}", "total"),
    )
    seen = [p for name, t in tasks.items() if name not in UNREADABLE_SECTIONS
            for p in t["patterns"]]
    twenty = tuple(Metric(f"c{i:02d}", p, "last") for i, p in enumerate(dict.fromkeys(seen)))
    shared = tuple(Metric(f"speed_{i}", old[0].pattern, "average") for i in range(8))
    return {
        "a": PatternSet("a", f"old driver's {len(old)} ({OLD_TASK}, unanchored)", old),
        "b": PatternSet("b", f"{len(anchored)} anchored (^INFO:root:...)", anchored),
        "c": PatternSet("c", f"{len(twenty)} unanchored from the old config", twenty),
        "d": PatternSet("d", "1 pattern shared by 8 metrics", shared),
    }


FILLERS = (
    "Iter[{i}] lr={lr:.6f} loss={a:.4f} grad_norm={b:.4f} momentum=0.9 wd=0.0001",
    "worker {w} prefetched batch {i} in {b:.4f} s (queue {w}/16, {n} bytes)",
    "[{i}] data shapes (256, 3, 224, 224) label shapes (256,) kvstore=device ctx=gpu({w})",
    "forward_backward {i}: {a:.5f} ms fwd, {b:.5f} ms bwd, sync {n} us",
    "slow batch {i}: data loading {a:.3f} s > compute {b:.3f} s; increase workers",
    "checkpoint shard {w} of epoch state flushed: {n} params, rank {w}, step {i}",
)


def generate_log(path: Path, size_mb: float, seed: int = 0) -> tuple[int, int]:
    """Write the MXNet-style log; returns (bytes, lines). Deterministic for a given seed."""
    rng = random.Random(seed)
    pool = [PREFIX + rng.choice(FILLERS).format(
        i=rng.randrange(10**6), lr=rng.random() / 10, a=rng.random() * 10, b=rng.random() * 10,
        w=rng.randrange(16), n=rng.randrange(10**7)) for _ in range(4096)]
    per_batch = round(1 / BATCH_LINE_SHARE) - 1  # other lines between two batch lines
    target = int(size_mb * MB)
    batch_bytes = 90 + per_batch * (1 + sum(map(len, pool)) / len(pool))
    batches_per_epoch = max(10, min(1000, int(target / batch_bytes / 50)))  # >= ~50 epochs
    written = lines = epoch = 0
    with open(path, "w", encoding="ascii", newline="\n") as f:
        while written < target:
            block = []
            for batch in range(batches_per_epoch):
                block.append(f"{PREFIX}Epoch[{epoch}] Batch [{batch * 50 + 49}]\tSpeed: "
                             f"{rng.uniform(800, 1200):.6f} samples/sec\t"
                             f"accuracy={rng.random():.6f}")
                start = rng.randrange(len(pool) - per_batch)
                block.extend(pool[start:start + per_batch])
            block += [f"{PREFIX}[Epoch {epoch}] training: accuracy={rng.random():.6f}",
                      f"{PREFIX}[Epoch {epoch}] time cost: {rng.uniform(100, 200):.6f}",
                      f"{PREFIX}[Epoch {epoch}] validation: accuracy={rng.random():.6f}"]
            text = "\n".join(block) + "\n"
            f.write(text)
            written += len(text)
            lines += len(block)
            epoch += 1
    return written, lines


def cached_log(data_dir: Path, size_mb: float) -> Path:
    """The log for *size_mb*, generated once into *data_dir* and reused."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / f"mxnet_{size_mb:g}mb_v{GENERATOR_VERSION}.log"
    if not path.is_file():
        start = time.perf_counter()
        partial = path.with_suffix(".partial")
        size, lines = generate_log(partial, size_mb)
        partial.replace(path)
        print(f"generated {path} ({size / MB:.1f} MB, {lines:,} lines) in "
              f"{time.perf_counter() - start:.1f} s")
    return path
