"""The datagen plugin without training: streams, profiles, init, the store, estimates, Slurm
scripts and the merged table's API (stores written directly, as a run writes them)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from driver.errors import ConfigError, DataError
from driver.search import SearchBudget, Trial, run_search
from plugins.datagen.plan import Remaining, pack_jobs, remaining, slurm_script
from plugins.datagen.profile import Profile, parse_profile
from plugins.datagen.sampling import COMMON_SEED, draw_samples, stream
from plugins.datagen.store import EPOCH_COLUMNS, StreamStore, store_path
from plugins.datagen.table import GeneratedTable, GeneratedTableEvaluator, merge_stores
from plugins.nas201.space import NB201Space
from plugins.searchers import bench_driver_register_searchers
from plugins.searchers.bohb import BOHB
from plugins.toy_search.random_search import RandomSearch

SEARCHERS = {**bench_driver_register_searchers(), "random": RandomSearch}

OUTPUTS = 4096


def test_jahs_counter_streams_overlap_and_jumped_streams_do_not() -> None:
    """JAHS-Bench-201's Philox(seed, counter=taskid): stream t+1 is stream t shifted by four
    outputs. Philox(seed).jumped(taskid) streams share no 64-bit output at all."""
    jahs = [np.random.Philox(seed=COMMON_SEED, counter=t).random_raw(OUTPUTS) for t in range(3)]
    assert np.array_equal(jahs[1][: OUTPUTS - 4], jahs[0][4:])
    assert np.array_equal(jahs[2][: OUTPUTS - 8], jahs[0][8:])
    ours = [stream(t).bit_generator.random_raw(OUTPUTS) for t in range(3)]
    for a in range(3):
        for b in range(a + 1, 3):
            assert not set(ours[a].tolist()) & set(ours[b].tolist())


def test_samples_are_fixed_by_taskid_and_model_idx() -> None:
    space = NB201Space()
    four, six = draw_samples(space, 3, 4), draw_samples(space, 3, 6)
    assert six[:4] == four  # more samples per stream append models
    assert [s.config for s in draw_samples(space, 4, 4)] != [s.config for s in four]
    assert all(s.config in space and 0 <= s.seed < 2**63 for s in six)


@pytest.mark.parametrize(("table", "message"), [
    ({"stream": 2}, "unknown key 'stream' (did you mean 'streams'?)"),
    ({"streams": 0}, "streams = 0: must be >= 1"),
    ({"samples": "4"}, "samples = '4': expected a whole number"),
    ({"datasets": ["cifar10-vaild"]}, "unknown data set 'cifar10-vaild' (did you mean "
                                      "'cifar10-valid'?)"),
    ({"mode": "toys"}, "mode = 'toys' (did you mean 'toy'?)"),
    ({"mode": "full"}, "needs data_dir = 'DIR'"),
    ({"job_hours": 0}, "job_hours = 0: must be > 0"),
    ({"estimate_s_per_epoch": float("inf")}, "estimate_s_per_epoch = inf: must be > 0 and finite"),
])
def test_a_bad_profile_is_refused_naming_the_key(table: dict, message: str) -> None:
    with pytest.raises(ConfigError, match="x.toml: \\[datagen.p\\]") as error:
        parse_profile("p", {"mode": "toy", **table}, Path("x.toml"))
    assert message in str(error.value)


def test_check_refuses_a_bad_profile_before_anything_runs(write_config, cli) -> None:
    write_config("""
        [datagen.toy]
        streams = 2
        sample = 4
        mode = "toy"
    """)
    result = cli("check")
    assert result.returncode == 3, result.stderr
    assert "[datagen.toy]: unknown key 'sample' (did you mean 'samples'?)" in result.stderr
    assert cli("datagen", "toy", "init").returncode == 3  # every profile is checked first
    write_config("""
        [datagen.toy]
        mode = "toy"
    """)
    result = cli("datagen", "toi", "init")
    assert result.returncode == 3
    assert "no profile [datagen.toi] (did you mean 'toy'?)" in result.stderr


def test_init_is_byte_identical_and_a_new_range_keeps_the_old_samples(write_config, cli,
                                                                      tmp_path: Path) -> None:
    profile = """
        [datagen.p]
        streams = {streams}
        first_taskid = {first}
        samples = 3
        mode = "toy"
        epochs = 4
    """
    write_config(profile.format(streams=2, first=0))
    assert cli("datagen", "p", "init").returncode == 0
    samples = tmp_path / "datagen" / "p" / "samples.json"
    first = samples.read_bytes()
    assert cli("datagen", "p", "init").returncode == 0
    assert samples.read_bytes() == first
    write_config(profile.format(streams=2, first=2))  # taskids 2, 3 added
    result = cli("datagen", "p", "init")
    assert result.returncode == 0, result.stderr
    rows = json.loads(samples.read_text())
    assert [(r["taskid"], r["model_idx"]) for r in rows] == [(t, m) for t in range(4)
                                                            for m in range(3)]
    assert rows[:6] == json.loads(first)
    assert rows[6:] == [s.to_json() for t in (2, 3) for s in draw_samples(NB201Space(), t, 3)]
    write_config(profile.format(streams=2, first=0).replace("epochs = 4", "epochs = 5"))
    result = cli("datagen", "p", "init")
    assert result.returncode == 3
    assert "epochs was 4 when this profile's data was initialised and is 5 now" in result.stderr
    assert samples.read_bytes() != first and json.loads(samples.read_text()) == rows  # untouched


def _fake_store(directory: Path, taskid: int, models: list[tuple[str, int]]) -> None:
    """A store as a run writes it: per model (config, epochs) with made-up, known values."""
    store = StreamStore(store_path(directory, taskid))
    for model_idx, (arch, epochs) in enumerate(models):
        key = (taskid, model_idx, "cifar10-valid")
        store.record_model(key, arch, 7 + model_idx, 0.1, 20.0)
        for epoch in range(1, epochs + 1):
            values = {c: float(epoch) for c in EPOCH_COLUMNS}
            values["valid_accuracy"] = 10.0 * epoch + model_idx + taskid
            store.record_epoch(key, epoch, values, b"state")
    store.close()


def test_the_estimate_uses_measured_seconds_and_packs_whole_taskids(tmp_path: Path) -> None:
    profile = Profile("p", streams=2, samples=2, epochs=10, estimate_s_per_epoch=99.0,
                      job_hours=1.0, mode="toy")
    space = NB201Space()
    samples = draw_samples(space, 0, 2) + draw_samples(space, 1, 2)
    fresh = remaining(profile, tmp_path, samples, 10)
    assert fresh == [Remaining(0, 20, 20 * 99.0), Remaining(1, 20, 20 * 99.0)]
    _fake_store(tmp_path, 0, [(samples[0].config, 3), (samples[1].config, 3)])
    # measured: train_time_s + eval_time_s = 2 * epoch, so 4.0 s per epoch over epochs 1..3
    left = remaining(profile, tmp_path, samples, 10)
    assert left == [Remaining(0, 14, 14 * 4.0), Remaining(1, 20, 20 * 4.0)]
    jobs = pack_jobs([Remaining(0, 1, 3000), Remaining(1, 1, 2000), Remaining(2, 1, 1500),
                      Remaining(3, 1, 5000), Remaining(4, 0, 0)], 3600)
    assert [[r.taskid for r in job] for job in jobs] == [[3], [0], [1, 2]]
    text = slurm_script(profile, jobs[2], 2, 10, tmp_path / "task_config.toml", tmp_path)
    assert "#SBATCH --time=01:27:30\n" in text  # 3500 s x 1.5
    assert f"--taskids 1,2 --config {tmp_path / 'task_config.toml'}" in text
    assert "#SBATCH --job-name=datagen-p-2\n" in text and "#SBATCH --mem=4096M\n" in text


def test_merge_gives_the_nb201_table_api_with_epochs(tmp_path: Path) -> None:
    archs = [draw_samples(NB201Space(), 0, 3)[i].config for i in range(3)]
    _fake_store(tmp_path, 0, [(archs[0], 3), (archs[1], 3)])
    _fake_store(tmp_path, 1, [(archs[0], 3), (archs[2], 2)])  # archs[0] again: a second run
    path, models, epochs = merge_stores(tmp_path, {"name": "p"})
    assert (models, epochs) == (4, 11)
    table = GeneratedTable(path)
    assert len(table) == 3 and list(table) == archs
    assert table.query_index_by_arch(archs[2]) == 2 and table.query_index_by_arch("x") == -1
    runs = table.query_by_index(0, "cifar10-valid")
    assert [(r.taskid, r.model_idx) for r in runs.values()] == [(0, 0), (1, 0)]
    assert runs[1].get_eval("x-valid", 2) == {"accuracy": 21.0, "loss": 2.0, "time_s": 6.0}
    assert runs[0].get_train(1)["accuracy"] == 1.0
    info = table.query_meta_info_by_index(0)
    assert info.get_metrics("cifar10-valid", "x-valid", 3)["accuracy"] == 30.5
    assert info.get_compute_costs("cifar10-valid") == {"flops": 20.0, "params": 0.1,
                                                       "latency": 3.0}
    assert table.epochs("cifar10-valid") == 2
    assert table.simulate_train_eval(archs[1], "cifar10-valid", 2)[2:] == (6.0, 6.0)
    with pytest.raises(DataError, match="split 'x-test'"):
        runs[0].get_eval("x-test")
    with pytest.raises(DataError, match="epoch 4 is not held"):
        runs[0].get_eval("x-valid", 4)


def test_every_searcher_kind_runs_on_the_merged_table(tmp_path: Path) -> None:
    archs = [s.config for s in draw_samples(NB201Space(), 0, 5)]
    _fake_store(tmp_path, 0, [(arch, 3) for arch in archs])
    table = GeneratedTable(merge_stores(tmp_path, {})[0])
    evaluator = GeneratedTableEvaluator(table, "cifar10-valid", seed=0)
    best = run_search(RandomSearch(table.space(), seed=0), evaluator, SearchBudget(20))
    assert best.best.value == 34.0  # model_idx 4 at epoch 3: 10 * 3 + 4
    seen: list[float | None] = []
    bohb = BOHB(table.space(), seed=0)
    run_search(bohb, _Recording(evaluator, seen), SearchBudget(15))
    assert {1.0, 3.0} <= set(seen)  # real per-epoch fidelities were asked for and answered
    for name, searcher in SEARCHERS.items():
        outcome = run_search(searcher(table.space(), seed=1), evaluator, SearchBudget(12))
        assert outcome.evaluations == 12 and outcome.best.value in {30.0 + i for i in range(5)}, \
            name
    assert evaluator.evaluate(Trial(0, archs[2], 1.0)).value == 12.0
    with pytest.raises(DataError, match="is not in the table"):
        evaluator.evaluate(Trial(0, NB201Space().sample(random.Random(5))))


class _Recording(GeneratedTableEvaluator):
    def __init__(self, inner: GeneratedTableEvaluator, seen: list[float | None]) -> None:
        self.__dict__.update(inner.__dict__)
        self.seen = seen

    def evaluate(self, trial: Trial):  # type: ignore[no-untyped-def]
        self.seen.append(trial.fidelity)
        return super().evaluate(trial)


def test_a_store_of_another_format_is_refused(tmp_path: Path) -> None:
    path = store_path(tmp_path, 0)
    StreamStore(path).close()
    import sqlite3

    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value='99' WHERE key='format_version'")
    with pytest.raises(Exception, match="store format 99"):
        StreamStore(path)
    path.write_text("not sqlite")
    with pytest.raises(Exception, match="not a datagen store"):
        StreamStore(path)


def test_a_finished_store_is_compacted_once_and_never_rewritten_by_a_reader(
        tmp_path: Path) -> None:
    """The last checkpoint dropped gives its space back (VACUUM); opening the finished store
    again to read it (an estimate, a merge) writes nothing."""
    path = tmp_path / "stream.sqlite"
    store = StreamStore(path)
    key, values = (0, 0, "cifar10-valid"), {c: 1.0 for c in EPOCH_COLUMNS}
    store.record_epoch(key, 1, values, b"x" * 200_000)  # a checkpoint of ~50 pages
    store.record_epoch(key, 2, values, None)  # the schedule is done: dropped
    store.close()
    compact = path.stat()
    assert compact.st_size < 100_000
    reader = StreamStore(path)
    assert reader.epochs_done(*key) == 2
    reader.close()
    again = path.stat()
    assert (again.st_size, again.st_mtime_ns) == (compact.st_size, compact.st_mtime_ns)
