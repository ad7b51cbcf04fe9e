"""The benchmarks' one output format: a JSON line per figure (docs/benchmarks.md)."""

from __future__ import annotations

import json
from importlib import metadata

from sparkzoo.bench.common import emit, steady


def test_a_figure_is_one_json_line_with_its_runs_load_and_stack(capsys):
    emit("scaling_x", [0.7, 0.9, 0.8], ">= 0.8", engine="horovod")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    figure = json.loads(lines[0])
    assert figure["value"] == 0.8 and figure["runs"] == [0.7, 0.9, 0.8]
    assert figure["target"] == ">= 0.8" and figure["engine"] == "horovod"
    assert len(figure["loadavg"]) == 3
    assert figure["stack"]["spark"] == metadata.version("pyspark")
    assert figure["stack"]["tensorflow"].split(".")[0] == "2"


def test_steady_throughput_leaves_out_the_first_epoch():
    assert steady([10.0, 100.0, 110.0, 90.0]) == 100.0
    assert steady([42.0]) == 42.0
