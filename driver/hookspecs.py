"""Every hook bench-driver calls, in one place.

Plugins implement these functions (decorated with :data:`hookimpl`, or simply named with the
``bench_driver_`` prefix). Two kinds of hook:

* *registry hooks* (``bench_driver_register_*``): called once, when that registry is first needed,
  on every plugin that implements it; each returns a mapping ``{name: object}`` that adds named
  extensions. Two plugins that return the same name are an error that names both.
* *call hooks* (:func:`bench_driver_addoption`, :func:`bench_driver_configure`): called at a fixed
  moment with arguments, on every plugin that implements them; they return nothing.

None is ``firstresult``. Every call into plugin code (these hooks, and the methods of what they
register) goes through one guard (:meth:`driver.plugins.Plugins.guard`): an exception or a value of
the wrong kind becomes a :class:`driver.errors.PluginError` naming the plugin, its file, the hook
and the registered name. A function named ``bench_driver_*`` that matches no hook here is reported
as a misspelt hook, naming the plugin and its file, before any task starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Mapping

import pluggy

if TYPE_CHECKING:
    import argparse

    from driver.backends import Backend
    from driver.commands import Command
    from driver.config import TaskConfig
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
    ``Sequence[float]`` in log order) to one finite number; ``context`` is a
    :class:`driver.reduce.ReduceContext` (``context.workers`` is the task's worker count).
    Called when a task config is validated, before anything runs. A method that raises or returns
    anything but a finite number makes that metric missing (the reason is recorded) and the run
    exit 7; every other metric is still written.
    """
    raise NotImplementedError  # a specification: plugins implement it


@hookspec
def bench_driver_register_samplers() -> Mapping[str, Callable[[SamplingSettings], Sampler | None]]:
    """Contribute resource samplers: ``{name: factory}``.

    ``factory(settings)`` is called once per run, before the command starts, with the run's
    :class:`driver.sampling.SamplingSettings` (``settings.options`` holds the command line); it
    returns a :class:`driver.sampling.Sampler`, or ``None`` when the sampler does not apply to this
    run (for example GPU sampling with no GPUs). It may raise :class:`driver.errors.ConfigError`
    to refuse the run before it starts.
    """
    raise NotImplementedError  # a specification: plugins implement it


@hookspec
def bench_driver_register_reporters() -> Mapping[str, Reporter]:
    """Contribute reporters: ``{name: reporter}`` (see :class:`driver.report.Reporter`).

    ``begin(settings)`` is called once after validation, before the first command starts;
    ``report(record, settings)`` after each run (also a failed or interrupted one) with the
    finished :class:`driver.results.RunRecord`; ``report_set(summary, settings)`` after a set of
    repeated runs; ``report_experiment(experiment, summaries, settings)`` after an experiment;
    ``report_comparison(comparison, settings)`` after ``compare``. Every method but ``report`` is
    optional (a no-op by default). ``settings`` is a :class:`driver.report.ReportSettings`.
    """
    raise NotImplementedError  # a specification: plugins implement it


@hookspec
def bench_driver_register_searchers() -> Mapping[str, type[Searcher]]:
    """Contribute black-box searchers: ``{name: Searcher subclass}`` (ask/tell, see driver.search).

    A searcher declares what it needs of a search space in ``requires`` (``"mutation"``,
    ``"neighbours"``, ``"categorical"``); that is checked before the first ``ask``. Called when a
    search task looks up a searcher by name, and by ``bench-driver plugins``.
    """
    raise NotImplementedError  # a specification: plugins implement it


@hookspec
def bench_driver_register_search_spaces() -> Mapping[str, Callable[[], SearchSpace]]:
    """Contribute search spaces: ``{name: factory}``; ``factory()`` returns a SearchSpace.

    Called when a search task looks up a space by name, and by ``bench-driver plugins``.
    """
    raise NotImplementedError  # a specification: plugins implement it


@hookspec
def bench_driver_register_evaluators() -> Mapping[str, Callable[..., Evaluator]]:
    """Contribute evaluators: ``{name: factory}``; ``factory(space, **options)`` returns an Evaluator.

    Called when a search task looks up an evaluator by name, and by ``bench-driver plugins``.
    """
    raise NotImplementedError  # a specification: plugins implement it


@hookspec
def bench_driver_register_nas_algorithms() -> Mapping[str, type[NASAlgorithm]]:
    """Contribute NAS algorithms (weight-sharing or other non ask/tell methods): ``{name: class}``.

    Called by ``bench-driver plugins``, and by the weight-sharing NAS task script when it looks an
    algorithm up by name (its ``--set algorithm=NAME``; the weight-sharing issue adds that task).
    """
    raise NotImplementedError  # a specification: plugins implement it


@hookspec
def bench_driver_register_commands() -> Mapping[str, Command]:
    """Contribute subcommands: ``{name: command}`` (as datasette's ``register_commands``).

    A :class:`driver.commands.Command` has ``help``, ``add_arguments(parser)`` and
    ``run(args, plugins) -> exit code``. Called once while the command line is built, so that
    ``bench-driver NAME --help`` works; a name that is a built-in command is an error.
    """
    raise NotImplementedError  # a specification: plugins implement it


@hookspec
def bench_driver_register_backends() -> Mapping[str, Callable[[argparse.Namespace, int], Backend]]:
    """Contribute execution backends: ``{name: factory}`` (``--backend NAME``, docs/backends.md).

    ``factory(options, jobs)`` is called once per invocation that runs repetitions or an
    experiment through a backend (``--jobs N`` or ``--backend NAME``), after the command line is
    parsed, with the parsed options (the backend's own, added by
    :func:`bench_driver_addoption`) and ``--jobs`` (0 when not given to a backend other than
    ``local``: every run at once, the cluster queues them); it returns a :class:`driver.backends.Backend`,
    whose ``check()`` is called before anything starts (raise ConfigError to refuse: exit 3).
    """
    raise NotImplementedError  # a specification: plugins implement it


@hookspec
def bench_driver_register_config_tables() -> Mapping[str, str]:
    """Claim top-level tables of task_config.toml: ``{key: one-line description}``.

    The config refuses unknown top-level keys; the keys claimed here are accepted and kept, raw,
    in ``TaskConfig.tables`` for the plugin to check in :func:`bench_driver_configure`. Called
    when the config is read.
    """
    raise NotImplementedError  # a specification: plugins implement it


@hookspec
def bench_driver_addoption(command: str, parser: argparse.ArgumentParser) -> None:
    """Add command-line options to one command (as ``pytest_addoption``).

    Called once per built-in command (``"run"``, ``"check"``, ``"list"``, ``"plugins"``,
    ``"compare"``, ``"convert-cfg"``) while the command line is built, with that command's parser:
    a plugin adds options only to the commands it cares about (``if command == "run": ...``).
    The parsed values reach plugins as ``settings.options`` (samplers, reporters) and in
    :func:`bench_driver_configure`. Two plugins adding one option is an error naming the plugin.
    """
    raise NotImplementedError  # a specification: plugins implement it


@hookspec
def bench_driver_configure(options: argparse.Namespace, config: TaskConfig | None) -> None:
    """Check this plugin's options and its own config tables before anything starts (as
    ``pytest_configure``).

    Called once per command, after the command line is parsed and task_config.toml read
    (``config`` is None for commands that read no config, such as ``compare``). Raise
    :class:`driver.errors.ConfigError` (exit 3) with the file, key, value and the fix to refuse.
    """
    raise NotImplementedError  # a specification: plugins implement it
