"""kpi_models.objectives.load_objectives parses an objectives file's YAML once per text (a Dagster run loaded it in
its preflight, its checks and the kpi_vs_objective step, ~8 ms of PyYAML each; issue #21). What must not change:

- an edited file is read again, even an edit of the same size written within the same second (the key is the text);
- a file that does not parse raises the same error every time (an invalid text is never kept);
- each caller gets its own objects: what one caller does with its result never reaches the next one.
"""

import os

import pytest

from connectors import yaml_text
from kpi_models.objectives import ObjectiveError, load_objectives

FILE = """objectives:
  - kpi: sessions
    source: ga4
    period: month
    target: {target}
"""


def test_an_edit_is_read_again_even_same_size_and_time(tmp_path, monkeypatch):
    monkeypatch.setattr(yaml_text, "_PARSED", {})  # whatever other tests of this process parsed
    calls = []
    real = yaml_text.safe_load
    monkeypatch.setattr(yaml_text, "safe_load",  # the objectives texts parsed (not the catalogue's)
                        lambda text: (calls.append(text) if text.startswith("objectives:") else None) or real(text))
    path = tmp_path / "objectives.yaml"
    path.write_text(FILE.format(target=80000), encoding="utf-8")
    stat = os.stat(path)
    first = load_objectives(path)
    assert [(o.kpi, o.source, o.period, o.target) for o in first] == [("sessions", "ga4", "month", 80000.0)]
    assert [o.target for o in load_objectives(path)] == [80000.0]
    assert len(calls) == 1  # the same text: parsed once
    path.write_text(FILE.format(target=90000), encoding="utf-8")  # same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the same modification time
    assert [o.target for o in load_objectives(path)] == [90000.0]
    assert len(calls) == 2
    first.clear()  # a caller changing its own list changes nobody else's
    assert len(load_objectives(path)) == 1


def test_an_invalid_file_raises_every_time(tmp_path):
    path = tmp_path / "objectives.yaml"
    path.write_text("objectives: [kpi: sessions\n", encoding="utf-8")
    for _ in range(2):
        with pytest.raises(ObjectiveError, match="is not valid YAML"):
            load_objectives(path)
    assert "objectives: [kpi: sessions\n" not in yaml_text._PARSED


def test_the_parsed_yaml_handed_out_is_a_copy(tmp_path):
    text = FILE.format(target=80000)
    parsed = yaml_text.parsed_yaml(text)
    parsed["objectives"][0]["target"] = 1
    assert yaml_text.parsed_yaml(text)["objectives"][0]["target"] == 80000
