"""MXNet/Gluon-format training log lines, printed flushed, and the same values kept for JSON.

Floats are printed with ``repr``: the shortest text that reads back as the identical float, so a
regex scrape followed by ``float()`` recovers exactly what was logged (``1e-05``, ``nan`` and
``inf`` included; patterns should capture ``(\\S+)``).
"""

from __future__ import annotations

import json
from typing import Any

from driver.results import write_json_atomic

SUMMARY_FORMAT_VERSION = 1


class RunLog:
    """Prints the log lines (when *enabled*, i.e. on rank 0) and records every printed value."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.batches: list[dict[str, Any]] = []
        self.epochs: dict[int, dict[str, Any]] = {}
        self.total_time_cost_s: float | None = None

    def _print(self, line: str) -> None:
        if self.enabled:
            print(line, flush=True)

    def header(self, description: dict[str, Any]) -> None:
        """One ``config: {json}`` line saying what runs (no metric pattern matches it)."""
        self._print("config: " + json.dumps(description, sort_keys=True))

    def batch(self, epoch: int, index: int, samples: int, seconds: float, accuracy: float) -> None:
        """``Epoch[E] Batch [B]\\tSpeed: X samples/sec\\taccuracy=A``; X = samples / seconds."""
        speed = samples / seconds
        self.batches.append({"epoch": epoch, "batch": index, "samples": samples,
                             "seconds": seconds, "speed": speed, "accuracy": accuracy})
        self._print(f"Epoch[{epoch}] Batch [{index}]\tSpeed: {speed!r} samples/sec"
                    f"\taccuracy={accuracy!r}")

    def epoch_training(self, epoch: int, accuracy: float, loss: float, time_cost_s: float) -> None:
        """The epoch's training accuracy, mean loss and training seconds (three lines)."""
        self.epochs[epoch] = {"epoch": epoch, "training_accuracy": accuracy,
                              "training_loss": loss, "time_cost": time_cost_s}
        self._print(f"[Epoch {epoch}] training: accuracy={accuracy!r}")
        self._print(f"[Epoch {epoch}] training: loss={loss!r}")
        self._print(f"[Epoch {epoch}] time cost: {time_cost_s!r}")

    def epoch_validation(self, epoch: int, accuracy: float) -> None:
        """``[Epoch E] validation: accuracy=A``."""
        self.epochs[epoch]["validation_accuracy"] = accuracy
        self._print(f"[Epoch {epoch}] validation: accuracy={accuracy!r}")

    def total(self, seconds: float) -> None:
        """``total time cost: T``: deliberately close to the per-epoch line (anchor patterns)."""
        self.total_time_cost_s = seconds
        self._print(f"total time cost: {seconds!r}")

    def write_json(self, path: str, description: dict[str, Any]) -> None:
        """Write every logged value (atomically: a temporary file renamed into place)."""
        doc = {
            "format_version": SUMMARY_FORMAT_VERSION, "run": description,
            "batches": self.batches, "epochs": [self.epochs[e] for e in sorted(self.epochs)],
            "total_time_cost": self.total_time_cost_s,
        }
        write_json_atomic(path, doc)
