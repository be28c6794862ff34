"""What a scraper gained since it last said so, per metric, and adding that to another copy.

The scraper's process (driver.scrape_process) sends the driver, after each block of the log, only
what that block added to each metric's :class:`~driver.scrape.MetricMatches`: the new items of
every list field and the increase of every counter (any other field, whole, when it changed).
The driver adds them to its own copy with :func:`merge`. Generic over the instance's attributes
(``vars()``), so a field added to MetricMatches travels too.
"""

from __future__ import annotations

from typing import Any, Mapping

from driver.scrape import MetricMatches

#: Lists that grow with the log: the child drops them once sent (the driver keeps them).
GROWING_LISTS = ("values",)


def _is_counter(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Deltas:
    """Takes, from *found* (the child's matches), what changed since the last :meth:`take`.

    What *found* holds already (a child forked late inherits the driver's values) counts as sent.
    """

    def __init__(self, found: Mapping[str, MetricMatches]) -> None:
        self.found = found
        self.sent: dict[str, dict[str, Any]] = {name: {} for name in found}
        self.take()

    def take(self) -> dict[str, dict[str, Any]]:
        """``{metric: {field: new items | increase | new value}}``, only what changed."""
        out = {}
        for name, matches in self.found.items():
            delta = self._changes(matches, self.sent[name])
            if delta:
                out[name] = delta
        return out

    @staticmethod
    def _changes(matches: MetricMatches, sent: dict[str, Any]) -> dict[str, Any]:
        delta: dict[str, Any] = {}
        for name, value in vars(matches).items():
            if isinstance(value, list):
                new = value[sent.get(name, 0):]
                if name in GROWING_LISTS:
                    value.clear()
                sent[name] = len(value)
                if new:
                    delta[name] = new
            elif _is_counter(value):
                if value != sent.get(name, 0):
                    delta[name] = value - sent.get(name, 0)
                    sent[name] = value
            elif name not in sent or value != sent[name]:
                delta[name] = sent[name] = value
        return delta


def merge(found: Mapping[str, MetricMatches], deltas: Mapping[str, Mapping[str, Any]]) -> None:
    """Add what :meth:`Deltas.take` sent to each metric's matches in *found*."""
    for name, delta in deltas.items():
        target = found[name]
        for key, value in delta.items():
            current = getattr(target, key)
            if isinstance(current, list):
                current.extend(value)
            elif _is_counter(current):
                setattr(target, key, current + value)
            else:
                setattr(target, key, value)
