"""``bench-driver compare BASELINE NEW``: per-metric verdicts and an exit code for CI.

Each side is a flat result file, a run record, a set's ``summary.json``, an experiment's
``experiment.json``, or a directory holding one of them. Keys are the flat file's keys, or
``task.metric`` for records and summaries, or ``variant/task.metric`` for experiments.

A metric is a **regression** when NEW is worse than BASELINE by more than its threshold *and*,
when both sides have two repetitions or more, the difference is significant (``--test``,
``--alpha``). With one value on a side (single runs) no test is possible: the threshold alone
decides, the table's ``p`` column says ``n=1`` and a note says the difference may be noise and
suggests ``--repetitions``. Which way is worse comes from ``--direction``, else the metric's
declared ``direction``, else its name (:data:`HIGHER_WORDS`, :data:`LOWER_WORDS`); a metric with
none is shown but not checked. A metric of BASELINE missing from NEW also fails. Exit code 8 on any
failure, 0 otherwise; unreadable input is a configuration error (3).
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Mapping, Sequence, TextIO

from driver.errors import ConfigError, ExitCode, did_you_mean

#: Name parts (split at anything but letters and digits) that make higher values better.
HIGHER_WORDS = ("speed", "throughput", "accuracy", "acc", "score", "fps", "qps")
#: Name parts that make lower values better (checked after HIGHER_WORDS).
LOWER_WORDS = ("time", "latency", "memory", "loss", "error", "duration", "rss")
if TYPE_CHECKING:
    from driver.plugins import Plugins

DEFAULT_THRESHOLD = "5%"
#: The verdict of one key.
VerdictName = Literal["regression", "improvement", "within threshold", "not significant",
                      "unchecked", "missing", "new"]
REGRESSION: VerdictName = "regression"
IMPROVEMENT: VerdictName = "improvement"
WITHIN: VerdictName = "within threshold"
NOT_SIGNIFICANT: VerdictName = "not significant"
UNCHECKED: VerdictName = "unchecked"  # no direction known
MISSING: VerdictName = "missing"  # in BASELINE, not in NEW
NEW: VerdictName = "new"  # in NEW only
FAILING: tuple[VerdictName, ...] = (REGRESSION, MISSING)


@dataclass(frozen=True)
class Sample:
    """One side's measurement of a metric: the compared value and every repetition's value."""

    value: float
    values: tuple[float, ...]
    metric: str | None = None  # the bare metric name, when the input says it
    direction: str | None = None


@dataclass(frozen=True)
class Threshold:
    """How much worse NEW may be: a fraction of BASELINE (``5%``) or an absolute amount."""

    limit: float
    relative: bool

    def allowed(self, baseline: float) -> float:
        """The allowed worsening from *baseline*."""
        return self.limit * abs(baseline) if self.relative else self.limit

    def __str__(self) -> str:
        return f"{self.limit * 100:g}%" if self.relative else f"{self.limit:g}"


@dataclass(frozen=True)
class Verdict:
    """The comparison of one key."""

    key: str
    verdict: VerdictName
    direction: str | None = None
    baseline: Sample | None = None
    new: Sample | None = None
    threshold: Threshold | None = None
    p_value: float | None = None

    @property
    def failed(self) -> bool:
        """True for a regression or a metric missing from NEW."""
        return self.verdict in FAILING

    @property
    def fewest_values(self) -> int | None:
        """How many values the side with fewer has; None when a side is missing."""
        if self.baseline is None or self.new is None:
            return None
        return min(len(self.baseline.values), len(self.new.values))

    @property
    def untested(self) -> bool:
        """Both sides measured, one with fewer than two values: no significance test was
        possible, so a difference beyond the threshold may be run-to-run noise."""
        return self.fewest_values is not None and self.fewest_values < 2

    @property
    def p_text(self) -> str:
        """The p-value; ``n=1`` where no test was possible (``-`` where none was needed)."""
        from driver.report import fmt

        if self.p_value is None and self.untested and self.direction is not None:
            return f"n={self.fewest_values}"
        return fmt(self.p_value)

    @property
    def change(self) -> str:
        """``+3.2%`` (or an absolute change when BASELINE is 0)."""
        if self.baseline is None or self.new is None:
            return "-"
        diff = self.new.value - self.baseline.value
        return f"{diff / abs(self.baseline.value) * 100:+.2f}%" if self.baseline.value else \
            f"{diff:+.6g}"


@dataclass(frozen=True)
class CompareOptions:
    """Choices from the command line."""

    thresholds: Mapping[str, Threshold] = field(default_factory=dict)  # "" = every metric
    directions: Mapping[str, str] = field(default_factory=dict)
    metrics: tuple[str, ...] = ()
    statistic: str = "median"
    test: str = "welch"
    alpha: float = 0.05


def load_side(path: Path, statistic: str = "median") -> dict[str, Sample]:
    """Every key of one side: a file or a directory holding record/summary/experiment JSON.

    Non-finite numbers (``NaN``, ``Infinity``, ``1e400``) and incomplete documents are bad input
    (ConfigError, exit 3): a gate must never pass on them.
    """
    if path.is_dir():
        found = [path / n for n in ("summary.json", "experiment.json", "record.json")
                 if (path / n).is_file()]
        if not found:
            raise ConfigError(f"{path}: no summary.json, experiment.json or record.json in it")
        path = found[0]
    try:
        document = json.loads(path.read_text(encoding="utf-8"), parse_constant=_no_constant)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read a result: {exc}") from None
    try:
        samples = _from_document(path, document, statistic) if isinstance(document, dict) and \
            "schema" in document else _from_flat(path, document)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ConfigError(f"{path}: incomplete or malformed result ({type(exc).__name__}: "
                          f"{exc}); was it written by bench-driver?") from None
    _check_finite(path, samples)
    return samples


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number a result may hold")


def _check_finite(path: Path, samples: Mapping[str, Sample]) -> None:
    for key, sample in samples.items():
        if not all(math.isfinite(v) for v in (sample.value, *sample.values)):
            raise ConfigError(f"{path}: {key} = {sample.value!r}: not a finite number; a result "
                              f"with NaN or infinity cannot be compared")


def _from_document(path: Path, document: dict[str, Any], statistic: str) -> dict[str, Sample]:
    from driver import results
    from driver.experiments.summary import (EXPERIMENT_SCHEMA, SUMMARY_SCHEMA, ExperimentIndex,
                                            SetSummary)

    schema = document.get("schema")
    if schema == results.SCHEMA:
        record = results.load_record(path)
        directions = {m.name: m.direction for m in record.metrics}
        return {f"{record.task}.{n}": Sample(float(v), (float(v),), n, directions.get(n))
                for n, v in record.values().items()}
    if schema == SUMMARY_SCHEMA:
        return _from_summary(SetSummary.load(path), statistic)
    if schema == EXPERIMENT_SCHEMA:
        samples = {}
        index = ExperimentIndex.load(path)
        for variant, summary in zip(index.variants, index.summaries()):
            samples.update({f"{variant.name}/{k}": s
                            for k, s in _from_summary(summary, statistic).items()})
        return samples
    raise ConfigError(f"{path}: unknown schema {schema!r}; expected a run record, a summary.json "
                      f"or an experiment.json")


def _from_summary(summary: Any, statistic: str) -> dict[str, Sample]:
    found = {}
    for name, m in summary.metrics.items():
        value = m.statistic(statistic)
        if m.n and value is not None:
            found[f"{summary.task}.{name}"] = Sample(value, tuple(m.values), name, m.direction)
    return found


def _from_flat(path: Path, document: Any) -> dict[str, Sample]:
    if not isinstance(document, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in document.values()):
        raise ConfigError(f"{path}: not a flat result (an object of \"key\": number), a run "
                          f"record, a summary.json or an experiment.json")
    return {k: Sample(float(v), (float(v),)) for k, v in document.items()}


def parse_thresholds(texts: Sequence[str]) -> dict[str, Threshold]:
    """``["5%", "loss=0.01"]`` -> ``{"": 5% relative, "loss": 0.01 absolute}``."""
    found = {"": _threshold(DEFAULT_THRESHOLD, "--threshold")}
    for text in texts:
        name, sep, limit = text.rpartition("=")
        found[name.strip() if sep else ""] = _threshold(limit.strip(), f"--threshold {text}")
    return found


def _threshold(text: str, where: str) -> Threshold:
    relative = text.endswith("%")
    try:
        limit = float(text[:-1] if relative else text)
    except ValueError:
        limit = -1.0
    if not limit >= 0 or limit == float("inf"):
        raise ConfigError(f"{where}: expected a limit >= 0 like 5% (relative) or 0.01 "
                          f"(absolute), optionally after METRIC=")
    return Threshold(limit / 100 if relative else limit, relative)


def parse_directions(texts: Sequence[str]) -> dict[str, str]:
    """``["speed=higher"]`` -> ``{"speed": "higher"}``."""
    found = {}
    for text in texts:
        name, sep, direction = text.partition("=")
        if not sep or not name.strip() or direction not in ("higher", "lower"):
            raise ConfigError(f"--direction {text!r}: expected METRIC=higher or METRIC=lower")
        found[name.strip()] = direction
    return found


def default_direction(name: str) -> str | None:
    """``higher`` or ``lower`` from the words of a metric name, None when it says neither."""
    words = set(re.split(r"[^a-z0-9]+", name.lower()))
    if words & set(HIGHER_WORDS):
        return "higher"
    if words & set(LOWER_WORDS):
        return "lower"
    return None


def matches(name: str, key: str, sample: Sample | None) -> bool:
    """Does option name *name* apply to *key*: the whole key, its metric, or dotted parts of it."""
    if name == key or (sample is not None and name == sample.metric):
        return True
    parts, wanted = re.split(r"[./]", key), name.split(".")
    return any(parts[i:i + len(wanted)] == wanted for i in range(len(parts)))


def compare(baseline: Mapping[str, Sample], new: Mapping[str, Sample],
            options: CompareOptions) -> list[Verdict]:
    """A verdict for every key of either side (BASELINE's order, then keys only NEW has)."""
    keys = [k for k in list(baseline) + [k for k in new if k not in baseline]
            if not options.metrics or any(matches(m, k, baseline.get(k) or new.get(k))
                                          for m in options.metrics)]
    verdicts = []
    for key in keys:
        base, now = baseline.get(key), new.get(key)
        if base is None or now is None:
            verdicts.append(Verdict(key, MISSING if now is None else NEW, None, base, now))
        else:
            verdicts.append(_verdict(key, base, now, options))
    return verdicts


def _verdict(key: str, base: Sample, now: Sample, options: CompareOptions) -> Verdict:
    direction = pick(options.directions, key, now) or now.direction or base.direction or \
        default_direction(now.metric or key)
    threshold = pick(options.thresholds, key, now) or options.thresholds[""]
    if direction is None:
        return Verdict(key, UNCHECKED, None, base, now, threshold)
    worse = now.value - base.value if direction == "lower" else base.value - now.value
    p_value = None
    if len(base.values) > 1 and len(now.values) > 1:
        from driver.experiments.stats import significance

        p_value = significance(base.values, now.values, options.test).p_value
    significant = p_value is None or p_value < options.alpha
    allowed = threshold.allowed(base.value)
    verdict: VerdictName
    if abs(worse) <= allowed:
        verdict = WITHIN
    elif not significant:
        verdict = NOT_SIGNIFICANT
    else:
        verdict = REGRESSION if worse > 0 else IMPROVEMENT
    return Verdict(key, verdict, direction, base, now, threshold, p_value)


def pick(table: Mapping[str, Any], key: str, sample: Sample) -> Any:
    """The entry of the most specific (longest) option name matching *key*."""
    named = [n for n in table if n and matches(n, key, sample)]
    return table[max(named, key=len)] if named else None


def check_names(options: CompareOptions, keys: Sequence[str],
                samples: Mapping[str, Sample]) -> None:
    """Every METRIC named in --threshold, --direction or --metric must match some key."""
    given = [("--threshold", n) for n in options.thresholds if n] + \
        [("--direction", n) for n in options.directions] + \
        [("--metric", n) for n in options.metrics]
    check_option_names(given, keys, samples, "in either result")


def check_option_names(given: Sequence[tuple[str, str]], keys: Sequence[str],
                       samples: Mapping[str, Sample], where: str) -> None:
    """Each ``(flag, METRIC)`` of *given* must match some key (ConfigError naming the flag)."""
    known = sorted(set(keys) | {s.metric for s in samples.values() if s.metric} |
                   {part for k in keys for part in re.split(r"[./]", k)})
    for flag, name in given:
        if not any(matches(name, k, samples.get(k)) for k in keys):
            raise ConfigError(f"{flag} {name}: no metric {name!r} {where}"
                              f"{did_you_mean(name, known)}; keys: {', '.join(keys[:12])}"
                              f"{' ...' if len(keys) > 12 else ''}")


TABLE_HEAD = ("metric", "better", "baseline", "new", "change", "threshold", "p", "verdict")


def table_rows(verdicts: Sequence[Verdict]) -> list[tuple[str, ...]]:
    """The comparison as rows of text, one per key (:data:`TABLE_HEAD`)."""
    from driver.report import fmt

    return [(v.key, v.direction or "?", fmt(v.baseline.value if v.baseline else None),
             fmt(v.new.value if v.new else None), v.change, str(v.threshold or "-"),
             v.p_text, v.verdict.upper() if v.failed else v.verdict) for v in verdicts]


def print_comparison(verdicts: Sequence[Verdict], stream: TextIO | None = None) -> None:
    """The table on *stream* (stdout): rich on a terminal, plain text otherwise."""
    stream = stream or sys.stdout
    if stream.isatty():
        from rich.console import Console

        from driver.experiments.tables import print_table

        print_table(Console(file=stream), TABLE_HEAD, table_rows(verdicts), keys=1,
                    right=(2, 3, 4, 6), title="bench-driver compare",
                    styles=["red" if v.failed else None for v in verdicts])
        return
    from driver.experiments.tables import print_plain

    print_plain(stream, TABLE_HEAD, table_rows(verdicts))


def untested_notes(verdicts: Sequence[Verdict]) -> list[str]:
    """What to say when verdicts beyond the threshold rest on single values (n=1)."""
    beyond = [v.key for v in verdicts if v.untested and v.verdict in (REGRESSION, IMPROVEMENT)]
    if not beyond:
        return []
    return [f"{len(beyond)} verdict(s) beyond the threshold rest on one value on a side "
            f"({', '.join(beyond[:3])}{' ...' if len(beyond) > 3 else ''}): no significance "
            f"test is possible with n=1, so the difference may be run-to-run noise (single runs "
            f"of one task can differ by tens of percent). They still fail the gate (exit 8 on a "
            f"regression); to tell noise from a change, measure both sides with --repetitions 5 "
            f"(bench-driver run --task-name TASK --repetitions 5) and compare their summary.json"]


@dataclass(frozen=True)
class Comparison:
    """A finished ``compare``: both inputs and every verdict (what reporters are given)."""

    baseline: Path
    new: Path
    verdicts: tuple[Verdict, ...]

    @property
    def title(self) -> str:
        return f"bench-driver compare: {self.baseline} -> {self.new}"

    @property
    def failed(self) -> bool:
        """A regression, or a metric of BASELINE missing from NEW."""
        return any(v.failed for v in self.verdicts)


def main_compare(args: Any, plugins: Plugins) -> int:
    """The ``compare`` subcommand: load, check, print, hand the verdicts to the reporters (JUnit,
    Markdown, the step summary), exit 8 on failure. A reporter that fails is a warning: it
    never changes the verdict's exit code."""
    from driver.report import ReportSettings, publish

    if not 0 < args.alpha < 1:
        raise ConfigError(f"--alpha {args.alpha}: expected a number between 0 and 1")
    options = CompareOptions(parse_thresholds(args.threshold), parse_directions(args.direction),
                             tuple(args.metric), args.statistic, args.test, args.alpha)
    baseline, new = load_side(args.baseline, args.statistic), load_side(args.new, args.statistic)
    if not set(baseline) & set(new):
        raise ConfigError(f"{args.baseline} and {args.new} have no key in common (baseline: "
                          f"{', '.join(list(baseline)[:5])}...; new: {', '.join(list(new)[:5])}"
                          f"...); compare results of the same task, framework and suffix")
    check_names(options, list(dict.fromkeys([*baseline, *new])), {**baseline, **new})
    comparison = Comparison(args.baseline, args.new, tuple(compare(baseline, new, options)))
    print_comparison(comparison.verdicts)
    for note in untested_notes(comparison.verdicts):
        print(f"bench-driver: note: {note}", file=sys.stderr)
    from driver.noise import compare_notes

    for note in compare_notes(args.baseline, args.new):  # what could explain a difference
        print(f"bench-driver: note: {note}", file=sys.stderr)
    for failure in publish(plugins, "report_comparison", comparison, ReportSettings(args)):
        print(f"bench-driver: warning: {failure}", file=sys.stderr)
    return ExitCode.REGRESSION if comparison.failed else ExitCode.OK
