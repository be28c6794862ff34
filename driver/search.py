"""Searcher, SearchSpace, Evaluator and NASAlgorithm: the interfaces NAS plugins implement.

The loop is ask/tell (as Optuna's ``Study.ask/tell``)::

    searcher = SearcherClass(space, seed=0)
    while budget remains:
        trial = searcher.ask()              # a configuration (and optionally a fidelity)
        result = evaluator.evaluate(trial)  # its objective and what it cost
        searcher.tell(result)

:func:`run_search` keeps ``concurrency`` trials in flight on an :class:`Executor` (by default a
:class:`SimulatedClock`: an event queue on a simulated clock) and tells the searcher the results
in completion order; with ``concurrency=1`` it is exactly the loop above.

Searchers maximise :attr:`TrialResult.value`. Costs are seconds, real or simulated (a tabular
evaluator returns the tabulated training time), so that a time-budgeted search over a table is
reproducible and takes seconds. :func:`run_search` is that loop with a budget and progress lines.
"""

from __future__ import annotations

import heapq
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Hashable, Literal, Mapping, Sequence

from driver.errors import ConfigError

#: A configuration: whatever the search space proposes (an architecture string, a dict ...).
#: It must be hashable so searchers can remember what they have seen.
Config = Hashable


@dataclass(frozen=True)
class Trial:
    """One configuration to evaluate. ``fidelity`` is for multi-fidelity searchers (e.g. epochs)."""

    number: int
    config: Config
    fidelity: float | None = None


@dataclass(frozen=True)
class TrialResult:
    """What evaluating a trial gave: the objective (higher is better) and its cost in seconds."""

    trial: Trial
    value: float
    cost_s: float = 0.0
    info: Mapping[str, Any] = field(default_factory=dict)


#: What a searcher may need of a space, and the SearchSpace methods that provide it.
Capability = Literal["mutation", "neighbours", "categorical"]
CAPABILITIES: dict[str, tuple[str, ...]] = {
    "mutation": ("mutate",),
    "neighbours": ("neighbours",),
    "categorical": ("choices", "encode", "decode"),
}


class SearchSpace(ABC):
    """A set of configurations. Only :meth:`sample` is required; the other methods give the
    capabilities of :data:`CAPABILITIES` that some searchers need."""

    name: str = "space"

    def supports(self, capability: str) -> bool:
        """Whether this space implements *capability* (one of :data:`CAPABILITIES`)."""
        return all(getattr(type(self), method) is not getattr(SearchSpace, method)
                   for method in CAPABILITIES[capability])

    @abstractmethod
    def sample(self, rng: random.Random) -> Config:
        """Return one configuration drawn uniformly at random."""

    def mutate(self, config: Config, rng: random.Random) -> Config:
        """Return a configuration one small step from *config* (needed by evolution)."""
        raise NotImplementedError(f"search space {self.name!r} does not support mutation")

    def neighbours(self, config: Config) -> Sequence[Config]:
        """Every configuration one step from *config* (needed by local search)."""
        raise NotImplementedError(f"search space {self.name!r} does not list neighbours")

    def choices(self) -> Sequence[Sequence[Any]]:
        """For categorical spaces: the options of each decision (needed by REINFORCE, BOHB)."""
        raise NotImplementedError(f"search space {self.name!r} is not categorical")

    def encode(self, config: Config) -> Sequence[int]:
        """For categorical spaces: the option index of each decision."""
        raise NotImplementedError(f"search space {self.name!r} is not categorical")

    def decode(self, encoding: Sequence[int]) -> Config:
        """The inverse of :meth:`encode`."""
        raise NotImplementedError(f"search space {self.name!r} is not categorical")


class Evaluator(ABC):
    """Turns a trial into a result: by table look-up, a surrogate, or real training."""

    @abstractmethod
    def evaluate(self, trial: Trial) -> TrialResult:
        """Evaluate *trial*; ``cost_s`` is the (simulated) time it took."""

    def max_fidelity(self) -> float | None:
        """The full fidelity (e.g. 200 epochs), or None if the evaluator has one fidelity only."""
        return None

    def min_fidelity(self) -> float | None:
        """The lowest fidelity worth asking for (e.g. 1 epoch), or None to let the searcher
        choose (BOHB: ``max_fidelity / eta``)."""
        return None


class Searcher(ABC):
    """Proposes configurations (:meth:`ask`) and learns from results (:meth:`tell`).

    Subclasses take ``(space, seed, **options)`` and must be reproducible for a given seed. The
    lifecycle methods :meth:`setup` and :meth:`close` do nothing by default. :meth:`ask` may be
    called again before earlier trials are told (several trials in flight), and results may be
    told in any order. ``requires`` names
    what the searcher needs of its space (:data:`CAPABILITIES`); :func:`check_requirements` checks
    it before the searcher is made.
    """

    name: str = "searcher"
    requires: tuple[Capability, ...] = ()
    #: Named option sets, e.g. ``{"nb201": {"learning_rate": 0.001}}``: the settings a paper ran
    #: with. A preset the searcher does not name means its defaults.
    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {}

    def __init__(self, space: SearchSpace, seed: int = 0, **options: Any) -> None:
        if options:
            raise TypeError(f"searcher {self.name!r} takes no options, got {sorted(options)}")
        self.space = space
        self.seed = seed
        self.rng = random.Random(seed)
        self._trials = 0

    def setup(self, evaluator: Evaluator) -> None:
        """Called once before the first :meth:`ask`, with the evaluator it will be judged by."""

    @abstractmethod
    def ask(self) -> Trial:
        """Return the next trial to evaluate."""

    @abstractmethod
    def tell(self, result: TrialResult) -> None:
        """Learn from the result of a trial this searcher asked for."""

    def close(self) -> None:
        """Called once when the search ends."""

    def new_trial(self, config: Config, fidelity: float | None = None) -> Trial:
        """Number and wrap *config*; subclasses call this from :meth:`ask`."""
        trial = Trial(self._trials, config, fidelity)
        self._trials += 1
        return trial


def check_requirements(searcher: type[Searcher], space: SearchSpace, searcher_name: str,
                       space_name: str) -> None:
    """ConfigError, naming both, when *space* lacks a capability *searcher* requires."""
    missing = [c for c in searcher.requires if not space.supports(c)]
    if missing:
        needs = ", ".join(f"{c} ({'/'.join(CAPABILITIES[c])})" for c in missing)
        offered = [c for c in CAPABILITIES if space.supports(c)]
        raise ConfigError(
            f"searcher {searcher_name!r} needs a search space with {needs}, which space "
            f"{space_name!r} ({type(space).__module__}.{type(space).__name__}) does not "
            f"provide (it offers: {', '.join(offered) or 'sampling only'}); choose another "
            f"searcher (random works on any space) or add the methods to the space")


class NASAlgorithm(ABC):
    """A NAS method that is not ask/tell (e.g. weight-sharing DARTS or GDAS): it runs itself."""

    name: str = "nas"

    @abstractmethod
    def run(self, space: SearchSpace, seed: int, log: Callable[[str], None]) -> Config:
        """Search and return the chosen configuration; progress goes through *log*."""


@dataclass(frozen=True)
class SearchBudget:
    """Stop after ``max_evaluations`` trials or ``max_time_s`` (simulated) seconds, whichever first."""

    max_evaluations: int | None = None
    max_time_s: float | None = None

    def __post_init__(self) -> None:
        if self.max_evaluations is None and self.max_time_s is None:
            raise ValueError("a search budget needs max_evaluations or max_time_s")

    def allows_another(self, submitted: int) -> bool:
        """Whether a trial may be submitted after *submitted* (results count, so no more trials
        than ``max_evaluations`` are started)."""
        return self.max_evaluations is None or submitted < self.max_evaluations

    def too_late(self, finish_s: float) -> bool:
        """Whether a trial finishing at *finish_s* ends past ``max_time_s`` (it is not counted)."""
        return self.max_time_s is not None and finish_s > self.max_time_s


@dataclass(frozen=True)
class SearchOutcome:
    """The best result of a search and its anytime trace ``(time_s, best_value)`` per trial, in
    completion order."""

    best: TrialResult
    evaluations: int
    time_s: float
    trace: tuple[tuple[float, float], ...]


class Executor(ABC):
    """Where trials run while the search loop waits: :meth:`submit` starts one, :meth:`next_result`
    blocks until the next one finishes (in completion order) and says when, on the search's clock.

    :class:`SimulatedClock` is the executor of tabular searches; an executor that trains trials
    live (processes, machines) implements the same two methods and drives the same loop.
    """

    @abstractmethod
    def submit(self, trial: Trial) -> None:
        """Start evaluating *trial*."""

    @abstractmethod
    def next_result(self) -> tuple[float, TrialResult]:
        """``(finish_time_s, result)`` of the next trial to finish; only while :attr:`in_flight`."""

    @property
    @abstractmethod
    def in_flight(self) -> int:
        """How many submitted trials have not been returned by :meth:`next_result` yet."""


class SimulatedClock(Executor):
    """An event queue on a simulated clock: a trial submitted at time ``t`` finishes at
    ``t + cost_s``. The evaluator is called at submission (a table knows the cost at once);
    events are a heap keyed ``(finish time, submission number)``, so ties finish first-in
    first-out and a search is reproducible for a seed."""

    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator
        self.now_s = 0.0
        self._events: list[tuple[float, int, TrialResult]] = []
        self._submitted = 0

    def submit(self, trial: Trial) -> None:
        """Evaluate *trial* now; queue its completion at ``now + cost_s``."""
        result = self.evaluator.evaluate(trial)
        heapq.heappush(self._events, (self.now_s + result.cost_s, self._submitted, result))
        self._submitted += 1

    def next_result(self) -> tuple[float, TrialResult]:
        """Advance the clock to the earliest completion and return it."""
        self.now_s, _, result = heapq.heappop(self._events)
        return self.now_s, result

    @property
    def in_flight(self) -> int:
        """Trials queued and not yet finished."""
        return len(self._events)


#: Called with ``(finish_time_s, result)`` for every counted trial, in completion order.
ResultHook = Callable[[float, TrialResult], None]


def run_search(
    searcher: Searcher,
    evaluator: Evaluator,
    budget: SearchBudget,
    log: Callable[[str], None] | None = None,
    *,
    concurrency: int = 1,
    executor: Executor | None = None,
    on_result: ResultHook | None = None,
) -> SearchOutcome:
    """Run the ask/tell loop until *budget* is spent; log one progress line per trial.

    *concurrency* trials are kept in flight on *executor* (default: a :class:`SimulatedClock`
    over *evaluator*); the searcher is told results in the order they finish, and asked for a new
    trial as each slot frees. ``concurrency=1`` is the serial loop (ask, evaluate, tell). A trial
    that would end past ``max_time_s`` is not counted (its result arrives too late), as in the
    NAS-Bench-201 paper's time-budgeted protocol; the search stops there.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency={concurrency!r}: keep at least 1 trial in flight")
    executor = executor if executor is not None else SimulatedClock(evaluator)
    searcher.setup(evaluator)
    best: TrialResult | None = None
    trace: list[tuple[float, float]] = []
    submitted = 0
    try:
        while True:
            while executor.in_flight < concurrency and budget.allows_another(submitted):
                executor.submit(searcher.ask())
                submitted += 1
            if not executor.in_flight:
                break
            finish_s, result = executor.next_result()
            if budget.too_late(finish_s):
                break
            searcher.tell(result)
            if best is None or result.value > best.value:
                best = result
            trace.append((finish_s, best.value))
            if on_result is not None:
                on_result(finish_s, result)
            if log is not None:
                log(f"search: evaluations={len(trace)} time={finish_s:.1f} "
                    f"value={result.value:.6g} best={best.value:.6g}")
    finally:
        searcher.close()
    if best is None:
        raise ValueError("the budget ended before the first evaluation finished")
    return SearchOutcome(best, len(trace), trace[-1][0], tuple(trace))
