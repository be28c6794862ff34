"""The typed documents of repeated runs: a set's ``summary.json`` and an experiment's index.

Both are versioned documents (pyperf-style): a schema name and version, ``to_dict`` /
``from_dict``, and a loader that refuses versions it does not read.

Format history of ``bench-driver/summary``:

* 1 (bench-driver 0.1.0): the first version.
* 2: ``directory`` (the set's directory); per run ``plugin_errors`` and ``storage_errors``; per metric ``error`` (e.g. a
  statistic that overflowed). Version 1 documents still load.
* 3: ``environment`` (the environment block of the set's first run, driver.environment); per run
  ``warnings`` (the machine's noise, driver.noise). Versions 1 and 2 still load.

Format history of ``bench-driver/experiment``:

* 1 (bench-driver 0.1.0): the first version (still the current one).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from driver import results
from driver.errors import ExitCode
from driver.experiments.stats import statistic_of
from driver.report import STAT_COLUMNS
from driver.results import RunRecord, load_document, result_key, write_json_atomic

SUMMARY_SCHEMA = "bench-driver/summary"
SUMMARY_VERSION = 3
SUMMARY_READS = (1, 2, 3)
EXPERIMENT_SCHEMA = "bench-driver/experiment"
EXPERIMENT_VERSION = 1
EXPERIMENT_READS = (1,)


@dataclass(frozen=True)
class SetRun:
    """One run of a set, as the summary lists it."""

    kind: str  # "warmup" or "repetition"
    index: int
    seed: int
    status: str
    exit_code: int | None
    signal: str | None
    duration_s: float | None
    run_dir: str
    record: str  # path of its record.json
    resumed: bool
    values: Mapping[str, float] = field(default_factory=dict)
    missing_required: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    plugin_errors: tuple[str, ...] = ()
    storage_errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()  # the machine's noise during this run (driver.noise)

    @classmethod
    def of(cls, kind: str, index: int, seed: int, record: RunRecord, resumed: bool) -> SetRun:
        """The entry of a finished (or interrupted) run."""
        return cls(kind, index, seed, record.status, record.exit_code, record.signal,
                   record.duration_s, record.run_dir, str(Path(record.run_dir) / "record.json"),
                   resumed, record.values(), tuple(record.missing_required), record.errors,
                   record.plugin_errors, record.storage_errors, tuple(record.warnings))

    @property
    def measured(self) -> bool:
        """A repetition whose command succeeded: its values enter the statistics."""
        return self.kind == "repetition" and self.status in results.MEASURED

    def exit_code_of_run(self) -> ExitCode:
        """The exit code this run alone would have given."""
        return results.exit_code_for(self)


@dataclass(frozen=True)
class MetricSummary:
    """One metric over a set's measured repetitions (``n`` 0: no repetition had it)."""

    n: int = 0
    median: float | None = None
    mean: float | None = None
    std: float | None = None  # sample standard deviation; None with one value
    min: float | None = None
    max: float | None = None
    values: tuple[float, ...] = ()
    outliers: tuple[int, ...] = ()  # repetition indices outside Tukey's fences
    repetitions: tuple[int, ...] = ()  # the repetition each value comes from
    missing: int = 0  # measured repetitions without the metric
    direction: str | None = None
    unit: str | None = None
    optional: bool | None = None
    error: str | None = None  # e.g. "overflow: mean"

    def statistic(self, name: str) -> float | None:
        """One of :data:`driver.experiments.stats.STATISTICS` (None when there is none)."""
        return statistic_of(self, name)


@dataclass(frozen=True)
class SetSummary:
    """A set of repeated runs of one task (``summary.json``)."""

    task: str
    repetitions: int
    warmup: int
    base_seed: int
    statistic: str
    runs: tuple[SetRun, ...]
    metrics: Mapping[str, MetricSummary]
    experiment: str | None = None
    variant: str | None = None
    values: Mapping[str, Any] = field(default_factory=dict)  # the experiment's matrix point
    directory: str = ""
    environment: Mapping[str, Any] = field(default_factory=dict)  # of the set's first run

    @property
    def complete(self) -> bool:
        """Every planned run (warmups included) has finished."""
        done = sum(1 for r in self.runs if r.status in results.FINISHED)
        return done == self.repetitions + self.warmup

    @property
    def label(self) -> str:
        """``experiment/variant`` for an experiment's set, else the task name."""
        return f"{self.experiment}/{self.variant}" if self.experiment else self.task

    def value(self, metric: str) -> float | None:
        """The reported statistic of *metric*."""
        return self.metrics[metric].statistic(self.statistic)

    def flat(self, framework: str | None = None, suffix: str | None = None) -> dict[str, float]:
        """The old flat object for the set: each metric's reported statistic."""
        found = {name: self.value(name) for name in self.metrics}
        return {result_key(self.task, name, framework, suffix): v
                for name, v in found.items() if v is not None}

    def exit_code(self) -> ExitCode:
        """OK when every run is ok and every required metric has its statistic; otherwise the
        exit code of the first run that is not ok (or MISSING_METRIC for an overflow)."""
        for run in self.runs:
            if run.exit_code_of_run() != ExitCode.OK:
                return run.exit_code_of_run()
        if any(m.error and m.optional is False and self.value(name) is None
               for name, m in self.metrics.items()):
            return ExitCode.MISSING_METRIC  # the reported statistic overflowed
        return ExitCode.OK

    @classmethod
    def build(cls, header: SetSummary, runs: Sequence[SetRun],
              metas: Mapping[str, Mapping[str, Any]]) -> SetSummary:
        """*header* (every field but runs and metrics) with its runs and their statistics."""
        measured = [r for r in runs if r.measured]
        return replace(header, runs=tuple(runs), metrics=summarise_metrics(measured, metas),
                       environment=header.environment or first_environment(runs))

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["complete"] = self.complete
        return {"schema": SUMMARY_SCHEMA, "schema_version": SUMMARY_VERSION, **body}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> SetSummary:
        body = _known(cls, doc)
        body["runs"] = tuple(SetRun(**_tuples(_known(SetRun, r))) for r in doc.get("runs", ()))
        body["metrics"] = {n: MetricSummary(**_tuples(_known(MetricSummary, m)))
                           for n, m in doc.get("metrics", {}).items()}
        return cls(**body)

    @classmethod
    def load(cls, path: str | Path) -> SetSummary:
        """Read a summary.json (ConfigError for another document or an unknown version)."""
        return cls.from_dict(load_document(path, SUMMARY_SCHEMA, SUMMARY_READS))

    def save(self, path: str | Path) -> None:
        write_json_atomic(path, self.to_dict())


def summarise_metrics(runs: Sequence[SetRun],
                      metas: Mapping[str, Mapping[str, Any]]) -> dict[str, MetricSummary]:
    """Per metric over measured *runs*: statistics, the repetition indices the values come
    from, how many runs lacked it, and *metas* (direction, unit, optional)."""
    from driver.experiments.stats import describe

    names = list(metas) + [n for r in runs for n in r.values if n not in metas]
    summary: dict[str, MetricSummary] = {}
    for name in dict.fromkeys(names):
        meta = metas.get(name, {})
        pairs = [(r.index, r.values[name]) for r in runs if name in r.values]
        entry = MetricSummary(repetitions=tuple(i for i, _ in pairs),
                              missing=len(runs) - len(pairs), direction=meta.get("direction"),
                              unit=meta.get("unit"), optional=meta.get("optional"))
        if pairs:
            s = describe([v for _, v in pairs])
            entry = replace(entry, n=s.n, median=s.median, mean=s.mean, std=s.std, min=s.min,
                            max=s.max, values=s.values,
                            outliers=tuple(pairs[p][0] for p in s.outliers),
                            error=f"overflow: {', '.join(s.overflow)}" if s.overflow else None)
        summary[name] = entry
    return summary


def first_environment(runs: Sequence[SetRun]) -> dict[str, Any]:
    """The environment block of the first of *runs* whose record can be read ({} if none)."""
    from driver.errors import ConfigError

    for run in runs:
        try:
            return dict(results.load_record(run.record).environment)
        except ConfigError:
            continue
    return {}


def record_metas(record: RunRecord) -> dict[str, dict[str, Any]]:
    """``direction``, ``unit`` and ``optional`` of each metric a run record declares."""
    return {m.name: {"direction": m.direction, "unit": m.unit, "optional": m.optional}
            for m in record.metrics}


@dataclass(frozen=True)
class VariantEntry:
    """One variant of an experiment in its index."""

    name: str
    values: Mapping[str, Any]
    summary: str  # its summary.json, relative to the experiment directory
    complete: bool


@dataclass(frozen=True)
class ExperimentIndex:
    """An experiment directory's ``experiment.json``."""

    experiment: str
    task: str
    description: str
    matrix: Mapping[str, list[Any]]
    variants: tuple[VariantEntry, ...]
    directory: str = ""

    def summaries(self) -> list[SetSummary]:
        """The summary of every variant listed."""
        return [SetSummary.load(Path(self.directory) / v.summary) for v in self.variants]

    def to_dict(self) -> dict[str, Any]:
        body = {k: v for k, v in asdict(self).items() if k != "directory"}
        return {"schema": EXPERIMENT_SCHEMA, "schema_version": EXPERIMENT_VERSION, **body}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], directory: str = "") -> ExperimentIndex:
        body = _known(cls, doc)
        body["variants"] = tuple(VariantEntry(**_known(VariantEntry, v))
                                 for v in doc.get("variants", ()))
        return cls(**{**body, "directory": directory})

    @classmethod
    def load(cls, path: str | Path) -> ExperimentIndex:
        """Read an experiment.json (ConfigError for another document or an unknown version)."""
        doc = load_document(path, EXPERIMENT_SCHEMA, EXPERIMENT_READS)
        return cls.from_dict(doc, str(Path(path).parent))

    def save(self, path: str | Path) -> None:
        write_json_atomic(path, self.to_dict())


def summary_rows(summaries: Sequence[SetSummary]) -> list[dict[str, Any]]:
    """The rows of a summary table: one per set and metric, with the set's label, the reported
    value, every statistic, outliers, units and how many runs were ok."""
    found = []
    for s in summaries:
        ok = sum(1 for r in s.runs if r.kind == "repetition" and r.status == results.OK)
        for name, m in s.metrics.items():
            found.append({
                "experiment": s.experiment or "", "variant": s.variant or "", "task": s.task,
                "metric": name, "statistic": s.statistic, "value": s.value(name),
                **{k: getattr(m, k) for k in STAT_COLUMNS},
                "outliers": " ".join(str(i) for i in m.outliers), "missing": m.missing,
                "unit": m.unit or "", "direction": m.direction or "", "runs_ok": ok,
                "runs": s.repetitions, "label": s.label, "error": m.error or "",
            })
    return found


def problem_lines(summaries: Sequence[SetSummary]) -> list[str]:
    """``label kind index: status (first error)`` for every run that was not ok, and a line for
    each incomplete set."""
    lines = []
    for s in summaries:
        for r in s.runs:
            if r.status != results.OK:
                why = f" ({r.errors[0]})" if r.errors else ""
                lines.append(f"{s.label} {r.kind} {r.index}: {r.status}{why}")
        if not s.complete:
            resume = "run the experiment again to resume" if s.experiment else \
                "its finished runs are kept"
            lines.append(f"{s.label}: incomplete; {resume}")
    return lines


def noise_lines(summaries: Sequence[SetSummary]) -> list[str]:
    """``label: noisy machine in N of M run(s): CHECK (first seen)`` per set and check: the
    machine warnings that could explain a set's spread, or a difference between sets."""
    lines = []
    for s in summaries:
        seen: dict[str, list[str]] = {}
        for r in s.runs:
            for check, warning in {w.split(":")[0]: w for w in r.warnings}.items():
                seen.setdefault(check, []).append(warning)
        lines += [f"{s.label}: noisy machine in {len(found)} of {len(s.runs)} run(s): {found[0]}"
                  for found in seen.values()]
    return lines


def _known(kind: type, doc: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(kind)}
    return {k: v for k, v in doc.items() if k in names}


def _tuples(body: dict[str, Any]) -> dict[str, Any]:
    """JSON lists back into the tuples the dataclasses hold."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in body.items()}
