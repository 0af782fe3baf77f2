"""docs/benchmarks.json and .md (issue #21 targets 7 and 8): the JSON's shape, and `--only` replacing only the
named modules' rows. No benchmark is run: the plan's modules are replaced by stubs returning fixed rows."""

import json

import pytest

from bench import run_all
from bench.common import Row, Sample, first_number, record

KEYS = {"target", "value", "baseline", "ratio", "goal", "met", "size", "runs", "min", "max", "commit"}


def test_numbers_are_read_from_the_shown_cells():
    assert first_number("1,043k (832-1,107) rows/s") == 1_043_000
    assert first_number("<= 1.3x") == 1.3
    assert first_number("bound 33.6 s") == 33.6
    assert first_number("") is None
    shown = record(Row("3 load", "loader", "1,043k (832-1,107) rows/s", "1,652k rows/s", "0.64x (0.59-0.72)",
                       ">= 0.8x", ok=False), module="load", runs=5, size="1M rows", commit="abc",
                   measured_at="now")
    assert (shown["value"], shown["min"], shown["max"]) == (1_043_000, 832_000, 1_107_000)
    assert (shown["baseline"], shown["ratio"], shown["goal"], shown["met"], shown["runs"]) == \
        (1_652_000, 0.64, 0.8, False, 5)


def test_a_typed_row_is_exact_in_the_json():
    row = Row("3 search_console", "30-day big site", "shown text", "x", "y", "z", ok=True, size="30M rows",
              includes="connector and loader", sample=Sample((3.0, 1.0, 2.0)), base=4.0,
              ratios=Sample((0.5, 0.25, 0.75)), limit=1.5)
    obj = record(row, module="search_console", runs=None, size="args", commit="c1", measured_at="t1")
    assert KEYS <= set(obj)
    assert (obj["value"], obj["min"], obj["max"], obj["runs"]) == (2.0, 1.0, 3.0, 3)
    assert (obj["baseline"], obj["ratio"], obj["goal"], obj["met"], obj["size"]) == (4.0, 0.5, 1.5, True, "30M rows")


def _stub_plan(monkeypatch, values):
    """A plan of three stub modules; `values[name]` is the figure each returns (changed between runs)."""
    plan = [run_all.Step("alpha", "x.alpha", ("--runs", "5", "--size", "10"), ("--runs", "1")),
            run_all.Step("beta", "x.beta", ("--runs", "5"), ("--runs", "1")),
            run_all.Step("gamma", "x.gamma", ("--size", "7"), ())]
    calls = []

    def loader(step):
        def main(args):
            calls.append((step.name, list(args)))
            return [Row(f"9 {step.name}", f"{step.name} figure", f"{values[step.name]} s", "bound 2 s",
                        f"{values[step.name] / 2}x", "<= 1.3x", ok=values[step.name] / 2 <= 1.3)]
        return main

    monkeypatch.setattr(run_all, "PLAN", plan)
    monkeypatch.setattr(run_all, "_loader", loader)
    monkeypatch.setattr(run_all, "git_commit", lambda: values["commit"])
    return calls


def test_only_replaces_the_named_modules_rows_and_keeps_the_others(tmp_path, monkeypatch):
    values = {"alpha": 1.0, "beta": 2.0, "gamma": 3.0, "commit": "first"}
    calls = _stub_plan(monkeypatch, values)
    md, js = tmp_path / "b.md", tmp_path / "b.json"
    assert run_all.main(["--output", str(md)]) == 0
    first = json.loads(js.read_text())
    assert [o["module"] for o in first["targets"]] == ["alpha", "beta", "gamma"]
    for obj in first["targets"]:
        assert KEYS <= set(obj)
        assert obj["commit"] == "first" and obj["baseline"] == 2.0 and obj["goal"] == 1.3
    assert first["targets"][0]["size"] == "size 10" and first["targets"][0]["runs"] == 5

    values.update(alpha=10.0, beta=20.0, gamma=30.0, commit="second")
    calls.clear()
    assert run_all.main(["--output", str(md), "--only", "gamma,alpha", "--runs", "2"]) == 0
    assert calls == [("alpha", ["--runs", "2", "--size", "10"]), ("gamma", ["--size", "7", "--runs", "2"])]
    second = json.loads(js.read_text())
    got = {o["module"]: (o["value"], o["commit"], o["runs"], o["met"]) for o in second["targets"]}
    assert got == {"alpha": (10.0, "second", 2, False), "beta": (2.0, "first", 5, True),
                   "gamma": (30.0, "second", 2, False)}
    assert [o["module"] for o in second["targets"]] == ["alpha", "beta", "gamma"]  # the plan's order is kept
    assert {c["module"]: c["commit"] for c in second["commands"]} == {"alpha": "second", "beta": "first",
                                                                      "gamma": "second"}
    text = md.read_text()
    assert "| 9 beta " in text and "2.0 s" in text and "10.0 s" in text and "1.0 s" not in text
    assert "first" in text and "second" in text  # each row names its own commit
    assert "Goals met: 1, missed: 2" in text
    # target 8: each figure with its baseline, size and what it includes
    assert "| target | measure | baseline | size | includes |" in text
    assert "| 9 beta | beta figure | bound 2 s | - | see the module above | first," in text


def test_unknown_module_names_are_refused(tmp_path, monkeypatch):
    _stub_plan(monkeypatch, {"alpha": 1.0, "beta": 1.0, "gamma": 1.0, "commit": "c"})
    with pytest.raises(SystemExit):
        run_all.main(["--output", str(tmp_path / "b.md"), "--only", "nope"])
    assert not (tmp_path / "b.json").exists()


def test_a_failing_module_gives_one_failed_row_and_the_others_still_run(tmp_path, monkeypatch):
    values = {"alpha": 1.0, "beta": 2.0, "gamma": 3.0, "commit": "c"}
    _stub_plan(monkeypatch, values)
    del values["beta"]  # beta's stub raises KeyError
    run_all.main(["--output", str(tmp_path / "b.md")])
    objs = json.loads((tmp_path / "b.json").read_text())["targets"]
    assert [(o["module"], o["met"]) for o in objs] == [("alpha", True), ("beta", False), ("gamma", False)]
    assert objs[1]["measure"].startswith("ERROR: KeyError")


def test_every_module_of_the_plan_is_described_and_takes_runs():
    assert {s.name for s in run_all.PLAN} <= set(run_all.DESCRIPTIONS)
    assert run_all.with_runs(["--days", "3"], 4) == ["--days", "3", "--runs", "4"]
    assert run_all.with_runs(["--runs", "5"], None) == ["--runs", "5"]
    assert run_all.size_of(["--sizes", "1000000", "--runs", "5", "--dlt-runs", "0"]) == "sizes 1000000"


def test_every_module_of_the_plan_accepts_its_arguments(monkeypatch):
    """`make bench`, `--quick` and `--runs N` give each module arguments it parses (no benchmark runs)."""
    import argparse
    import importlib

    class Parsed(Exception):
        pass

    parse = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise Parsed(parse(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    for step in run_all.PLAN:
        main = importlib.import_module(step.module).main
        for args in (step.full, step.quick, run_all.with_runs(step.quick, 1)):
            with pytest.raises(Parsed):
                main(list(args))
