"""Print a deterministic MXNet-style training log (no dependencies): a smoke-test workload.

Per batch ``Epoch[E] Batch [B]\\tSpeed: X samples/sec\\taccuracy=A``; per epoch the training
accuracy, time cost and validation accuracy lines; at the end a ``total time cost`` line that a
careless ``time cost:`` pattern would also match.
"""

from __future__ import annotations

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batches", type=int, default=4)
    args = parser.parse_args()
    total = 0.0
    for epoch in range(args.epochs):
        for batch in range(args.batches):
            speed = 1000.0 + 10 * epoch + batch
            print(f"Epoch[{epoch}] Batch [{batch}]\tSpeed: {speed:.2f} samples/sec\t"
                  f"accuracy={0.5 + 0.01 * batch:.6f}")
        cost = 1.5 + epoch
        total += cost
        print(f"[Epoch {epoch}] training: accuracy={0.6 + 0.1 * epoch:.6f}")
        print(f"[Epoch {epoch}] time cost: {cost:.3f}")
        print(f"[Epoch {epoch}] validation: accuracy={0.55 + 0.1 * epoch:.6f}")
    print(f"total time cost: {total:.3f}")


if __name__ == "__main__":
    main()
