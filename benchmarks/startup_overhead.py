"""Start-up overhead: the whole driver running a trivial task, against ``python3 -c pass``.

    python benchmarks/startup_overhead.py [--repeat 20]

Timed, as wall time of the whole process, medians of ``--repeat`` interleaved runs:

* the driver: ``bench-driver --config ... --task-name trivial --quiet ...`` whose task runs
  ``true`` (config, plugins, the run directory, the run, the record and the result file);
* the reference: ``python3 -c pass`` with the interpreter that runs the driver;
* both in two installs of this tree:
  - a regular one, as ``pip install .`` (or a wheel from an index) makes it: the tree built into
    a wheel and installed in a fresh venv under the temp dir, the dependencies this environment's.
    This is the headline ratio: what users run;
  - this environment as it is, usually the editable install of the README. Its ``python3 -c
    pass`` runs the editable install's finder at ``site`` time (the finder imports pathlib, re,
    urllib.parse...: ~50M instructions, ~half of that reference's time), which the driver needs
    anyway, so the ratio there reads about half the regular one;
* for context: ``bench-driver --version`` and ``python3 -S -c pass`` (no ``site``).

Both sides get a bytecode cache (``PYTHONPYCACHEPREFIX`` in a temp dir, warmed first), as an
installed driver has (the driver keeps its parsed task config there too: driver.tomlcache). Where
``PYTHONDONTWRITEBYTECODE`` is set and the sources have no cache (an editable install on these
machines), the driver is also timed as it then runs: compiling its modules on every start.
Prints ``RATIO startup_overhead`` = driver / ``python3 -c pass`` of the regular install (target at
most 3x, issue 13; the environment's own install when no wheel can be built, said so), where the
driver's time goes stage by stage (the trivial run in-process, with timers around the
pipeline's functions: imports, the parser, config and plugins, the record writes, the run with its
helper processes, the reporters; medians), and the top offenders of ``python -X importtime`` for
``import driver.cli`` and for the whole trivial run. With ``--instructions``, instruction counts
from valgrind (the same on a loaded machine): the run, its imports, and the stdlib and third-party
modules those imports pull in (the floor), in both installs.
Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import site
import subprocess
import sys
import tempfile
import venv
from pathlib import Path
from typing import Mapping

sys.path.append(str(Path(__file__).resolve().parents[1]))  # the driver, when not installed

from _common import (DRIVER_COMMAND_ENV, REPO, driver_command, driver_env,  # noqa: E402
                     machine_line, median, print_ratio, run_timed, spread, write_task_config)

TASK = "trivial"
TARGET = 3.0
REGULAR_PASS = "regular install: python3 -c pass (the reference)"
REGULAR_RUN = "regular install: bench-driver, task running `true`"
REGULAR_PLUGGY = "regular install: python3 -c 'import pluggy'"
REGULAR_FLOOR = "regular install: python3 -c 'import <the floor>'"
HERE_PASS = "this environment: python3 -c pass"
HERE_RUN = "this environment: bench-driver, task running `true`"

#: Runs the driver's trivial run in-process with timers around the pipeline's functions (those
#: that exist: the harness outlives renames) and prints ``{stage: ms}`` as JSON on stderr.
STAGES_HARNESS = r"""
import json, sys, time
t0 = time.perf_counter()
import driver.cli
stages = {"import driver.cli": time.perf_counter() - t0}
t = time.perf_counter()
import driver.benchmark
stages["import driver.benchmark (and the pipeline)"] = time.perf_counter() - t
import importlib
def wrap(label, module, name):
    try:
        owner = importlib.import_module(module)
        for part in name.split(".")[:-1]:
            owner = getattr(owner, part)
        inner = getattr(owner, name.split(".")[-1])
    except (ImportError, AttributeError):
        return
    def timed(*args, **kwargs):
        t = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            stages[label] = stages.get(label, 0.0) + time.perf_counter() - t
    setattr(owner, name.split(".")[-1], timed)
for label, module, name in json.loads(sys.argv[1]):
    wrap(label, module, name)
t = time.perf_counter()
code = driver.cli.main(sys.argv[2:])
stages["main (all of the run)"] = time.perf_counter() - t
print(json.dumps({k: v * 1000 for k, v in stages.items()}), file=sys.stderr)
"""
STAGES = [  # (label, module, function): nested ones are inside the ones above them
    ("  argparse: build_parser", "driver.cli", "build_parser"),
    ("  plugins: _load_plugins", "driver.cli", "_load_plugins"),
    ("  config: _load_config", "driver.cli", "_load_config"),
    ("  run_benchmark", "driver.benchmark", "run_benchmark"),
    ("    run_command (the run itself)", "driver.benchmark", "run_command"),
    ("      helper processes (the watchdog): spawn_helper", "driver.proctree", "spawn_helper"),
    ("      every Popen (the command and the helpers)", "subprocess", "Popen.__init__"),
    ("    record/result writes: write_json_atomic", "driver.results", "write_json_atomic"),
    ("    record/result writes: RunRecord.save", "driver.results", "RunRecord.save"),
    ("    environment metadata: results.environment", "driver.results", "environment"),
    ("    reporters: benchmark.report", "driver.benchmark", "report"),
    ("    reporters: benchmark.publish", "driver.benchmark", "publish"),
]


def cached_env(pycache: Path) -> dict[str, str]:
    """The environment with a warm, private bytecode cache."""
    env = driver_env({"PYTHONPYCACHEPREFIX": str(pycache)})
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def timed(argv: list[str], work: Path, env: Mapping[str, str]) -> tuple[float, float]:
    """(wall s, CPU s) of one run; exits if it fails (a failed run measures nothing)."""
    done = run_timed(argv, work, env)
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
    return done.wall_s, done.cpu_s


def importtime(argv: list[str], work: Path, env: Mapping[str, str]) -> list[tuple[int, int, str]]:
    """``-X importtime`` of *argv* (a python command line): (self us, cumulative us, module)."""
    done = run_timed(argv[:1] + ["-X", "importtime"] + argv[1:], work, env)
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, total, name = line[len("import time:"):].split("|", 2)
        rows.append((int(own), int(total), name.rstrip()[1:]))  # the name keeps its indent
    return rows


def print_importtime(title: str, rows: list[tuple[int, int, str]], top: int) -> None:
    top_level = sum(total for _, total, name in rows if not name.startswith(" "))
    print(f"{title}: {len(rows)} modules, {top_level / 1000:.1f} ms in top-level imports")
    print(f"  {'self ms':>8} {'cumul ms':>9}  module (by self time)")
    for own, total, name in sorted(rows, reverse=True)[:top]:
        print(f"  {own / 1000:8.1f} {total / 1000:9.1f}  {name.strip()}")
    project = [(total, name.strip()) for _, total, name in rows
               if name.strip().split(".")[0] in ("driver", "plugins")]
    if project:
        print("  the project's own modules, cumulative (children included):")
        for total, name in sorted(project, reverse=True)[:top]:
            print(f"  {'':8} {total / 1000:9.1f}  {name}")


def print_stages(argv: list[str], work: Path, env: Mapping[str, str], repeat: int) -> None:
    """Median ms of each stage of the trivial run, timed in-process (see STAGES_HARNESS)."""
    found: dict[str, list[float]] = {}
    for _ in range(repeat):
        done = run_timed([sys.executable, "-c", STAGES_HARNESS, json.dumps(STAGES)] + argv,
                         work, env)
        for label, ms in json.loads(done.stderr.strip().splitlines()[-1]).items():
            found.setdefault(label, []).append(ms)
    order = [label for label, _, _ in STAGES]
    print(f"where the trivial run's time goes, in-process, median of {repeat}, ms "
          f"(interpreter start-up and exit not included):")
    for label in sorted(found, key=lambda k: order.index(k) if k in order else -1):
        print(f"  {label:<52} {median(found[label]):8.1f}")


#: Imports the driver's start-up modules: its CLI, the one-run pipeline, the built-in plugins.
IMPORTS = ("import driver.cli, driver.benchmark, driver.plugins\n"
           "for name in driver.plugins.DEFAULT_PLUGINS:\n    __import__(name)\n")


def floor_imports(python: str, work: Path, env: Mapping[str, str]) -> str:
    """``import ...`` of the stdlib and third-party modules the driver's start-up imports pull
    in: what the driver cannot make cheaper."""
    listing = subprocess.run(
        [python, "-c", "import sys\nbefore = set(sys.modules)\n" + IMPORTS +
         "print(' '.join(sorted(set(sys.modules) - before)))"],
        cwd=work, env=env, capture_output=True, text=True, check=True).stdout.split()
    return "import " + ", ".join(n for n in listing if not n.startswith(("driver", "plugins", "_")))


def instructions(argv: list[str], work: Path, env: Mapping[str, str]) -> float | None:
    """Millions of instructions the main process of *argv* executes (valgrind's callgrind), with
    a fixed hash seed: the same count on a loaded machine. None without valgrind."""
    if shutil.which("valgrind") is None:
        return None
    done = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                           *argv], cwd=work, env={**env, "PYTHONHASHSEED": "0"},
                          capture_output=True, text=True)
    found = [line for line in done.stderr.splitlines() if "Collected :" in line]
    return int(found[-1].split()[-1]) / 1e6 if found else None


def print_instructions(install: str, python: str, run: list[str], work: Path,
                       env: Mapping[str, str]) -> None:
    """Instruction counts in one install (*python* its interpreter, *run* the trivial run): the
    whole run (its polling loops make this one vary a little), without the history write, its
    imports alone, and the stdlib and third-party part of those imports."""
    rows = {
        "python3 -c pass (reference)": [python, "-c", "pass"],
        "bench-driver, task running `true`": run,
        "the same with --no-history (prices the history write)": run + ["--no-history"],
        "the driver's imports (cli, pipeline, built-in plugins)": [python, "-c", IMPORTS],
        "of which the stdlib and pluggy they pull in (the floor)":
            [python, "-c", floor_imports(python, work, env)],
        "import pluggy alone (with its typing, inspect...)": [python, "-c", "import pluggy"],
    }
    found = {label: instructions(argv, work, env) for label, argv in rows.items()}
    counts = {label: count for label, count in found.items() if count is not None}
    if len(counts) < len(found):
        print("instructions: valgrind is not installed (apt-get install -y valgrind)")
        return
    reference = counts["python3 -c pass (reference)"] or 1.0
    print(f"instructions of the main process, {install} (callgrind, PYTHONHASHSEED=0; millions, "
          f"x python3 -c pass):")
    for label, count in counts.items():
        print(f"  {label:<56} {count:8.1f}M  {count / reference:5.2f}x")


def regular_install(work: Path) -> tuple[str, str] | str:
    """This tree as ``pip install .`` installs it: built into a wheel and installed in a fresh
    venv under *work*, which finds the dependencies in this environment's site-packages through
    a ``.pth`` line (so their own ``.pth`` files, the editable finder's among them, never run
    there). Returns (its python, its bench-driver), or why there is none."""
    source, wheels, target = work / "source", work / "wheel", work / "regular-venv"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True)
    if listed.returncode != 0:
        return f"the working tree's files could not be listed (git ls-files: {listed.stderr!r})"
    for name in filter(None, listed.stdout.decode().split("\0")):  # the tree as it is, built
        if (REPO / name).is_file():  # outside it: setuptools leaves build/ where it builds
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    build = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
             "--wheel-dir", str(wheels), str(source)]
    done = subprocess.run(build, capture_output=True, text=True, cwd=work)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return (f"no wheel could be built ({last}; the build needs setuptools>=68 here: "
                f"pip install 'bench-driver[test]')")
    venv.create(target, with_pip=False, symlinks=True)
    python = str(target / "bin" / "python")
    wheel = str(next(wheels.glob("*.whl")))
    done = subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet",
                           "--no-deps", "--no-index", wheel], capture_output=True, text=True)
    if done.returncode != 0:
        return f"the wheel did not install: {done.stderr.strip()[-300:]}"
    ours = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(ours, "zz-dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    where = subprocess.run([python, "-c", "import driver; print(driver.__file__)"],
                           capture_output=True, text=True, cwd=work).stdout.strip()
    if not where.startswith(str(target)):
        return f"the venv's driver is not its own install ({where or 'it does not import'})"
    return python, str(target / "bin" / "bench-driver")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="timed runs of each (default 20)")
    parser.add_argument("--top", type=int, default=12, help="importtime rows to show")
    parser.add_argument("--quick", action="store_true", help="smoke mode: 2 runs each")
    parser.add_argument("--instructions", action="store_true",
                        help="also count instructions with valgrind (load-insensitive; ~1 min)")
    args = parser.parse_args()
    if args.quick:
        args.repeat, args.top = 2, 3
    print(machine_line())
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as folder:
        work = Path(folder)
        config = work / "task_config.toml"
        write_task_config(config, TASK, "true", [])
        env = cached_env(work / "pycache")
        options = ["--config", str(config), "--task-name", TASK, "--quiet",
                   "--output", str(work / "result.json"), "--runs-dir", str(work / "runs")]
        run = driver_command() + options
        regular = regular_install(work) if not os.environ.get(DRIVER_COMMAND_ENV) else \
            f"${DRIVER_COMMAND_ENV} is set: timing that command only"
        if isinstance(regular, str):
            print(f"no regular install: {regular}")
        else:
            print(f"regular install: this tree's wheel in {Path(regular[0]).parents[1]}")
        commands = {}
        if not isinstance(regular, str):
            commands[REGULAR_PASS] = ([regular[0], "-c", "pass"], env)
            commands[REGULAR_RUN] = ([regular[1]] + options, env)
            commands[REGULAR_PLUGGY] = ([regular[0], "-c", "import pluggy"], env)
            commands[REGULAR_FLOOR] = ([regular[0], "-c", floor_imports(regular[0], work, env)],
                                       env)
        commands.update({
            HERE_PASS: ([sys.executable, "-c", "pass"], env),
            HERE_RUN: (run, env),
            "bench-driver --version": (driver_command() + ["--version"], env),
            "python3 -S -c pass (no site, for context)": ([sys.executable, "-S", "-c", "pass"],
                                                          env),
        })
        if os.environ.get("PYTHONDONTWRITEBYTECODE"):
            commands["bench-driver, `true`, PYTHONDONTWRITEBYTECODE as set"] = (run, driver_env())
        for argv, run_env in commands.values():  # warm-up: caches, page cache
            timed(argv, work, run_env)
        times: dict[str, list[float]] = {label: [] for label in commands}
        cpu: dict[str, list[float]] = {label: [] for label in commands}
        for _ in range(args.repeat):  # interleaved, so that load changes hit all alike
            for label, (argv, run_env) in commands.items():
                wall_s, cpu_s = timed(argv, work, run_env)
                times[label].append(wall_s)
                cpu[label].append(cpu_s)
        print(f"whole process, median of {args.repeat}, ms: wall (min..max), CPU user+sys "
              f"(children included)")
        for label, values in times.items():
            print(f"  {label:<60} {median(values) * 1000:8.1f}  "
                  f"({spread([v * 1000 for v in values], '{:.1f}')})  CPU "
                  f"{median(cpu[label]) * 1000:6.1f}")

        def ratios(pass_label: str, run_label: str) -> tuple[float, float]:
            wall = median(times[run_label]) / median(times[pass_label])
            return wall, median(cpu[run_label]) / max(median(cpu[pass_label]), 1e-3)

        here, here_cpu = ratios(HERE_PASS, HERE_RUN)
        editable = any(next(Path(p).glob("__editable__*bench_driver*"), None)
                       for p in site.getsitepackages())
        print(f"this environment's install: {here:.2f}x wall, {here_cpu:.2f}x CPU (children "
              f"included)" + ("; it is editable: its python3 -c pass runs the editable finder, "
                              "so this reads low" if editable else ""))
        ratio, cpu_ratio = (here, here_cpu) if isinstance(regular, str) else \
            ratios(REGULAR_PASS, REGULAR_RUN)
        install = "this environment's install" if isinstance(regular, str) else "regular install"
        if not isinstance(regular, str):
            pluggy, _ = ratios(REGULAR_PASS, REGULAR_PLUGGY)
            print(f"import pluggy alone, regular install: {pluggy:.2f}x wall")
            floor, floor_cpu = ratios(REGULAR_PASS, REGULAR_FLOOR)
            floor_modules = commands[REGULAR_FLOOR][0][-1].split(", ")
            print(f"the floor, regular install: {floor:.2f}x wall, {floor_cpu:.2f}x CPU: only "
                  f"importing the {len(floor_modules)} stdlib modules and pluggy that the "
                  f"driver's imports pull in; the driver takes "
                  f"{median(times[REGULAR_RUN]) / median(times[REGULAR_FLOOR]):.2f}x the floor")
        print(f"CPU-time ratio, {install} (less sensitive to other load on the machine): "
              f"{cpu_ratio:.2f}x")
        print_ratio(f"startup_overhead (driver / python3 -c pass, {install})", ratio,
                    f"<= {TARGET:g}x", ratio <= TARGET)
        print_stages(options, work, env, args.repeat)
        print_importtime("python -X importtime -c 'import driver.cli'",
                         importtime([sys.executable, "-c", "import driver.cli"], work, env),
                         args.top)
        print_importtime("python -X importtime bench-driver (the trivial run)",
                         importtime([sys.executable] + run if run[0].endswith("bench-driver")
                                    else run, work, env), args.top)
        if args.instructions:
            if not isinstance(regular, str):
                print_instructions("regular install", regular[0], [*regular, *options], work,
                                   env)
            print_instructions("this environment's install", sys.executable,
                               [sys.executable] + run if run[0].endswith("bench-driver")
                               else run, work, env)

if __name__ == "__main__":
    main()
