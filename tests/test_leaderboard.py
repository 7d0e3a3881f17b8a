"""leaderboard.py: the score, the Pareto front, tiers and output formats (pure, on
hand-made trials), and `budgetnas leaderboard` on a real study."""
from __future__ import annotations

import csv
import io
import json
import re
from types import SimpleNamespace

import pytest
from hypothesis import given, settings, strategies as st

from budgetnas.results import formats as fmt
from budgetnas.results import leaderboard as lb
from budgetnas.cli import main
from conftest import copy_sqlite


def trial(number, state="COMPLETE", **attrs):
    """A duck-typed trial like optuna's FrozenTrial (number, state.name, user_attrs)."""
    return SimpleNamespace(number=number, state=SimpleNamespace(name=state), user_attrs=attrs)


def done(number, acc, params, **kw):
    return trial(number, val_acc=acc, test_acc=acc - 0.001, params=params, macs=params * 50, budget=20000,
                 seconds=1.0, spec={"layers": [{"kind": "conv", "out": 8, "kernel": 3}, {"kind": "pool"}],
                                    "head": "gap", "hidden": [32]}, **kw)


TRIALS = [done(0, 0.95, 10000), done(1, 0.97, 18000), done(2, 0.90, 4000), done(3, 0.94, 12000),
          done(4, 0.97, 19000), trial(5, "PRUNED", params=9000, budget=20000),
          trial(6, "PRUNED", params=90000, budget=20000, rejected="90000 params > budget 20000"),
          trial(7, "FAIL"), trial(8, "RUNNING", params=5000)]


# --- the score --------------------------------------------------------------------------
def test_efficiency_trades_half_a_point_per_doubling():
    assert lb.efficiency(0.99, 1000) == pytest.approx(99.0)
    assert lb.efficiency(0.99, 2000) == pytest.approx(98.5)
    assert lb.efficiency(0.99, 500) == pytest.approx(99.5)
    # more accurate is better at equal size; smaller is better at equal accuracy
    assert lb.efficiency(0.98, 8000) > lb.efficiency(0.97, 8000)
    assert lb.efficiency(0.98, 4000) > lb.efficiency(0.98, 8000)


@pytest.mark.parametrize("tiny_params,tiny_acc", [(154, 0.11), (154, 0.50), (300, 0.90), (1000, 0.95)])
def test_tiny_weak_model_cannot_beat_a_good_one(tiny_params, tiny_acc):
    good = lb.efficiency(0.99, 20000)
    assert lb.efficiency(tiny_acc, tiny_params) < good
    # unlike accuracy per parameter, which the tiny model wins
    assert tiny_acc / tiny_params > 0.99 / 20000


def test_size_term_is_worth_at_most_a_few_points_over_a_budget():
    from budgetnas.space import Space, smallest_params
    spread = lb.efficiency(0.9, smallest_params(Space())) - lb.efficiency(0.9, 25000)
    assert 3.5 < spread < 4.0  # 7.3 doublings from 154 params to 25k


# --- Pareto front, build, tiers -----------------------------------------------------------
def test_pareto_front_keeps_only_undominated_trials():
    entries = [lb.entry_from_trial(t) for t in TRIALS]
    # 2 (4k, 90%) < 0 (10k, 95%) < 1 (18k, 97%); 3 is dominated by 0; 4 ties 1 in acc but is larger
    assert lb.pareto_front(entries) == {2, 0, 1}


def test_pareto_front_tie_on_params_keeps_the_more_accurate():
    entries = [lb.entry_from_trial(t) for t in (done(0, 0.90, 5000), done(1, 0.92, 5000))]
    assert lb.pareto_front(entries) == {1}


def test_pareto_front_keeps_both_of_exact_twins():
    entries = [lb.entry_from_trial(t) for t in (done(0, 0.90, 5000), done(1, 0.90, 5000), done(2, 0.90, 6000))]
    assert lb.pareto_front(entries) == {0, 1}  # neither twin dominates the other; 2 is dominated by both


def test_build_ranks_complete_trials_and_marks_states():
    ranked = lb.build(TRIALS)
    assert [e.trial for e in ranked] == [1, 4, 0, 3, 2]  # accuracy, then fewer params
    assert [e.trial for e in lb.build(TRIALS, sort="params")] == [2, 0, 3, 1, 4]
    assert [e.trial for e in lb.build(TRIALS, sort="efficiency")] == [1, 4, 0, 3, 2]
    assert {e.trial for e in ranked if e.pareto} == {0, 1, 2}
    assert all(e.score == pytest.approx(lb.efficiency(e.val_acc, e.params)) for e in ranked)
    everything = lb.build(TRIALS, include_all=True)
    assert [(e.trial, e.state) for e in everything[5:]] == [(5, "pruned"), (6, "rejected"), (7, "failed"),
                                                            (8, "running")]
    assert fmt.state_counts(everything) == {"complete": 5, "pruned": 1, "rejected": 1, "failed": 1, "running": 1}


def test_efficiency_sort_prefers_a_much_smaller_model_that_is_slightly_worse():
    trials = [done(0, 0.955, 16000), done(1, 0.950, 2000)]  # 93.5 vs 94.5 points
    assert [e.trial for e in lb.build(trials)] == [0, 1]
    assert [e.trial for e in lb.build(trials, sort="efficiency")] == [1, 0]


def test_default_tiers_are_round_numbers_up_to_the_budget():
    assert lb.default_tiers(20000) == [2000, 5000, 10000, 20000]
    assert lb.default_tiers(25000) == [2000, 5000, 10000, 20000, 25000]
    assert lb.default_tiers(100_000) == [10_000, 20_000, 50_000, 100_000]
    for budget in (300, 1234, 25000, 777_777):
        tiers = lb.default_tiers(budget)
        assert tiers[-1] == budget and len(tiers) <= 5 and tiers[0] >= budget / 16


def test_best_per_tier():
    best = dict(lb.best_per_tier(lb.build(TRIALS), [3000, 5000, 12000, 20000]))
    assert best[3000] is None
    assert best[5000].trial == 2
    assert best[12000].trial == 0  # 95% at 10k beats 94% at 12k
    assert best[20000].trial == 1  # 97% at 18k beats 97% at 19k


# --- formats --------------------------------------------------------------------------
def test_csv_parses_back():
    entries = lb.build(TRIALS, include_all=True)
    rows = list(csv.DictReader(io.StringIO(fmt.format_csv(entries))))
    assert len(rows) == len(entries)
    assert tuple(rows[0]) == fmt.CSV_FIELDS
    assert rows[0]["trial"] == "1" and rows[0]["rank"] == "1" and float(rows[0]["val_acc"]) == 0.97
    assert json.loads(rows[0]["spec"])["head"] == "gap"
    assert rows[6]["state"] == "rejected" and rows[6]["rank"] == "" and rows[6]["val_acc"] == ""


def test_json_carries_every_field_per_entry():
    entries = lb.build(TRIALS, include_all=True)
    best = lb.best_per_tier(entries, [5000, 20000])
    doc = json.loads(fmt.format_json(entries, best, study="s", budget=20000))
    assert doc["study"] == "s" and doc["budget"] == 20000
    assert doc["counts"]["complete"] == 5
    for key in ("trial", "state", "val_acc", "test_acc", "params", "macs", "budget", "seconds", "spec", "pareto",
                "score", "rank"):
        assert all(key in e for e in doc["entries"]), key
    first = doc["entries"][0]
    assert (first["trial"], first["params"], first["macs"], first["pareto"]) == (1, 18000, 900000, True)
    assert doc["tiers"] == [{"tier": 5000, "trial": 2, "val_acc": 0.90, "test_acc": pytest.approx(0.899),
                             "params": 4000},
                            {"tier": 20000, "trial": 1, "val_acc": 0.97, "test_acc": pytest.approx(0.969),
                             "params": 18000}]


def test_markdown_and_table():
    entries = lb.build(TRIALS)
    md = fmt.format_markdown(entries, lb.best_per_tier(entries, [5000]))
    lines = md.splitlines()
    assert lines[0].startswith("| rank | trial | val acc %") and lines[0].endswith("| arch |")
    assert set(lines[1]) <= set("|-:")
    assert lines[2].startswith("| 1 | 1 | 97.00 |")
    assert "**Best per budget tier**" in md and "| 5,000 | 2 | 90.00 |" in md
    table = fmt.format_table(entries, arch=True).splitlines()
    assert table[0].split()[:3] == ["rank", "trial", "val"] and len(table) == 2 + len(entries)
    assert table[2].split()[:3] == ["1", "1", "97.00"] and table[2].endswith("*  8 P | gap fc32")
    assert table[3].endswith("    8 P | gap fc32")  # trial 4: same accuracy, larger: not on the front


def test_arch_summary():
    spec = {"layers": [{"kind": "conv", "out": 8, "kernel": 3}, {"kind": "conv", "out": 16, "kernel": 1},
                       {"kind": "pool"}], "head": "flatten", "hidden": [64]}
    assert fmt.arch_summary(spec) == "8 16:1 P | flat fc64"
    assert fmt.arch_summary({**spec, "linear": False, "hidden": []}) == "8 16:1 P | gap (conv logits)"
    assert fmt.arch_summary(None) == "-"


# --- the command on a real study -------------------------------------------------------------
def test_leaderboard_command_all_formats(real_study, capsys):
    name, url = real_study
    args = ["leaderboard", "--study", name, "--storage", url]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"study '{name}'" in out and "budget 5,000 params" in out and "Pareto front" in out
    assert "best per budget tier" in out and "5,000" in out

    assert main(args + ["--format", "json", "--all"]) == 0
    doc = json.loads(capsys.readouterr().out)
    trained = [e for e in doc["entries"] if e["state"] == "complete"]
    assert len(trained) >= 2 and doc["budget"] == 5000
    assert [t["tier"] for t in doc["tiers"]] == [500, 1000, 2000, 5000]
    for e in trained:
        assert 0 <= e["val_acc"] <= 1 and 0 <= e["test_acc"] <= 1
        assert 0 < e["params"] <= 5000 and e["macs"] > 0 and e["seconds"] > 0 and e["spec"]["layers"]
    assert any(e["pareto"] for e in trained)
    accs = [e["val_acc"] for e in trained]
    assert accs == sorted(accs, reverse=True)

    assert main(args + ["--format", "csv", "--top", "1"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 1 and rows[0]["trial"] == str(trained[0]["trial"])

    assert main(args + ["--format", "markdown", "--tiers", "100,5k", "--sort", "params"]) == 0
    md = capsys.readouterr().out
    assert md.startswith("| rank | trial |") and "| 100 | - |" in md and "| 5,000 |" in md


def test_leaderboard_is_recomputed_from_the_storage(real_study, tmp_path, capsys):
    import optuna
    name, url = real_study
    copy = tmp_path / "copy.db"
    copy_sqlite(url[len("sqlite:///"):], copy)
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{copy}")
    study.add_trial(optuna.trial.create_trial(value=0.999, user_attrs={
        "val_acc": 0.999, "test_acc": 0.998, "params": 300, "macs": 1000, "budget": 5000, "seconds": 1.0}))
    assert main(["leaderboard", "--study", name, "--storage", f"sqlite:///{copy}", "--format", "json"]) == 0
    first = json.loads(capsys.readouterr().out)["entries"][0]
    assert (first["params"], first["pareto"], first["rank"]) == (300, True, 1)


@pytest.mark.parametrize("extra,message", [
    (["--study", "nope"], "no study 'nope'"),
    (["--top", "0"], "--top must be at least 1"),
    (["--tiers", "5k,abc"], "--tiers"),
    (["--format", "xml"], "--format"),
])
def test_leaderboard_bad_input_is_one_line(real_study, capsys, extra, message):
    _, url = real_study
    assert main(["leaderboard", "--storage", url, "--study", "t", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_leaderboard_missing_storage_is_one_line(tmp_path, capsys):
    for url in (f"sqlite:///{tmp_path}/none.db", f"journal:{tmp_path}/none.journal"):
        assert main(["leaderboard", "--storage", url]) == 2
        err = capsys.readouterr().err
        assert "no study storage" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # nothing created


# --- a real study whose outcome is known: front, tiers and orders by trial number -------------
@pytest.fixture(scope="module")
def known(tmp_path_factory):
    """known_study's SQLite study (see its table): (name, url)."""
    import known_study
    url = f"sqlite:///{tmp_path_factory.mktemp('known')}/known.db"
    return known_study.make(url), url


def md_blocks(text: str) -> list[list[list[str]]]:
    """The markdown tables in text: each a list of rows of cells (the |---| rule dropped)."""
    blocks, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            if not set(line) <= set("|-:"):
                current.append(line.strip()[1:-1].strip().split(" | "))  # an escaped '\|' is never ' | '
        elif current:
            blocks.append(current)
            current = []
    return blocks


def parse_board(fmt: str, out: str) -> tuple[list[int], list[int], dict[int, int | None] | None]:
    """(trials in the order shown, trials marked on the Pareto front, {tier: winner} or
    None where the format has no tiers), read from the command's output."""
    if fmt == "json":
        doc = json.loads(out)
        entries = [e for e in doc["entries"] if e["state"] == "complete"]
        assert doc["pareto"] == sorted(e["trial"] for e in entries if e["pareto"])
        return ([e["trial"] for e in entries], sorted(e["trial"] for e in entries if e["pareto"]),
                {t["tier"]: t["trial"] for t in doc["tiers"]})
    if fmt == "csv":
        rows = [r for r in csv.DictReader(io.StringIO(out)) if r["state"] == "complete"]
        assert {r["pareto"] for r in rows} <= {"True", "False"}
        return [int(r["trial"]) for r in rows], sorted(int(r["trial"]) for r in rows if r["pareto"] == "True"), None
    if fmt == "markdown":
        board, tiers = md_blocks(out)
        head, body = board[0], board[1:]
        trial, pareto = head.index("trial"), head.index("pareto")
        assert {r[pareto] for r in body} <= {"*", ""}
        return ([int(r[trial]) for r in body], sorted(int(r[trial]) for r in body if r[pareto] == "*"),
                {int(r[0].replace(",", "")): None if r[1] == "-" else int(r[1]) for r in tiers[1:]})
    lines = out.splitlines()
    board = plain_table(lines, next(i for i, line in enumerate(lines) if line.split()[:2] == ["rank", "trial"]))
    assert [int(r["rank"]) for r in board] == list(range(1, len(board) + 1))
    tiers = plain_table(lines, lines.index("best per budget tier (most accurate with params <= tier)") + 1)
    return ([int(r["trial"]) for r in board], sorted(int(r["trial"]) for r in board if r["pareto"] == "*"),
            {int(r["params <="].replace(",", "")): None if r["trial"] == "-" else int(r["trial"]) for r in tiers})


def plain_table(lines: list[str], at: int) -> list[dict[str, str]]:
    """The plain-text table whose header is lines[at]: one dict per row, by column name
    (columns are where the rule line below the header has dashes), up to a line that
    does not start like a row (blank, or the footer)."""
    spans = [m.span() for m in re.finditer(r"-+", lines[at + 1])]
    names = [lines[at][a:b].strip() for a, b in spans]
    spans[-1] = (spans[-1][0], None)  # the last (arch) column runs to the end of its line
    out = []
    for line in lines[at + 2:]:
        if not line.strip() or not line[: spans[0][1]].strip().replace(",", "").isdigit():
            break
        out.append({name: line[a:b].strip() for name, (a, b) in zip(names, spans)})
    return out


@pytest.mark.parametrize("sort", ["accuracy", "efficiency", "params"])
@pytest.mark.parametrize("fmt", ["table", "json", "csv", "markdown"])
def test_leaderboard_names_the_known_front_tiers_and_order(known, capsys, fmt, sort):
    import known_study as k
    name, url = known
    assert main(["leaderboard", "--study", name, "--storage", url, "--format", fmt, "--sort", sort]) == 0
    order, front, tiers = parse_board(fmt, capsys.readouterr().out)
    assert order == k.ORDER[sort]
    assert front == k.FRONT
    if tiers is not None:
        assert tiers == k.TIERS


def test_leaderboard_all_lists_the_untrained_trials_of_the_known_study(known, capsys):
    name, url = known
    assert main(["leaderboard", "--study", name, "--storage", url, "--format", "json", "--all"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(e["trial"], e["state"]) for e in doc["entries"] if e["state"] != "complete"] == [
        (5, "pruned"), (6, "rejected"), (9, "failed")]
    assert not any(e["pareto"] for e in doc["entries"] if e["state"] != "complete")
    assert doc["counts"] == {"complete": 8, "pruned": 1, "rejected": 1, "failed": 1}
    import known_study as k
    assert {e["trial"]: e["params"] for e in doc["entries"] if e["state"] == "complete"} == k.PARAMS


# --- hypothesis: the front and the tiers against their definitions, by brute force -----------
ACCS = [0.875, 0.90625, 0.9375, 0.96875]  # k/32: a mean over runs is the same in any summing order


@st.composite
def trial_sets(draw) -> list:
    """Up to 14 trials in every state and up to 4 re-runs of completed ones, all in any
    order, with few distinct sizes and accuracies (so ties and exact twins are common);
    pruned trials may carry an accuracy too."""
    trials, complete = [], []
    n = draw(st.integers(0, 14))
    for number in range(n):
        state = draw(st.sampled_from(["COMPLETE"] * 4 + ["PRUNED", "FAIL", "RUNNING"]))
        attrs = {"params": draw(st.sampled_from([500, 1000, 2000, 3000, 5000])), "budget": 5000}
        if state == "COMPLETE" or draw(st.booleans()):
            acc = draw(st.sampled_from(ACCS))
            attrs.update(val_acc=acc, test_acc=acc)
        trials.append(trial(number, state, **attrs))
        complete += [(number, attrs["params"])] if state == "COMPLETE" else []
    for number in range(n, n + (draw(st.integers(0, 4)) if complete else 0)):
        of, params = draw(st.sampled_from(complete))
        acc = draw(st.sampled_from(ACCS))
        trials.append(trial(number, rerun_of=of, params=params, budget=5000, val_acc=acc, test_acc=acc))
    return draw(st.permutations(trials))


def candidates(trials) -> dict[int, tuple[int, float, bool]]:
    """Each trained candidate: (params, mean val acc over its runs, measured by several runs)."""
    runs = {t.number: [t.user_attrs["val_acc"]] for t in trials
            if t.state.name == "COMPLETE" and t.user_attrs.get("rerun_of") is None}
    for t in sorted(trials, key=lambda t: t.number):
        if t.user_attrs.get("rerun_of") is not None:
            runs[t.user_attrs["rerun_of"]].append(t.user_attrs["val_acc"])
    params = {t.number: t.user_attrs["params"] for t in trials}
    return {n: (params[n], sum(accs) / len(accs), len(accs) > 1) for n, accs in runs.items()}


def brute_front(trials) -> set[int]:
    """Candidates that no other candidate dominates (at most as large and at least as
    accurate by mean val acc, strictly better in one of the two)."""
    c = candidates(trials)
    return {n for n, (p, a, _) in c.items() if not any(p2 <= p and a2 >= a and (p2 < p or a2 > a)
                                                        for p2, a2, _ in c.values())}


def brute_tier_winner(trials, tier: int) -> int | None:
    """Among candidates with params <= tier: those measured by several runs first, then
    the most accurate (mean), then the smaller, then the earlier trial."""
    fits = [(multi, a, -p, -n) for n, (p, a, multi) in candidates(trials).items() if p <= tier]
    return -max(fits)[3] if fits else None


PROPERTY = settings(deadline=None, derandomize=True, database=None, max_examples=150)


@PROPERTY
@given(trial_sets(), st.sampled_from(sorted(lb.SORTS)))
def test_pareto_front_is_the_set_of_undominated_trained_trials(trials, sort):
    entries = lb.build(trials, sort=sort, include_all=True)
    assert {e.trial for e in entries if e.pareto} == brute_front(trials)
    assert lb.pareto_front(lb.build(trials)) == brute_front(trials)


@PROPERTY
@given(trial_sets(), st.sampled_from(sorted(lb.SORTS)), st.randoms(use_true_random=False),
       st.lists(st.sampled_from([400, 500, 1000, 2500, 5000]), min_size=1, max_size=4, unique=True))
def test_best_per_tier_is_the_brute_force_winner_in_any_order(trials, sort, rnd, tiers):
    entries = lb.build(trials, sort=sort)
    rnd.shuffle(entries)  # a function of the entries, not of the order they come in
    best = lb.best_per_tier(entries, tiers)
    assert [t for t, _ in best] == sorted(tiers)
    assert [e.trial if e else None for _, e in best] == [brute_tier_winner(trials, t) for t in sorted(tiers)]
