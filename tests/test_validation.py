"""One check per input kind at the edge (issue 24): the recipe's ranges, the settings'
ranges (nan, inf, huge counts, seeds), the flags' parsers, the environment, storage URLs
(another application's SQLite file is refused and left byte-identical) and the dataset
name. The CLI's side of each is a case of tests/bad_flags.py."""
from __future__ import annotations

import argparse
import hashlib
import math
import sqlite3

import pytest

from budgetnas.cli.parser import build_parser
from budgetnas.config import (ConfigError, DataConfig, SearchConfig, env, positive_int, seed_int, size_int,
                              tier_list, whole_in)
from budgetnas.train.recipe import Recipe

NAN, INF = math.nan, math.inf


@pytest.mark.parametrize("field,bad", [
    ("lr", 0.0), ("lr", -1e-3), ("lr", NAN), ("lr", INF),
    ("weight_decay", -1.0), ("weight_decay", NAN), ("weight_decay", INF),
    ("label_smoothing", 1.0), ("label_smoothing", 2.0), ("label_smoothing", -0.1), ("label_smoothing", NAN),
    ("momentum", 1.0), ("momentum", -0.5), ("momentum", NAN),
    ("rotate", -1.0), ("rotate", 181.0), ("rotate", INF),
    ("translate", 1.0), ("translate", -0.1), ("translate", NAN),
    ("grad_clip", -1.0), ("grad_clip", NAN),
    ("batch_size", 0), ("batch_size", 2.5), ("batch_size", True), ("batch_size", 10 ** 30),
    ("epochs", 0), ("epochs", 10 ** 30), ("epochs", 1.5),
    ("hflip", "yes"), ("optimizer", ["adamw"]), ("schedule", "warm"),
])
def test_the_recipe_refuses_values_out_of_its_ranges(field, bad):
    with pytest.raises(ConfigError) as e:
        Recipe(**{field: bad})
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("field,good", [
    ("lr", 1e-6), ("weight_decay", 0.0), ("label_smoothing", 0.0), ("label_smoothing", 0.99), ("momentum", 0.0),
    ("rotate", 180.0), ("translate", 0.5), ("grad_clip", 0.0), ("batch_size", 1), ("epochs", 10_000),
])
def test_the_recipe_takes_the_ends_of_its_ranges(field, good):
    assert getattr(Recipe(**{field: good}), field) == good


@pytest.mark.parametrize("kwargs,expected", [
    ({"seed": -1}, "--seed must be a whole number in 0..4294967295 (got -1)"),
    ({"seed": 2 ** 32}, "--seed must be a whole number in 0..4294967295"),
    ({"seed": 1.5}, "--seed must be a whole number in 0..4294967295"),
    ({"timeout": NAN}, "--timeout must be a finite number of seconds"),
    ({"timeout": INF}, "--timeout must be a finite number of seconds"),
    ({"timeout": -3.0}, "--timeout must be positive seconds (got -3.0)"),
    ({"trials": 10 ** 20}, "--trials must be at most 1,000,000"),
    ({"trials": 0}, "--trials must be at least 1"),
    ({"budget": 10 ** 30}, "--budget must be at most"),
    ({"budget": 0}, "--budget must be a positive number of parameters (got 0)"),
    ({"budget": 2.5}, "--budget must be a whole number"),
    ({"epochs": True}, "--epochs must be a whole number"),
    ({"workers": 0}, "--workers must be at least 1 (got 0)"),
    ({"threads": -1}, "--threads must be at least 1 (got -1)"),
    ({"max_ram": 0}, "--max-ram must be a positive number of bytes (got 0)"),
    ({"study": ""}, "--study must be a non-empty name"),
    ({"study": "a\nb"}, "without '/' or control characters"),
    ({"study": "x" * 201}, "at most 200 characters"),
    ({"storage": ""}, "--storage must not be empty"),
    ({"artifacts": " "}, "--artifacts must not be empty"),
])
def test_search_settings_refuse_what_the_api_could_pass(kwargs, expected):
    with pytest.raises(ConfigError) as e:
        SearchConfig(**kwargs)
    assert expected in str(e.value)


@pytest.mark.parametrize("kwargs,expected", [
    ({"split_seed": -1}, "--split-seed must be a whole number in 0..4294967295 (got -1)"),
    ({"val_size": 0}, "--val-size must be at least 100 (got 0)"),
    ({"train_limit": 10 ** 30}, "--train-limit must be at most"),
    ({"train_fraction": NAN}, "--train-fraction must be in (0, 1]"),
    ({"image_size": 10 ** 30}, "--image-size must be in 8..1024"),
    ({"channels": True}, "--channels must be 1 or 3"),
    ({"dataset": ""}, "--dataset must name a dataset"),
    ({"data_dir": ""}, "--data-dir must not be empty"),
])
def test_data_settings_refuse_what_the_api_could_pass(kwargs, expected):
    with pytest.raises(ConfigError) as e:
        DataConfig(**kwargs)
    assert expected in str(e.value)


@pytest.mark.parametrize("parse,text,expected", [
    (positive_int, "0", "must be a positive number (got 0)"),
    (positive_int, "-5", "must be a positive number (got -5)"),
    (positive_int, "25kk", "is not a whole number"),
    (positive_int, "1e999", "is not a whole number"),
    (positive_int, "٣", "is not a whole number"),  # a digit, but not an ASCII one
    (positive_int, str(10 ** 30), "must be at most 1,000,000,000,000,000"),
    (size_int, "0", "must be a positive number (got 0)"),
    (size_int, "0k", "must be a positive number (got 0)"),
    (size_int, "2000000000M", "must be at most"),
    (tier_list, "0,5k", "is not a list of parameter counts"),
    (seed_int, "-1", "must be a whole number in 0..4294967295 (got -1)"),
    (whole_in(1, 10), "11", "must be at most 10 (got 11)"),
])
def test_flag_parsers_refuse_zero_negative_and_huge(parse, text, expected):
    with pytest.raises(argparse.ArgumentTypeError) as e:
        parse(text)
    assert expected in str(e.value)


def test_flag_parsers_read_what_they_always_read():
    assert positive_int("25k") == positive_int("25,000") == positive_int("25_000") == 25_000
    assert size_int("2M") == 2_000_000 and tier_list("5k,2k,5k") == [2000, 5000] and seed_int(str(2 ** 32 - 1))


@pytest.mark.parametrize("argv,expected", [
    (["search", "--budget", "0"], "--budget must be a positive number (got 0)"),
    (["search", "--timeout", "nan"], "--timeout must be a finite number (got 'nan')"),
    (["search", "--storage", ""], "--storage must not be empty"),
    (["search", "--trials", "many"], "argument --trials: invalid int value: 'many'"),
    (["train", "--epochs", "1", "--seed", "-1"], "--seed must be a whole number in 0..4294967295 (got -1)"),
    (["train", "--epochs", "1", "--lr", "inf"], "--lr must be a finite number (got 'inf')"),
    (["leaderboard", "--top", "0"], "--top must be at least 1 (got 0)"),
])
def test_the_parser_says_which_flag_and_why_in_one_line(argv, expected):
    with pytest.raises(ConfigError) as e:
        build_parser().parse_args(argv)
    assert expected in str(e.value) and "\n" not in str(e.value)


# --- the environment ----------------------------------------------------------------------------
@pytest.mark.parametrize("text,expected", [
    ("8G", 8 * 10 ** 9), ("1.5g", 1_500_000_000), ("512MB", 512 * 10 ** 6), ("100000", 100_000), (" 10K ", 10_000),
])
def test_max_memory_reads_sizes(monkeypatch, text, expected):
    monkeypatch.setenv("BUDGETNAS_MAX_MEMORY", text)
    assert env.max_memory() == expected


@pytest.mark.parametrize("text", ["infG", "inf", "nan", "nanG", "-5G", "0", "0.0G", "lots", "1e9", "1.5", "9" * 400])
def test_max_memory_refuses_anything_else_naming_the_variable(monkeypatch, text):
    monkeypatch.setenv("BUDGETNAS_MAX_MEMORY", text)
    with pytest.raises(ConfigError, match=r"^\$BUDGETNAS_MAX_MEMORY="):
        env.max_memory()


@pytest.mark.parametrize("name,text", [("BUDGETNAS_HEARTBEAT", "²"), ("BUDGETNAS_HEARTBEAT", "0"),
                                       ("BUDGETNAS_HEARTBEAT", "9" * 30), ("BUDGETNAS_HEARTBEAT_GRACE", "-1"),
                                       ("BUDGETNAS_OFFLINE", "maybe"), ("BUDGETNAS_WORKER_START", "fork"),
                                       ("BUDGETNAS_MPS", "maybe")])
def test_every_variable_is_checked_at_once(monkeypatch, name, text):
    monkeypatch.setenv(name, text)
    with pytest.raises(ConfigError, match=rf"^\${name}="):
        env.check()


@pytest.mark.parametrize("text,offline", [("1", True), ("yes", True), ("0", False), ("off", False), ("", False)])
def test_offline_reads_yes_and_no(monkeypatch, text, offline):
    monkeypatch.setenv("BUDGETNAS_OFFLINE", text)
    assert env.offline() is offline


@pytest.mark.parametrize("text,mps", [("", True), ("1", True), ("on", True), ("0", False), ("no", False)])
def test_mps_is_on_unless_turned_off(monkeypatch, text, mps):
    monkeypatch.setenv("BUDGETNAS_MPS", text)
    assert env.mps() is mps


def test_a_relative_cache_home_is_ignored(monkeypatch, tmp_path):
    monkeypatch.delenv("BUDGETNAS_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    assert env.data_root() == tmp_path / ".cache" / "budgetnas"


# --- storage URLs -------------------------------------------------------------------------------
def other_apps_database(path, wal: bool = False) -> None:
    with sqlite3.connect(path) as db:
        if wal:
            db.execute("pragma journal_mode=wal")
        db.execute("create table notes (id integer primary key, body text)")
        db.execute("insert into notes (body) values ('mine')")
    db.close()


def files(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("wal", [False, True])
def test_another_apps_sqlite_file_is_refused_and_left_byte_identical(tmp_path, wal):
    from budgetnas.study.storage import open_storage
    other_apps_database(tmp_path / "other.db", wal)
    before = files(tmp_path)
    for create in (True, False):
        with pytest.raises(ConfigError) as e:
            open_storage(f"sqlite:///{tmp_path}/other.db", heartbeat=create, create=create)
        assert "\n" not in str(e.value)
    assert "another application's SQLite database (tables: notes)" in \
        str(pytest.raises(ConfigError, open_storage, f"sqlite:///{tmp_path}/other.db").value)
    assert files(tmp_path) == before  # no Optuna tables, no WAL switch, no -wal or -shm file


def test_a_new_empty_or_optuna_sqlite_file_opens(tmp_path):
    from budgetnas.study.storage import check_storage, open_storage
    (tmp_path / "empty.db").write_bytes(b"")
    for name in ("new.db", "empty.db"):
        open_storage(f"sqlite:///{tmp_path}/{name}").engine.dispose()
    check_storage(f"sqlite:///{tmp_path}/new.db")  # now an Optuna storage: still fine
    with sqlite3.connect(tmp_path / "new.db") as db:  # a table of the user's own beside Optuna's
        db.execute("create table my_notes (body text)")
    db.close()
    with sqlite3.connect(tmp_path / "half.db") as db:  # a storage another process is making right now
        db.execute("create table trials (trial_id integer primary key)")
    db.close()
    for name in ("new.db", "half.db"):
        check_storage(f"sqlite:///{tmp_path}/{name}")


@pytest.mark.parametrize("url,expected", [
    ("sqlite://", "a study in memory vanishes when the process ends: pass sqlite:///FILE.db"),
    ("sqlite:///:memory:", "a study in memory vanishes"),
    ("sqlite:///", "a study in memory vanishes"),
    ("sqlite:///file:x?mode=memory&uri=true", "a study in memory vanishes"),
    ("", "empty storage URL"),
    ("journal:", "names no file"),
    ("sqlite:///{tmp}", "is a folder: pass a file in it, e.g. sqlite:///{tmp}/budgetnas.db"),
    ("journal:{tmp}", "is a folder"),
    ("journal:{tmp}/notes.txt", "is not an Optuna journal"),
    ("sqlite:///{tmp}/notes.txt", "(file is not a database)"),
])
def test_storage_urls_that_hold_no_study_are_refused_before_opening(tmp_path, url, expected):
    from budgetnas.study.storage import open_storage
    (tmp_path / "notes.txt").write_text("my notes\n")
    before = files(tmp_path)
    with pytest.raises(ConfigError) as e:
        open_storage(url.format(tmp=tmp_path))
    assert expected.format(tmp=tmp_path) in str(e.value)
    assert files(tmp_path) == before


def test_an_empty_dataset_name_is_no_folder():
    from budgetnas.data.sources import source_for
    for name in ("", "  "):
        with pytest.raises(ConfigError, match="an empty dataset name: use mnist"):
            source_for(name)
