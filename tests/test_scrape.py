"""The streaming scraper: number formats, per-line semantics, chunking, collisions, bad bytes."""

from __future__ import annotations

import math
import os
import random
import re

import pytest

from driver.config import MetricSpec
from driver.scrape import Scraper


def scrape(log: bytes, *patterns: str, chunk: int | None = None) -> dict[str, list[float]]:
    specs = [MetricSpec(f"m{i}", p, "last") for i, p in enumerate(patterns)]
    scraper = Scraper(specs)
    if chunk is None:
        scraper.feed(log)
    else:
        for i in range(0, len(log), chunk):
            scraper.feed(log[i : i + chunk])
    return {name: found.values for name, found in scraper.close().items()}


def test_numbers_parse_with_sign_exponent_and_leading_zero():
    log = b"v=1.5e-05\nv=-0.5\nv=08\nv=+3\nv=.25\nv=1E3\n"
    assert scrape(log, r"v=(\S+)")["m0"] == [1.5e-05, -0.5, 8.0, 3.0, 0.25, 1000.0]


def test_nan_and_inf_are_counted_not_reduced_and_text_is_unparsed():
    specs = [MetricSpec("loss", r"loss=(\S+)", "last")]
    scraper = Scraper(specs)
    scraper.feed(b"loss=1.0\nloss=nan\nloss=inf\nloss=-inf\nloss=oops\nloss=2.0\n")
    found = scraper.close()["loss"]
    assert found.values == [1.0, 2.0]
    assert (found.matches, found.nonfinite, found.unparsed) == (6, 3, 1)
    assert found.unparsed_examples == ["oops"]


def test_first_match_per_line_only_like_re_search():
    log = b"acc=1 acc=2\nacc=3\nnothing\n"
    assert scrape(log, r"acc=(\d)")["m0"] == [1.0, 3.0]


def test_chunking_never_changes_the_result():
    rng = random.Random(7)
    lines = []
    for i in range(2000):
        kind = rng.random()
        if kind < 0.3:
            lines.append(f"Epoch[{i}] Batch [3]\tSpeed: {rng.uniform(1, 999):.3f} samples/sec")
        elif kind < 0.35:
            lines.append(f"[Epoch {i}] time cost: {rng.uniform(1, 9):.2f}")
        else:
            lines.append("filler " * rng.randrange(0, 30))
    log = ("\n".join(lines)).encode()  # no final newline: the last line still counts
    patterns = (r"Speed: (\S+) samples", r"^\[Epoch \d+\] time cost: (\S+)", r"Speed:\s+(\S+)")
    whole = scrape(log, *patterns)
    expected_speed = [float(m) for m in re.findall(r"Speed: (\S+) samples", log.decode())]
    assert whole["m0"] == expected_speed and whole["m2"] == expected_speed
    for chunk in (1, 7, 4096):
        assert scrape(log, *patterns, chunk=chunk) == whole


def test_invalid_utf8_is_never_fatal():
    log = b"\xff\xfe garbage \x80\nspeed: 12.5 \xc3\x28\n"
    assert scrape(log, r"speed: (\S+)")["m0"] == [12.5]


def test_collision_goes_to_the_more_specific_pattern():
    log = b"[Epoch 0] time cost: 2.0\n[Epoch 1] time cost: 3.0\ntotal time cost: 5.0\n"
    found = scrape(log, r"time cost: (\S+)", r"total time cost: (\S+)")
    assert found == {"m0": [2.0, 3.0], "m1": [5.0]}
    # identical patterns both keep every value
    assert scrape(log, r"time cost: (\S+)", r"time cost: (\S+)") == {
        "m0": [2.0, 3.0, 5.0], "m1": [2.0, 3.0, 5.0]}


def test_a_pattern_alone_is_not_disambiguated():
    log = b"time cost: 2.0\ntotal time cost: 5.0\n"
    assert scrape(log, r"time cost: (\S+)")["m0"] == [2.0, 5.0]


def test_pattern_that_can_cross_lines_is_searched_per_line():
    # \s can match a newline: per-line semantics must not join 'cost:' with the next line
    log = b"cost:\n7\ncost: 8\n"
    assert scrape(log, r"cost:\s*(\d)")["m0"] == [8.0]


def test_named_value_group():
    log = b"loss=0.25 (train)\n"
    assert scrape(log, r"(\w+)=(?P<value>\S+) \((\w+)\)")["m0"] == [0.25]


def test_long_line_without_newline_is_scanned():
    big = b"x" * 100 + b" value=42"
    assert scrape(big, r"value=(\d+)", chunk=10)["m0"] == [42.0]
    assert not math.isnan(scrape(big, r"value=(\d+)")["m0"][0])


def reference(log: bytes, pattern: str) -> list[float]:
    """The semantics, spelled out: re.search on each line, first match, float of group 1."""
    compiled = re.compile(pattern.encode())
    values = []
    for line in log.splitlines(keepends=True):
        m = compiled.search(line)
        if m is not None:
            try:
                values.append(float(m.group(1)))
            except ValueError:
                pass
    return values


@pytest.mark.parametrize("density", [0.001, 0.05, 0.6])
def test_every_scan_strategy_agrees_with_per_line_search(density):
    """Sparse literal hits, anchored and unanchored findall, and per-line search all give the
    per-line semantics, whatever the chunking and however often the patterns hit."""
    rng = random.Random(int(density * 1000))
    kinds = [
        lambda: f"[Epoch {rng.randrange(99)}] time cost: {rng.uniform(0, 9):.3f}",
        lambda: f"x Speed: {rng.uniform(0, 999):.2f} samples/sec acc={rng.random():.4f}",
        lambda: f"loss={rng.uniform(0, 3):.3f} loss={rng.uniform(0, 3):.3f}",
        lambda: f"CAPS Value {rng.randrange(1000)}",
    ]
    lines = [rng.choice(kinds)() if rng.random() < density else "filler " * rng.randrange(9)
             for _ in range(3000)]
    log = ("\n".join(lines) + "\n").encode()
    patterns = [
        r"^\[Epoch \d+\] time cost: (\S+)",  # anchored
        r"Speed: (\S+) samples/sec",          # literal prefix
        r"loss=(\S+)",                        # two hits per line: the first counts
        r"(?i)caps value (\d+)",              # no usable literal (case-insensitive)
        r"acc=\s*(\S+)",                      # may cross lines: per-line search
    ]
    expected = {f"m{i}": reference(log, p) for i, p in enumerate(patterns)}
    assert all(expected.values()) or density < 0.01
    for chunk in (None, 333, 65536):
        assert scrape(log, *patterns, chunk=chunk) == expected


@pytest.mark.parametrize("chunk", [None, 8, 10])
def test_collision_needs_the_same_number_not_just_the_same_place(chunk):
    # On 'acc=73]' both patterns start capturing at the 7 but read different numbers (73 and 7):
    # no collision. On 'acc=3]' they read the same 3: 'acc=' saw more of the line and keeps it.
    # The answer must not depend on how the output was chunked.
    log = b"acc=73]\nacc=3]\n"
    assert scrape(log, r"(\d+)\]", r"acc=(\d)", chunk=chunk) == {"m0": [73.0], "m1": [7.0, 3.0]}


@pytest.mark.parametrize("pattern", [r"(?<!\s)(\d+) ms", r"(?<=\n)loss: (\S+)", r"\Aloss (\d+)",
                                     r"(\d*)$"])
@pytest.mark.parametrize("chunk", [None, 5, 10])
def test_lookbehinds_anchors_and_empty_matches_see_only_their_line(pattern, chunk):
    log = b"12 ms\n34 ms\nloss 5\nloss: 6\nabc\n7\n"
    found = scrape(log, pattern, chunk=chunk)["m0"]
    assert found == reference(log, pattern)


def test_metrics_sharing_a_pattern_each_get_every_value_and_lose_the_same_collisions():
    log = b"time cost: 2.0\ntotal time cost: 5.0\ntime cost: x\n" * 3
    specs = [MetricSpec(f"shared{i}", r"time cost: (\S+)", "last") for i in range(8)]
    specs.append(MetricSpec("total", r"total time cost: (\S+)", "last"))
    found = _scrape_specs(log, specs)
    for i in range(8):
        shared = found[f"shared{i}"]
        assert shared.values == [2.0, 2.0, 2.0]  # 5.0 belongs to the more specific pattern
        assert (shared.matches, shared.unparsed, shared.unparsed_examples) == (6, 3, ["x"] * 3)
    assert found["total"].values == [5.0, 5.0, 5.0]


def _scrape_specs(log: bytes, specs: list[MetricSpec]):
    scraper = Scraper(specs)
    scraper.feed(log)
    return scraper.close()


@pytest.mark.parametrize("chunk", [None, 1, 3])
def test_each_carriage_return_update_is_a_line_and_last_is_the_final_one(chunk):
    # a progress bar rewrites its line with \r; the terminal showed every update, the last stays
    log = b"epoch 1\rloss=0.9\rloss=0.5\rloss=0.25\nloss=0.2\r\n"
    found = scrape(log, r"loss=(\S+)", chunk=chunk)
    assert found["m0"] == [0.9, 0.5, 0.25, 0.2]


@pytest.mark.parametrize("chunk", [None, 1, 4])
def test_dollar_matches_before_crlf_and_no_line_holds_a_carriage_return(chunk):
    log = b"acc 0.5\r\nacc 0.75\r\nacc 1\r"
    assert scrape(log, r"acc (\S+)$", chunk=chunk)["m0"] == [0.5, 0.75, 1.0]
    assert scrape(log, r"acc (\S+)\r", chunk=chunk)["m0"] == []


def test_anchored_pattern_on_a_frequent_first_line_of_the_output():
    # the fast way starts one byte early, on the previous newline: the very first line has none
    log = b"".join(b"[Epoch %d] time cost: %d\n" % (i, i) for i in range(500))
    assert scrape(log, r"^\[Epoch \d+\] time cost: (\d+)")["m0"] == [float(i) for i in range(500)]


def test_a_literal_on_every_line_is_never_the_one_searched_for():
    # the longer literal INFO:root: is on every line; the rarer one is searched for instead
    log = b"".join(b"INFO:root:step %d\nINFO:root:[%d] Cost: %d\n" % (i, i, i) for i in range(300))
    scraper = Scraper([MetricSpec("t", r"^INFO:root:\S+ Cost: (\d+)", "total")])
    scraper.feed(log)
    assert [m.literal for m in scraper._matchers] == [b"Cost:"]
    assert scraper.close()["t"].values == [float(i) for i in range(300)]


def test_unknown_prefilter_engine_is_a_config_error(monkeypatch):
    from driver.errors import ConfigError

    monkeypatch.setenv("BENCH_DRIVER_PREFILTER", "hyperscn")
    with pytest.raises(ConfigError, match="BENCH_DRIVER_PREFILTER='hyperscn'"):
        Scraper([MetricSpec("m", r"x=(\d)", "last")])
    monkeypatch.setenv("BENCH_DRIVER_PREFILTER", "python")
    assert Scraper([MetricSpec("m", r"x=(\d)", "last")]).prefilter == "python"


def test_hyperscan_asked_for_but_missing_says_how_to_install(monkeypatch):
    from driver import prefilter
    from driver.errors import ConfigError

    monkeypatch.setattr(prefilter, "hyperscan_available", lambda: False)
    monkeypatch.setattr(prefilter, "_installed", lambda: False)
    with pytest.raises(ConfigError, match=r"bench-driver\[fast\]"):
        Scraper([MetricSpec("m", r"x=(\d)", "last")], prefilter="hyperscan")
    assert Scraper([MetricSpec("m", r"x=(\d)", "last")], prefilter="auto").prefilter == "python"


def test_auto_prefilter_imports_hyperscan_only_for_a_large_output():
    """A short run pays nothing for the optional engine; a long one gets it, same results."""
    import subprocess
    import sys

    program = (
        "import sys\n"
        "from driver.config import MetricSpec\n"
        "from driver import prefilter\n"
        "from driver.scrape import Scraper\n"
        "specs = [MetricSpec('a', r'alpha=(\\d+)', 'last'),\n"
        "         MetricSpec('b', r'beta=(\\d+)', 'last')]\n"
        "line = b'x' * 90 + b' alpha=1\\n'\n"
        "small = Scraper(specs, prefilter='auto'); small.feed(line * 1000); small.close()\n"
        "print('hyperscan' in sys.modules)\n"
        "big = Scraper(specs, prefilter='auto')\n"
        "for _ in range(prefilter.HYPERSCAN_AFTER_BYTES // len(line) // 1000 + 2):\n"
        "    big.feed(line * 1000)\n"
        "big.feed(b'beta=7\\n' + line); found = big.close()\n"
        "print(big._search._database is not None, found['b'].values, found['a'].matches)\n")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          check=True, env={**os.environ, "BENCH_DRIVER_PREFILTER": "auto"})
    small_imported, rest = done.stdout.split("\n", 1)
    assert small_imported == "False"
    loops = (4 << 20) // 99 // 1000 + 2
    assert rest.split() == ["True", "[7.0]", str(loops * 1000 + 1)], done.stdout


def test_scanning_a_large_memory_map_keeps_rss_flat(tmp_path):
    """The scanned pages are given back: RSS does not grow with the part of the log mapped."""
    import subprocess
    import sys

    log = tmp_path / "output.log"
    line = b"INFO:root:Epoch[1] Batch [49]\tSpeed: 1000.5 samples/sec\taccuracy=0.5\n"
    with open(log, "wb") as f:
        for _ in range(64):
            f.write(line * ((1 << 20) // len(line)))  # 64 MiB
    program = (
        "import mmap, resource, sys\n"
        "from driver.config import MetricSpec\n"
        "from driver.scrape import Scraper\n"
        "s = Scraper([MetricSpec('speed', r'Speed: (\\S+)', 'average')])\n"
        "f = open(sys.argv[1], 'rb'); m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "s.scan_lines(m, 0, len(m)); found = s.close()['speed']\n"
        "grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before\n"
        "print(found.matches, grown // 1024)\n")
    done = subprocess.run([sys.executable, "-c", program, str(log)], capture_output=True,
                          text=True, check=True)
    matches, grown_mib = map(int, done.stdout.split())
    assert matches == 64 * ((1 << 20) // len(line))
    assert grown_mib < 24, f"RSS grew by {grown_mib} MiB while scanning a 64 MiB map"
