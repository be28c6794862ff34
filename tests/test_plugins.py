"""The plugin mechanism: discovery, naming, errors, listing, and every hook's documented example."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO, install_plugin_distribution
from driver import hookspecs
from driver.errors import PluginError
from driver.plugins import CALL_HOOKS, REGISTRIES, load_plugins
from driver.search import Trial

DOCS = (REPO / "docs" / "plugins.md").read_text()
HOOKS = sorted(name for name in vars(hookspecs) if name.startswith("bench_driver_"))


def signature(name: str) -> str:
    """``def hook(arg: Type, ...) -> Return:`` exactly as driver/hookspecs.py declares it."""
    fn = getattr(hookspecs, name)
    params = ", ".join(f"{p.name}: {p.annotation}"
                       for p in inspect.signature(fn).parameters.values())
    return f"def {name}({params}) -> {fn.__annotations__['return']}:"


def doc_example(hook: str) -> str:
    """The runnable example of *hook*: the python block after its signature in docs/plugins.md."""
    after = DOCS[DOCS.index(signature(hook)):]
    blocks = re.findall(r"```python\n(.*?)```", after, re.S)
    return blocks[0]  # the search starts inside the signature block


def write_plugin(folder: Path, name: str, code: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(code))
    return path


def test_every_hook_is_a_registry_or_a_call_hook_and_documented_with_its_exact_signature():
    assert sorted([*REGISTRIES.values(), *CALL_HOOKS]) == HOOKS
    for hook in HOOKS:
        assert signature(hook) in DOCS, f"{hook} is not documented in docs/plugins.md"
        assert getattr(hookspecs, hook).__doc__


@pytest.mark.parametrize("hook", sorted(REGISTRIES.values()))
def test_hook_documented_example_registers_and_works(hook, tmp_path):
    write_plugin(tmp_path, "example", doc_example(hook))
    plugins = load_plugins(plugin_dirs=[tmp_path], autoload=False)
    kind = next(k for k, h in REGISTRIES.items() if h == hook)
    added = plugins.contributions("example")[kind]
    assert len(added) == 1
    obj = plugins.registry(kind)[added[0]]
    _exercise(kind, obj, plugins)


def _exercise(kind: str, obj, plugins) -> None:
    """Use what the example registered the way the driver would."""
    from driver.reduce import ReduceContext
    from driver.sampling import RunExit, SamplingSettings

    if kind == "compute_methods":
        assert obj([1.0, 4.0], ReduceContext()) == pytest.approx(2.0)
    elif kind == "samplers":
        sampler = obj(SamplingSettings())
        assert sampler.sample([1, 2, 3]) == {"process_count": 3}
        assert sampler.summary(RunExit()).metrics == {"max_processes": 3}
    elif kind == "reporters":
        assert callable(obj.report)
    elif kind == "searchers":
        space = plugins.registry("search_spaces")["toy"]()
        trial = obj(space, seed=1).ask()
        assert isinstance(trial, Trial) and len(trial.config) == 3
    elif kind == "search_spaces":
        import random

        assert len(obj().sample(random.Random(0))) == 8
    elif kind == "evaluators":
        assert obj().evaluate(Trial(0, (1, 1, 0))).value == 2.0
    elif kind == "nas_algorithms":
        space = plugins.registry("search_spaces")["toy"]()
        lines: list[str] = []
        assert len(obj().run(space, 0, lines.append)) == 3 and lines
    elif kind == "commands":
        import argparse
        import contextlib
        import io

        parser = argparse.ArgumentParser()
        obj.add_arguments(parser)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert obj.run(parser.parse_args(["--name", "you"]), plugins) == 0
        assert out.getvalue() == "hello you\n"
    elif kind == "config_tables":
        assert isinstance(obj, str) and obj


def test_option_and_configure_examples_work_together(tmp_path):
    import argparse

    from driver.errors import ConfigError

    write_plugin(tmp_path, "example", doc_example("bench_driver_addoption") +
                 doc_example("bench_driver_configure"))
    plugins = load_plugins(plugin_dirs=[tmp_path], autoload=False)
    parser = argparse.ArgumentParser()
    plugins.call_hook("bench_driver_addoption", command="run", parser=parser)
    options = parser.parse_args(["--note", "first try"])
    plugins.call_hook("bench_driver_configure", options=options, config=None)
    with pytest.raises(ConfigError, match="--note: expected some text"):
        plugins.call_hook("bench_driver_configure", options=parser.parse_args(["--note", " "]),
                          config=None)


def test_misspelt_hook_is_caught_naming_plugin_and_file(tmp_path):
    path = write_plugin(tmp_path, "typo", "def bench_driver_register_compute_method():\n    return {}\n")
    with pytest.raises(PluginError) as info:
        load_plugins(plugin_dirs=[tmp_path], autoload=False)
    message = str(info.value)
    assert "'typo'" in message and str(path) in message
    assert "did you mean 'bench_driver_register_compute_methods'" in message


def test_a_marked_hook_under_another_name_is_registered(tmp_path):
    # pluggy's specname: the name check that keeps start-up cheap must not skip it
    write_plugin(tmp_path, "renamed", "from driver.hookspecs import hookimpl\n"
                 "@hookimpl(specname='bench_driver_register_compute_methods')\n"
                 "def my_methods():\n    return {'seven': lambda v, c: 7.0}\n"
                 "def helper():\n    return 1\n")
    methods = load_plugins(plugin_dirs=[tmp_path], autoload=False).registry("compute_methods")
    assert methods["seven"]([], None) == 7.0


def test_two_plugins_claiming_one_name_is_an_error_naming_both(tmp_path):
    write_plugin(tmp_path, "mine", "def bench_driver_register_compute_methods():\n"
                                   "    return {'average': lambda v, c: 0.0}\n")
    with pytest.raises(PluginError, match=r"'average' is registered by two plugins: "
                       r"'compute_methods' \(.*compute_methods.py\) and 'mine' \(.*mine.py\)"):
        load_plugins(plugin_dirs=[tmp_path], autoload=False).registry("compute_methods")


def test_plugin_that_fails_to_import_names_file_and_exception(tmp_path):
    path = write_plugin(tmp_path, "broken", "import no_such_module_xyz\n")
    with pytest.raises(PluginError, match=re.escape(str(path)) + ".*ModuleNotFoundError"):
        load_plugins(plugin_dirs=[tmp_path], autoload=False)


def test_same_file_name_in_two_folders_does_not_clash(tmp_path):
    code = "def bench_driver_register_compute_methods():\n    return {%r: lambda v, c: %d}\n"
    write_plugin(tmp_path / "a", "random", code % ("from_a", 1))
    write_plugin(tmp_path / "b", "random", code % ("from_b", 2))
    plugins = load_plugins(plugin_dirs=[tmp_path / "a", tmp_path / "b"], autoload=False)
    methods = plugins.registry("compute_methods")
    assert methods["from_a"]([], None) == 1 and methods["from_b"]([], None) == 2


def test_disable_by_name(tmp_path):
    plugins = load_plugins(blocked=["console_report"], autoload=False)
    assert "console" not in plugins.registry("reporters")
    assert "json" in plugins.registry("reporters")


def test_plugin_dirs_from_environment(tmp_path, monkeypatch):
    write_plugin(tmp_path, "envplug", "def bench_driver_register_compute_methods():\n"
                                      "    return {'envsum': lambda v, c: sum(v)}\n")
    monkeypatch.setenv("BENCH_DRIVER_PLUGINS_DIRS", str(tmp_path))
    assert "envsum" in load_plugins(autoload=False).registry("compute_methods")


DROPIN = """
def bench_driver_register_compute_methods():
    return {"spread": lambda values, context: max(values) - min(values)}
"""


def test_dropin_compute_method_used_end_to_end_through_the_cli(tmp_path, write_config, cli):
    write_plugin(tmp_path / "plugins", "spread", DROPIN)
    write_config("""
        [tasks.t]
        command_to_execute = "printf 'v=3\\nv=10\\nv=4\\n'"
        patterns = ['v=(\\S+)']
        metrics = ['v']
        compute_method = ['spread']
    """)
    run = cli("--task-name", "t")
    assert run.returncode == 0, run.stderr
    assert run.result["t.v"] == 7.0
    listing = cli("plugins").stdout
    assert "spread  [drop-in]" in listing and "compute_methods: spread" in listing


def test_unknown_method_without_the_plugin_is_a_config_error(write_config, cli):
    write_config("""
        [tasks.t]
        command_to_execute = "true"
        patterns = ['v=(\\S+)']
        metrics = ['v']
        compute_method = ['spread']
    """)
    run = cli("--task-name", "t")
    assert run.returncode == 3 and "unknown compute_method 'spread'" in run.stderr


def test_entry_point_distribution_is_listed_and_used(tmp_path, write_config):
    """Install a tiny distribution with pip into a temp dir; the driver finds its entry point."""
    site = install_plugin_distribution(tmp_path, "bd-tiny-plugin", "1.2.3", "bd_tiny_plugin",
                                       "tiny", DROPIN.replace("spread", "tiny_spread"))
    write_config("""
        [tasks.t]
        command_to_execute = "printf 'v=3\\nv=10\\n'"
        patterns = ['v=(\\S+)']
        metrics = ['v']
        compute_method = ['tiny_spread']
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    env.pop("BENCH_DRIVER_DISABLE_PLUGIN_AUTOLOAD")
    run = lambda *a: subprocess.run([sys.executable, "-m", "driver", *a], cwd=tmp_path, env=env,
                                    capture_output=True, text=True)
    listing = run("plugins", "--trace-hooks")
    assert "tiny  [entry point bd-tiny-plugin 1.2.3]" in listing.stdout, listing.stderr
    assert "compute_methods: tiny_spread" in listing.stdout
    assert "[hook] bench_driver_register_compute_methods -> tiny" in listing.stderr
    result = run("--task-name", "t")
    assert result.returncode == 0, result.stderr
    assert run("--task-name", "t", "-p", "no:tiny").returncode == 3  # blocked: method unknown


def test_builtins_listed_with_what_they_register(write_config, cli):
    write_config("[tasks.t]\ncommand_to_execute = 'true'\n")
    out = cli("plugins").stdout
    assert "compute_methods  [built-in]" in out
    assert "samplers: cpu_memory" in out and "reporters: json" in out
    assert "searchers: random" in out
