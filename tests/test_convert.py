"""``bench-driver convert-cfg``: old awslabs deeplearning-benchmark INI task configs -> TOML."""

from __future__ import annotations

import ast
import configparser
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

from driver.convert import convert_cfg, main_convert
from driver.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "data" / "old_task_config.cfg"
LIST_KEYS = ("patterns", "metrics", "compute_method")

# Lines as the fixture's benchmark scripts print them; every pattern of the fixture matches here.
SAMPLE_LOG = """\
INFO:root:Epoch[0] Batch [50]\tSpeed: 1268.81 samples/sec\taccuracy=0.250000
INFO:root:Epoch[0] Train-accuracy=0.751256
INFO:root:Epoch[0] Time cost=39.562
INFO:root:Epoch[0] Validation-accuracy=0.560998
INFO:root:Epoch[0] Train-perplexity=412.7
[Epoch 0] training: accuracy=0.751256
[Epoch 0] validation: accuracy=0.560998
[Epoch 0] time cost: 39.56
| epoch   1 | time cost 120.3
| end of epoch   1 | valid loss 5.12 | valid ppl 167
Time per epoch 612.5, train loss 3.21
{'exact_match': 67.89, 'f1': 77.12}
{'latency_resnet-18_Inference_Request_Average': 15.2, \
'latency_resnet-18_Inference_Request_aggregate_report_error': '0.5%'}
Epoch 3, Batch 40, Speed=5234.1
Epoch 3, Validation accuracy=0.8612
Epoch 3, Duration=12
100\timages/sec: 371.4 +/- 0.5 (jitter = 3.2)\t7.502
total time: 120.33
"""


def literal(value: str) -> object:
    """A value as the old driver read it: ``ast.literal_eval`` (its '\\d' warnings silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ast.literal_eval(value)


def old_values() -> dict[str, dict[str, object]]:
    """The fixture's values as read without interpolation, the three lists evaluated."""
    parser = configparser.RawConfigParser()
    parser.read(FIXTURE, encoding="utf-8")
    sections: dict[str, dict[str, object]] = {}
    for section in parser.sections():
        values: dict[str, object] = dict(parser.items(section))
        for key in LIST_KEYS:
            try:
                values[key] = literal(str(values[key]))
            except ValueError:
                pass  # kept as the string it was
        sections[section] = values
    return sections


@pytest.fixture(scope="module")
def converted() -> tuple[str, dict[str, dict[str, object]], list[str]]:
    """The fixture converted: TOML text, its ``tasks`` table, the warnings."""
    text, notes = convert_cfg(FIXTURE.read_text(encoding="utf-8"), "old_task_config.cfg")
    return text, tomllib.loads(text)["tasks"], notes


def test_every_section_key_and_value_survives(converted):
    _, tasks, _ = converted
    old = old_values()
    assert list(tasks) == list(old)
    for name, values in old.items():
        task = dict(tasks[name])
        params = task.pop("params", {})
        assert set(task) == set(values), name
        for key, value in values.items():
            got = task[key]
            if key == "command_to_execute":  # a template now: render it with its defaults
                got = str(got).format_map(params)
            if key == "num_gpus":
                value = int(str(value))
            assert got == value, (name, key)


def test_regexes_are_the_old_drivers_strings_written_readably(converted):
    text, tasks, _ = converted
    assert tasks["bidaf_1gpu_float32"]["patterns"][2] == "exact_match': (\\d+\\.\\d+)"
    assert tasks["mms_resnet_18_cpu"]["patterns"][1] == (
        "'latency_resnet-18_Inference_Request_aggregate_report_error': '(\\d+\\.\\d+|\\d+)\\%'")
    assert tasks["lstm_ptb_imperative"]["patterns"][2] == "valid ppl (\\d+\\.\\d+|\\d+)"
    # a TOML literal string: the regex reads as in the old file, no doubled backslashes
    assert "    'Speed: (\\d+\\.\\d+|\\d+) samples/sec',\n" in text
    assert "\\\\d" not in text.split("[tasks.bidaf_1gpu_float32]")[0]


def test_converted_regexes_match_the_same_log_lines(converted):
    _, tasks, _ = converted
    for name, values in old_values().items():
        for old, new in zip(values["patterns"], tasks[name]["patterns"]):  # type: ignore[call-overload]
            assert re.findall(old, SAMPLE_LOG), (name, old)
            assert re.findall(new, SAMPLE_LOG) == re.findall(old, SAMPLE_LOG), (name, new)


def test_sections_the_old_driver_crashed_on_are_kept_verbatim(converted):
    _, tasks, _ = converted
    old_driver = configparser.ConfigParser()  # the old driver's parser: it interpolates '%'
    old_driver.read(FIXTURE, encoding="utf-8")
    for section, key in [("mms_resnet_18_cpu", "patterns"),
                         ("dawnbench_cifar10_warmup", "command_to_execute")]:
        with pytest.raises(configparser.InterpolationError):
            old_driver.get(section, key)
    assert "--lr 0.1% " in str(tasks["dawnbench_cifar10_warmup"]["command_to_execute"])
    dotted = tasks["test_resnet50_imagenet-480px-256px-q95_p3.16x_fp16_docker"]
    assert dotted["command_to_execute"] == (
        "bash image_classification/scripts/test.sh --gpus %(num_gpus)s --date-format %%Y%%m%%d")


def test_warnings_name_section_key_and_value(converted):
    _, tasks, notes = converted
    src = "old_task_config.cfg: "
    unparsable = [n for n in notes if n.startswith(src + "[word_lm_unquoted_methods] compute_method")]
    assert len(unparsable) == 1 and "'[last, total]'" in unparsable[0]
    assert tasks["word_lm_unquoted_methods"]["compute_method"] == "[last, total]"
    assert any(n.startswith(src + "[test_resnet50_imagenet-480px-256px-q95_p3.16x_fp16_docker]"
                            " data_set = 'imagenet-480px-256px-q95': unknown key") for n in notes)
    assert any("[metrics_parameters_images_top_1] has no command_to_execute, num_gpus" in n
               for n in notes)
    assert any("--lr 0.1%" in n and "crashed" in n for n in notes)
    assert any("'%(name)s'" in n and "'%%'" in n for n in notes)
    clean = ("[resnet50_cifar10_hybrid]", "[lstm_ptb_imperative]", "[tensorflow_resnet50_p3_2xlg]")
    assert not [n for n in notes if n.startswith(tuple(src + c for c in clean))]


def test_epochs_becomes_a_named_parameter(converted):
    _, tasks, _ = converted
    hybrid = tasks["resnet50_cifar10_hybrid"]
    assert "--gpus 8 --epochs {epochs} --log-interval 50" in str(hybrid["command_to_execute"])
    assert hybrid["params"] == {"epochs": 20}
    assert "params" not in tasks["tensorflow_resnet50_p3_2xlg"]


@pytest.mark.parametrize("command, epochs", [
    ("python train.py --num-epochs 80", None),
    ("python train.py --epochs=3 --lr 0.1", 3),
    ("python train.py --epochs 5 | awk '{print $2}' > ${LOG:-log}", 5),
    ("a.py --epochs 2 && b.py --epochs 3", None),
])
def test_commands_become_templates_that_render_the_old_command(command, epochs):
    text, notes = convert_cfg(f"[t]\ncommand_to_execute = {command}\nnum_gpus = 0\n", "x.cfg")
    task = tomllib.loads(text)["tasks"]["t"]
    params = task.get("params", {})
    assert params == ({} if epochs is None else {"epochs": epochs})
    assert task["command_to_execute"].format_map(params) == command
    if epochs is not None:
        assert "--epochs {epochs}" in task["command_to_execute"] or "--epochs={epochs}" in task[
            "command_to_execute"]
    several = [n for n in notes if "--epochs left as written (several values [2, 3])" in n]
    assert len(several) == (command.count("--epochs ") > 1)


def test_section_names_that_are_not_bare_keys_are_quoted(converted):
    text, _, _ = converted
    assert "\n[tasks.'test_resnet50_imagenet-480px-256px-q95_p3.16x_fp16_docker']\n" in text
    assert text.startswith("# Converted by `bench-driver convert-cfg` from old_task_config.cfg\n")


def test_awkward_strings_round_trip_exactly():
    ini = ("[a \"quoted\" name]\n"
           "patterns = ['it\\'s', \"say \\\"hi\\\"\", r'back\\slash', 'tab\\there', '\\bword\\b',"
           " 'ünï ✓', 'del\\x7f', \"'''\", 'a\\\\d']\n"
           "metrics = ['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7', 'm8', 'm9']\n"
           "my key = x = 'y' \\ \"z\"\n")
    text, notes = convert_cfg(ini, "awkward.cfg")
    task = tomllib.loads(text)["tasks"]['a "quoted" name']
    assert task["patterns"] == ["it's", 'say "hi"', "back\\slash", "tab\there", "\bword\b",
                                "ünï ✓", "del\x7f", "'''", "a\\d"]
    assert task["my key"] == "x = 'y' \\ \"z\""
    assert any("patterns[4] = '\\x08word\\x08' holds a control character" in n for n in notes)


def test_odd_values_are_kept_and_reported():
    ini = ("[DEFAULT]\nnum_gpus = 2\n"
           "[t]\npatterns = ['a (\\d+)', 'b (\\d+)']\nmetrics = ['a']\ncompute_method = 'last'\n"
           "[u]\nnum_gpus = eight\n")
    text, notes = convert_cfg(ini, "odd.cfg")
    tasks = tomllib.loads(text)["tasks"]
    assert tasks["t"]["num_gpus"] == 2 and tasks["t"]["compute_method"] == "'last'"
    assert tasks["u"]["num_gpus"] == "eight"
    assert any("[DEFAULT] keys ['num_gpus'] were copied" in n for n in notes)
    assert any("[t] compute_method = \"'last'\" evaluates to a str" in n for n in notes)
    assert any("[u] num_gpus = 'eight' is not an integer" in n for n in notes)


@pytest.mark.parametrize("ini, message", [
    ("num_gpus = 8\n[t]\n", "bad.cfg:1: 'num_gpus = 8' comes before any [section]"),
    ("[t]\nnum_gpus = 8\n[t]\n", "bad.cfg:3: [t] appears twice"),
    ("[t]\nnum_gpus = 8\nnum_gpus = 4\n", "bad.cfg:3: [t] num_gpus appears twice"),
    ("[t]\nnum_gpus = 8\njust words\n", "bad.cfg:3: 'just words' is not `key = value`"),
    ("# only a comment\n", "bad.cfg: no [section] found"),
])
def test_unreadable_ini_is_a_config_error_naming_the_line(ini, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        convert_cfg(ini, "bad.cfg")


def test_main_convert_writes_the_file_atomically(tmp_path, capsys):
    out = tmp_path / "task_config.toml"
    out.write_text("stale", encoding="utf-8")
    assert main_convert(str(FIXTURE), str(out)) == 0
    expected, notes = convert_cfg(FIXTURE.read_text(encoding="utf-8"), str(FIXTURE))
    assert out.read_text(encoding="utf-8") == expected
    assert os.listdir(tmp_path) == ["task_config.toml"]  # no temporary file left behind
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("warning: ") == len(notes) > 0
    assert f"converted {FIXTURE} to {out}: {len(notes)} warning(s)" in captured.err


def test_main_convert_writes_to_stdout(capsys):
    assert main_convert(str(FIXTURE), None) == 0
    captured = capsys.readouterr()
    assert "[tasks.resnet50_cifar10_hybrid]" in captured.out
    assert "warning: " in captured.err and "warning: " not in captured.out


def test_main_convert_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.cfg"
    with pytest.raises(ConfigError, match=re.escape(f"{missing}: cannot read the old task config")):
        main_convert(str(missing), None)
    old = tmp_path / "old.cfg"
    old.write_text("[t]\nnum_gpus = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="is the input file"):
        main_convert(str(old), str(old))
    assert old.read_text(encoding="utf-8") == "[t]\nnum_gpus = 1\n"
    with pytest.raises(ConfigError, match="cannot write"):
        main_convert(str(old), str(tmp_path / "no-such-dir" / "out.toml"))


def test_converted_tasks_load_in_the_driver_and_render_the_old_command(tmp_path):
    from driver import config
    out = tmp_path / "task_config.toml"
    out.write_text(convert_cfg(FIXTURE.read_text(encoding="utf-8"), str(FIXTURE))[0], "utf-8")
    loaded = config.load_config(out)
    methods = {"average", "last", "total", "average_aggregate", "p50", "p90"}
    old = old_values()
    for name in ("resnet50_cifar10_hybrid", "lstm_ptb_imperative", "bidaf_1gpu_float32",
                 "mms_resnet_18_cpu", "dawnbench_cifar10_warmup"):
        spec = loaded.task(name, methods)
        assert spec.render_command({}) == old[name]["command_to_execute"], name
        assert [m.pattern for m in spec.metrics] == old[name]["patterns"], name
    two = loaded.task("resnet50_cifar10_hybrid", methods, {"epochs": "2"}).render_command({})
    assert "--gpus 8 --epochs 2 --log-interval" in two
    # what the converter reported, the driver's validation refuses
    for name, complaint in [("test_resnet50_imagenet-480px-256px-q95_p3.16x_fp16_docker",
                             "unknown key 'data_set'"),
                            ("metrics_parameters_images_top_1", "missing command_to_execute")]:
        with pytest.raises(ConfigError, match=re.escape(complaint)):
            loaded.task(name, methods)


def test_cli_convert_cfg_end_to_end(tmp_path):
    out = tmp_path / "task_config.toml"
    proc = subprocess.run([sys.executable, "-m", "driver", "convert-cfg", str(FIXTURE),
                           "-o", str(out)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert out.read_text(encoding="utf-8") == convert_cfg(
        FIXTURE.read_text(encoding="utf-8"), str(FIXTURE))[0]
    assert "[word_lm_unquoted_methods] compute_method" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "driver", "convert-cfg",
                           str(tmp_path / "missing.cfg")], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 3 and "missing.cfg" in proc.stderr
    assert "Traceback" not in proc.stderr
