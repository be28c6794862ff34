"""Every hook bench-driver calls, in one place.

Plugins implement these functions (decorated with :data:`hookimpl`, or simply named with the
``bench_driver_`` prefix). Each ``bench_driver_register_*`` hook is a *registry hook*: it is called
once, when that registry is first needed, on every plugin that implements it; it returns a mapping
``{name: object}`` that adds named extensions. Two plugins that return the same name are an error
that names both. None of the registry hooks is ``firstresult``.

A function named ``bench_driver_*`` that matches no hook here is reported as a misspelt hook,
naming the plugin and its file, before any task starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Mapping

import pluggy

if TYPE_CHECKING:
    from driver.reduce import ComputeMethod
    from driver.report import Reporter
    from driver.sampling import Sampler, SamplingSettings
    from driver.search import Evaluator, NASAlgorithm, Searcher, SearchSpace

PROJECT = "bench_driver"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def bench_driver_register_compute_methods() -> Mapping[str, ComputeMethod]:
    """Contribute compute methods: ``{name: fn}``.

    ``fn(values, context) -> float`` reduces the finite values scraped for one metric (a non-empty
    ``Sequence[float]`` in log order) to one number; ``context`` is a
    :class:`driver.reduce.ReduceContext` (``context.workers`` is the task's worker count).
    Called when a task config is validated, before anything runs.
    """
    raise NotImplementedError  # a specification: plugins implement it


@hookspec
def bench_driver_register_samplers() -> Mapping[str, Callable[[SamplingSettings], Sampler | None]]:
    """Contribute resource samplers: ``{name: factory}``.

    ``factory(settings)`` is called once per run, before the command starts, with the run's
    :class:`driver.sampling.SamplingSettings`; it returns a :class:`driver.sampling.Sampler`, or
    ``None`` when the sampler does not apply to this run (for example GPU sampling with no GPUs).
    It may raise :class:`driver.errors.ConfigError` to refuse the run before it starts.
    """
    raise NotImplementedError  # a specification: plugins implement it


@hookspec
def bench_driver_register_reporters() -> Mapping[str, Reporter]:
    """Contribute reporters: ``{name: reporter}``.

    Every registered reporter's ``report(record, settings)`` is called once after each run (also a
    failed or interrupted one) with the finished :class:`driver.results.RunRecord` and the
    :class:`driver.report.ReportSettings` from the command line.
    """
    raise NotImplementedError  # a specification: plugins implement it


@hookspec
def bench_driver_register_searchers() -> Mapping[str, type[Searcher]]:
    """Contribute black-box searchers: ``{name: Searcher subclass}`` (ask/tell, see driver.search).

    Called when a search task looks up a searcher by name, and by ``bench-driver plugins``.
    """
    raise NotImplementedError  # a specification: plugins implement it


@hookspec
def bench_driver_register_search_spaces() -> Mapping[str, Callable[[], SearchSpace]]:
    """Contribute search spaces: ``{name: factory}``; ``factory()`` returns a SearchSpace."""
    raise NotImplementedError  # a specification: plugins implement it


@hookspec
def bench_driver_register_evaluators() -> Mapping[str, Callable[..., Evaluator]]:
    """Contribute evaluators: ``{name: factory}``; ``factory(space, **options)`` returns an Evaluator."""
    raise NotImplementedError  # a specification: plugins implement it


@hookspec
def bench_driver_register_nas_algorithms() -> Mapping[str, type[NASAlgorithm]]:
    """Contribute NAS algorithms (weight-sharing or other non ask/tell methods): ``{name: class}``."""
    raise NotImplementedError  # a specification: plugins implement it
