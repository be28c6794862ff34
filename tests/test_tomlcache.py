"""The parsed-TOML cache (driver.tomlcache): used only for the exact bytes it was parsed from,
written where Python writes bytecode, never when bytecode is not written."""

from __future__ import annotations

import marshal
import sys
from pathlib import Path

import pytest

from driver import tomlcache
from driver.config import load_config

DOC = b'[tasks.a]\ncommand_to_execute = "true"\npatterns = []\nmetrics = []\ncompute_method = []\n'


@pytest.fixture
def writing(monkeypatch):
    """Caches are written, beside the file (as without PYTHONDONTWRITEBYTECODE)."""
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    monkeypatch.setattr(sys, "pycache_prefix", None)


def no_parsing(monkeypatch):
    def refuse(data: bytes) -> dict:
        raise AssertionError("parsed although a cache for these bytes was kept")
    monkeypatch.setattr(tomlcache, "_parse", refuse)


def test_the_second_load_comes_from_the_cache_beside_the_file(tmp_path, writing, monkeypatch):
    path = tmp_path / "task_config.toml"
    path.write_bytes(DOC)
    first = tomlcache.loads(DOC, path)
    cache = tmp_path / "__pycache__" / f"task_config.toml.{sys.implementation.cache_tag}.marshal"
    assert tomlcache.cache_path(path) == cache and cache.is_file()
    no_parsing(monkeypatch)
    assert tomlcache.loads(DOC, path) == first == {"tasks": {"a": {
        "command_to_execute": "true", "patterns": [], "metrics": [], "compute_method": []}}}


def test_changed_bytes_of_the_same_length_are_parsed_again(tmp_path, writing):
    path = tmp_path / "c.toml"
    tomlcache.loads(b"x = 1\n", path)
    assert tomlcache.loads(b"x = 2\n", path) == {"x": 2}  # never the kept {"x": 1}
    assert tomlcache.loads(b"x = 2\n", path) == {"x": 2}


@pytest.mark.parametrize("kept", [
    b"garbage", b"", marshal.dumps([1, 2]),
    marshal.dumps((tomlcache.FORMAT, "2.7.0", b"x = 1\n", {"x": 9})),  # another Python's
    marshal.dumps((tomlcache.FORMAT + 1, sys.version, b"x = 1\n", {"x": 9})),  # another format
])
def test_a_damaged_or_foreign_cache_is_never_used_and_is_replaced(tmp_path, writing, kept):
    path = tmp_path / "c.toml"
    cache = tomlcache.cache_path(path)
    cache.parent.mkdir()
    cache.write_bytes(kept)
    assert tomlcache.loads(b"x = 1\n", path) == {"x": 1}
    assert marshal.loads(cache.read_bytes()) == (tomlcache.FORMAT, sys.version, b"x = 1\n",
                                                  {"x": 1})


def test_nothing_is_written_without_bytecode_writing(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.setattr(sys, "pycache_prefix", None)
    assert tomlcache.loads(b"x = 1\n", tmp_path / "c.toml") == {"x": 1}
    assert not (tmp_path / "__pycache__").exists()


def test_the_cache_goes_under_pycache_prefix_when_set(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    monkeypatch.setattr(sys, "pycache_prefix", str(tmp_path / "prefix"))
    path = tmp_path / "project" / "c.toml"
    tomlcache.loads(b"x = 1\n", path)
    expected = Path(tmp_path / "prefix", *path.parent.parts[1:],
                    f"c.toml.{sys.implementation.cache_tag}.marshal")
    assert expected.is_file() and not (path.parent / "__pycache__").exists()


def test_dates_are_parsed_every_time(tmp_path, writing):
    path = tmp_path / "c.toml"
    assert str(tomlcache.loads(b"when = 2026-12-02\n", path)["when"]) == "2026-12-02"
    assert not tomlcache.cache_path(path).exists()  # marshal cannot hold a date


def test_an_unwritable_folder_only_means_no_cache(tmp_path, writing):
    (tmp_path / "__pycache__").write_text("a file where the cache folder would go")
    assert tomlcache.loads(b"x = 1\n", tmp_path / "c.toml") == {"x": 1}


def test_invalid_toml_is_still_a_config_error_naming_the_file(tmp_path, writing):
    path = tmp_path / "task_config.toml"
    path.write_bytes(b"[tasks\n")
    with pytest.raises(Exception, match=r"task_config.toml: invalid TOML") as caught:
        load_config(path)
    assert type(caught.value).__name__ == "ConfigError"
