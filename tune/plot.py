"""The picture of a search: what a person looks at to see whether it worked."""

from __future__ import annotations

import math

import matplotlib
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

_STYLE = {
    "COMPLETE": dict(marker="o", color="tab:blue", label="complete"),
    "PRUNED": dict(marker="x", color="tab:orange", label="pruned (last epoch's value)"),
    "FAIL": dict(marker="v", color="tab:red", label="failed"),
}


def search_figure(trials: pd.DataFrame, metric: str, mode: str) -> Figure:
    """Left: each trial's metric against the time it finished, the best so far as a step line;
    right: every trial's metric per epoch (pruned trials dashed)."""
    figure = Figure(figsize=(11, 4.2))
    over_time, curves = figure.subplots(1, 2)
    finite = [v for curve in trials.get("epochs", []) for v in curve if math.isfinite(v)]
    finite += [v for v in trials.get("value", []) if v is not None and math.isfinite(v)]
    floor = min(finite) if finite else 0.0
    for state, style in _STYLE.items():
        rows = trials[trials["state"] == state]
        if rows.empty:
            continue
        if state == "COMPLETE":
            ys = rows["value"]
        elif state == "PRUNED":
            ys = rows["epochs"].map(lambda c: c[-1] if c else floor)
        else:
            ys = pd.Series([floor] * len(rows), index=rows.index)
        over_time.scatter(rows["finished_s"], ys, **style)
    done = trials[trials["state"] == "COMPLETE"].sort_values("finished_s")
    if not done.empty:
        best = done["value"].cummax() if mode == "max" else done["value"].cummin()
        over_time.step(
            done["finished_s"], best, where="post", color="tab:green", label="best so far"
        )
    over_time.set_xlabel("seconds since the search started")
    over_time.set_ylabel(metric)
    over_time.set_title(f"{len(trials)} trials ({mode} {metric})")
    over_time.legend(loc="best", fontsize=8)
    colours = matplotlib.colormaps["tab20"]
    for i, (_, row) in enumerate(trials.iterrows()):
        if row["epochs"]:
            epochs = range(1, len(row["epochs"]) + 1)
            dashed = "--" if row["state"] == "PRUNED" else "-"
            curves.plot(
                epochs,
                row["epochs"],
                dashed,
                marker=".",
                color=colours(i % 20),
                alpha=0.8,
                label=f"trial {row['number']}",
            )
    curves.xaxis.set_major_locator(MaxNLocator(integer=True))
    curves.set_xlabel("epoch")
    curves.set_ylabel(metric)
    curves.set_title("per epoch (dashed: pruned)")
    if len(trials) <= 12 and any(len(c) for c in trials["epochs"]):
        curves.legend(loc="best", fontsize=7)
    figure.tight_layout()
    return figure
