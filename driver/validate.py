"""``bench-driver check``: every task and experiment validated, nothing run, every error reported.

A task is checked as ``run`` would (its table, patterns, compute methods, placeholders), then
the modules its script imports (:mod:`driver.extras`: a missing one is an error naming the pip
line); an experiment as ``experiment NAME`` would (its table and every variant's task). The exit
code is 0 when all is well and 3 (a configuration error) when anything is wrong, as before; the
difference is that every error is printed, not only the first.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from driver.errors import ConfigError, ExitCode

if TYPE_CHECKING:
    from driver.config import TaskConfig
    from driver.plugins import Plugins


def main_check(args: Any, config: TaskConfig, plugins: Plugins) -> int:
    """Check every task (or ``--task-name``) and experiment; print every error, exit 3 if any."""
    names = args.task_name or list(config.tasks)
    experiments = [] if args.task_name else list(config.experiments)
    errors = [str(e) for name in names for e in task_errors(config, name, plugins)]
    errors += [str(e) for name in experiments for e in _experiment_errors(config, name, plugins)]
    for error in errors:
        print(f"bench-driver: error: {error}", file=sys.stderr)
    if errors:
        print(f"bench-driver: {args.config}: {len(errors)} error(s) in {len(names)} task(s) and "
              f"{len(experiments)} experiment(s)", file=sys.stderr)
        return ExitCode.CONFIG
    print(f"{args.config}: {len(names)} task(s) and {len(experiments)} experiment(s) OK")
    return ExitCode.OK


def task_errors(config: TaskConfig, name: str, plugins: Plugins) -> list[ConfigError]:
    """What is wrong with task *name*: its table, else the modules its script cannot import."""
    from driver.extras import install_line, missing_modules, task_script

    try:
        task = config.task(name, plugins.registry("compute_methods"))
    except ConfigError as exc:
        return [exc]
    script = task_script(task.command, task.cwd)
    return [ConfigError(f"{config.path}: [tasks.{name}] runs {script}, which imports {module!r}"
                        f": not installed in {sys.executable}; {install_line(module)}")
            for module in (missing_modules(script, task.cwd) if script else [])]


def _experiment_errors(config: TaskConfig, name: str, plugins: Plugins) -> list[ConfigError]:
    from driver.experiments.matrix import build_variants, load_experiment, select_points

    methods = plugins.registry("compute_methods")
    try:
        spec = load_experiment(config, name, methods)
        build_variants(config, spec, methods, {}, select_points(spec))
    except ConfigError as exc:
        return [exc]
    return []
