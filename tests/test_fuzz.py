"""The fuzzer (scripts/fuzz.py, issue #24) on a budget: a few hundred generated cases of
every kind (npz files, image folders, MNIST idx files, spec and manifest JSON, flags,
space files, environment variables) run through the real CLI with zero failures; and
the fuzzer itself catches planted faults (a traceback, a wrong exit status, a hang, an
edited input, a second stderr line) so a clean run means something."""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).resolve().parent.parent / "scripts"))

import fuzz  # noqa: E402
from fuzzrun import classify  # noqa: E402

SEED = 24  # the number; any fixed seed makes the run the same cases every time


@pytest.fixture(scope="module")
def world(tmp_path_factory, mnist_dir) -> Path:
    """The fuzzer's shared inputs, made once for both runs."""
    root = tmp_path_factory.mktemp("fuzz-world")
    fuzz.make_world(root, mnist_dir)
    return root


def test_a_few_hundred_fuzzed_cases_fail_nowhere(world):
    summary = fuzz.fuzz(240, seed=SEED, world_dir=world, jobs=2, timeout=60, cli_share=0.01)
    print(summary.text)  # shown with pytest -rP: the table to quote
    assert {r.kind for r in summary.results} == set(fuzz.KINDS)
    assert summary.ok, "the fuzzer found failures (rerun: scripts/fuzz.py --n 240 --seed " \
                       f"{SEED} --cli-share 0.01 --keep DIR):\n{summary.text}"


PLANT = '''
import os, sys, time

def main(argv):
    """A fake entry point with one fault per command (the fuzzer must report each)."""
    command = argv[0] if argv else ""
    if command == "data":
        raise ValueError("planted")  # a traceback
    if command == "leaderboard":
        return 1  # an exit status other than 0 and 2
    if command == "space":
        time.sleep(30)  # a hang past the run's timeout
    if command == "search":
        print("budgetnas: error: planted", file=sys.stderr)
        print("and a second line", file=sys.stderr)  # exit 2 but not one line
        return 2
    if command == "train":
        for a in argv:  # edits its input
            if "/in/" in a and os.path.isfile(a):
                with open(a, "ab") as f:
                    f.write(b"planted")
                break
    return 0
'''


def test_the_fuzzer_catches_planted_faults(world, tmp_path):
    (tmp_path / "plant.py").write_text(textwrap.dedent(PLANT))
    summary = fuzz.fuzz(48, seed=SEED, kinds=("flags",), world_dir=world, jobs=2, timeout=3, cli_share=0.25,
                        entry="plant:main", python_path=[str(tmp_path)])
    print(summary.text)
    by_command: dict[str, set[str]] = {}
    for r in summary.results:
        by_command.setdefault(r.argv[0] if r.argv else "", set()).update(f.cls for f in r.failures)
    assert by_command["data"] == {"traceback"}
    assert by_command["leaderboard"] == {"status"}
    assert by_command["space"] == {"hang"}
    assert by_command["search"] == {"multi-line"}
    assert "changed" in by_command["train"]
    assert not by_command.get("presets") and not by_command.get("report") and not by_command.get("export")
    assert any(r.cli for r in summary.results if r.argv[:1] in (["data"], ["space"], ["train"]) and r.failures)
    assert "[traceback] ValueError in plant.py:main" in summary.text
    assert not summary.ok


@pytest.mark.parametrize("status, stdout, stderr, hung, changed, expected", [
    (0, "fine\n", "", False, [], []),
    (2, "", "budgetnas: error: bad input: do this\n", False, [], []),
    (2, "", "budgetnas: error: one\nbudgetnas: error: two\n", False, [], ["multi-line"]),
    (2, "", "warning: something\nbudgetnas: error: bad\n", False, [], ["multi-line"]),
    (2, "", "bad input without the prefix\n", False, [], ["multi-line"]),
    (2, "", "", False, [], ["multi-line"]),
    (1, "", "budgetnas: error: export failed, kept in x\n", False, [], ["status"]),
    (-11, "", "", False, [], ["status"]),
    (0, "", 'Traceback (most recent call last):\n  File "/x/budgetnas/data/a.py", line 3, in f\n'
            "KeyError: 'k'\n", False, [], ["traceback"]),
    (None, "", "", True, [], ["hang"]),
    (0, "", "", False, ["changed 'data.npz'"], ["changed"]),
])
def test_the_checks(status, stdout, stderr, hung, changed, expected):
    assert [f.cls for f in classify(status, stdout, stderr, hung, changed, 60)] == expected


def test_a_traceback_is_grouped_by_exception_and_place():
    text = ('Traceback (most recent call last):\n  File "/r/budgetnas/cli/__init__.py", line 40, in main\n'
            '  File "/r/budgetnas/data/sources/npz.py", line 51, in from_npz\n'
            '  File "/v/site-packages/numpy/lib/_npyio_impl.py", line 9, in load\n'
            "NotImplementedError: That compression method is not supported\n")
    (f,) = classify(1, "", text, False, [], 60)
    assert f.key == "NotImplementedError in budgetnas/data/sources/npz.py:from_npz"
    assert "line 51" in f.detail and "_npyio_impl.py:load" in f.detail
