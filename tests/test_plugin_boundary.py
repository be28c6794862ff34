"""The plugin boundary through the real CLI: every plugin call guarded, one plugin set for the
driver and the task, reporters for runs, sets and experiments, searcher requirements (issue 10)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from conftest import REPO

TWO_METRICS = """
    [tasks.t]
    command_to_execute = "printf 'a=1\\\\na=3\\\\nb=5\\\\n'"
    patterns = ['^a=(\\S+)', '^b=(\\S+)']
    metrics = ['a', 'b']
    compute_method = ['{method}', 'last']
"""


def dropin(tmp_path: Path, name: str, code: str) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(code))
    return path


def records(tmp_path: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(tmp_path.glob("bench-runs/**/record.json"))]


def test_a_raising_compute_method_is_a_plugin_error_and_the_rest_is_written(
        tmp_path, write_config, cli):
    path = dropin(tmp_path, "boom", """
        def bench_driver_register_compute_methods():
            return {"boom": lambda values, context: 1 / 0}
    """)
    write_config(TWO_METRICS.format(method="boom"))
    run = cli("--task-name", "t")
    assert run.returncode == 7, run.stderr
    assert "Traceback" not in run.stderr
    assert run.result == {"t.b": 5.0, **{k: v for k, v in run.result.items() if "memory" in k}}
    record = run.record
    assert record["status"] == "missing_metrics"  # finalised, not "running": 'a' has no value
    error = record["metrics"]["a"]["error"]
    assert "compute method 'boom' from plugin 'boom'" in error and str(path) in error
    assert "bench_driver_register_compute_methods" in error and "ZeroDivisionError" in error
    assert record["plugin_errors"] == [error]


@pytest.mark.parametrize("value", ["float('nan')", "float('inf')", "'fast'", "None", "True"])
def test_a_compute_method_returning_a_wrong_value_loses_only_its_metric(
        value, tmp_path, write_config, cli):
    dropin(tmp_path, "odd", f"""
        def bench_driver_register_compute_methods():
            return {{"odd": lambda values, context: {value}}}
    """)
    write_config(TWO_METRICS.format(method="odd"))
    run = cli("--task-name", "t")
    if value == "float('inf')":  # an infinity is an overflow, not a plugin failure
        assert run.returncode == 5, run.stderr
        assert run.record["metrics"]["a"]["error"].startswith("overflow")
    else:
        assert run.returncode == 7, run.stderr
        assert "expected a finite number" in run.record["metrics"]["a"]["error"]
    assert run.result["t.b"] == 5.0 and "t.a" not in run.result


def test_a_raising_sampler_factory_names_the_plugin_and_the_run_goes_on(
        tmp_path, write_config, cli):
    path = dropin(tmp_path, "badsampler", """
        def bench_driver_register_samplers():
            def factory(settings):
                raise RuntimeError("no sensor here")
            return {"sensor": factory}
    """)
    write_config(TWO_METRICS.format(method="average"))
    run = cli("--task-name", "t")
    assert run.returncode == 7 and "Traceback" not in run.stderr
    assert run.result["t.a"] == 2.0 and run.result["t.b"] == 5.0
    [error] = run.record["plugin_errors"]
    assert "sampler 'sensor' from plugin 'badsampler'" in error and str(path) in error
    assert "RuntimeError: no sensor here" in error


def test_a_failing_reporter_keeps_the_other_reporters_and_the_record(tmp_path, write_config, cli):
    dropin(tmp_path, "badreport", """
        class Bad:
            def report(self, record, settings):
                raise OSError("printer on fire")
        def bench_driver_register_reporters():
            return {"bad": Bad()}
    """)
    write_config(TWO_METRICS.format(method="average"))
    run = cli("--task-name", "t")
    assert run.returncode == 7
    assert run.result["t.a"] == 2.0  # the JSON reporter still wrote
    assert "reporter 'bad' from plugin 'badreport'" in run.record["plugin_errors"][0]


SEARCH_TASK = """
    [tasks.search]
    command_to_execute = "{{python}} {script} --searcher {{searcher}} --space {{space}} --evaluator toy --max-evaluations 6 --seed {{seed}}"
    patterns = ['^final: best_value=(\\S+)', '^search: evaluations=(\\d+) ']
    metrics = ['best', 'evaluations']
    compute_method = ['last', 'count']
    [tasks.search.params]
    searcher = "first_choice"
    space = "toy"
"""


def test_the_task_sees_the_drop_in_searcher_the_driver_listed(tmp_path, write_config, cli):
    dropin(tmp_path, "first", """
        from driver.search import Searcher

        class FirstChoice(Searcher):
            name = "first_choice"
            def ask(self):
                return self.new_trial(self.space.sample(self.rng))
            def tell(self, result):
                pass

        def bench_driver_register_searchers():
            return {"first_choice": FirstChoice}
    """)
    write_config(SEARCH_TASK.format(script=REPO / "tasks" / "nas_search.py"))
    assert "searchers: first_choice" in cli("plugins").stdout
    run = cli("--task-name", "search", "--trace-hooks")
    assert run.returncode == 0, run.stderr + (tmp_path / "bench-runs").as_posix()
    assert run.result["search.evaluations"] == 6.0
    log = next(tmp_path.glob("bench-runs/search/*/output.log")).read_text()
    assert "[hook]" not in log  # tracing does not change the task's environment
    blocked = cli("--task-name", "search", "-p", "no:first")
    assert blocked.returncode == 4  # blocked for the driver, so blocked for the task too
    log = sorted(tmp_path.glob("bench-runs/search/*/output.log"))[-1].read_text()
    assert "no searcher 'first_choice'" in log


def test_a_searcher_is_refused_a_space_without_what_it_needs_before_any_evaluation(
        tmp_path, write_config, cli):
    dropin(tmp_path, "bits", """
        from driver.search import SearchSpace

        class Bits(SearchSpace):
            name = "bits"
            def sample(self, rng):
                return tuple(rng.randrange(2) for _ in range(3))

        def bench_driver_register_search_spaces():
            return {"bits": Bits}
    """)
    write_config(SEARCH_TASK.format(script=REPO / "tasks" / "nas_search.py"))
    run = cli("--task-name", "search", "--set", "searcher=rea", "--set", "space=bits")
    assert run.returncode == 4
    log = next(tmp_path.glob("bench-runs/search/*/output.log")).read_text()
    assert "searcher 'rea' needs a search space with mutation (mutate)" in log
    assert "space 'bits'" in log and "Traceback" not in log
    assert "search: evaluations" not in log  # refused before the first evaluation


REPEATED = """
    [tasks.t]
    command_to_execute = "echo v=1"
    patterns = ['^v=(\\S+)']
    metrics = ['v']
    compute_method = ['last']
    [tasks.t.params]
    tag = "a"
    [experiments.grid]
    task = "t"
    matrix = {{ tag = ["a", "b"] }}
"""


@pytest.mark.parametrize("how", [["--task-name", "t"], ["--task-name", "t", "--repetitions", "2"],
                                 ["experiment", "grid"]])
def test_blocking_the_json_reporter_means_no_flat_file_anywhere(how, tmp_path, write_config, cli):
    write_config(REPEATED.format())
    run = cli(*how, "-p", "no:json_report")
    assert run.returncode == 0, run.stderr
    assert not list(tmp_path.glob("**/*result.json")), list(tmp_path.glob("**/*result.json"))
    assert records(tmp_path)  # the runs themselves happened and were recorded


def test_unknown_plugin_name_in_p_no_is_refused_with_the_closest_name(write_config, cli):
    write_config(REPEATED.format())
    run = cli("--task-name", "t", "-p", "no:json_reprot")
    assert run.returncode == 3
    assert "-p no:json_reprot: no plugin is named 'json_reprot' (did you mean 'json_report'?)" \
        in run.stderr


def test_plugins_own_their_options(write_config, cli):
    write_config(REPEATED.format())
    assert "--plot" in cli("run", "--help").stdout
    assert cli("--task-name", "t", "-p", "no:timeline_plot", "--plot", "never").returncode == 2
    assert cli("plot", "--help").returncode == 0
    assert cli("-p", "no:timeline_plot", "plot", "x").returncode == 2  # the command went too
