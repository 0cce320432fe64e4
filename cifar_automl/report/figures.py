"""Plotly figures of the report tables, each a small function; Optuna's own `optuna.visualization`
where it has the plot. `figure(make)` turns one into an HTML fragment, or a note saying why not."""

from __future__ import annotations

import html
import warnings
from typing import Any, Callable

import numpy as np
import optuna
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..study import OBJECTIVE, accuracy
from . import tables

GREY = "rgba(150,150,150,0.35)"
BLOCK_COLOURS = {"plain": "#1f77b4", "inception": "#ff7f0e", "residual": "#2ca02c"}


def figure(make: Callable[[], Any], need: pd.DataFrame | None = None, n: int = 0) -> str:
    """A figure as an HTML fragment, or a note saying why it is missing."""
    if need is not None and len(need) < n:
        return note(f"Not enough finished trials for this figure (needs {n}).")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fig = make()
    except (ValueError, RuntimeError, KeyError, ZeroDivisionError) as e:
        return note(f"Figure not available: {str(e).splitlines()[0][:200]}")
    if fig is None:
        return note("Figure not available: no data.")
    fig.update_layout(template="plotly_white", margin=dict(l=60, r=20, t=60, b=50))
    return fig.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False})


def common_params(study: optuna.Study) -> list[str]:
    """Parameters every finished trial has (conditional ones left out), varied in the study."""
    trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
    if not trials:
        return []
    common = set(trials[0].params)
    for t in trials[1:]:
        common &= set(t.params)
    return sorted(p for p in common if len({repr(t.params[p]) for t in trials}) > 1)


def on_accuracy(study: optuna.Study) -> dict:
    """Arguments that point Optuna's plots at validation accuracy: its plots of one value refuse a
    study of several objectives unless given a `target`."""
    if len(study.directions) == 1:
        return {}
    return {"target": accuracy, "target_name": OBJECTIVE}


def importances(study: optuna.Study):
    params = common_params(study)
    if not params:
        raise ValueError("no parameter varies across the finished trials")
    return optuna.visualization.plot_param_importances(study, params=params, **on_accuracy(study))


def fig_best_so_far_by_block(curve: pd.DataFrame):
    fig = go.Figure()
    for group, g in curve.groupby("group"):
        fig.add_trace(go.Scatter(x=g["trial_hours"], y=g["best_val_accuracy"], mode="lines+markers",
                                 name=str(group), line=dict(shape="hv", color=BLOCK_COLOURS.get(str(group)))))
    fig.update_layout(title="Best validation accuracy vs compute spent, per block type",
                      xaxis_title="trial-hours spent on this block type", yaxis_title="best val accuracy")
    return fig


def fig_block_box(done: pd.DataFrame):
    if done.empty:
        return None
    fig = px.box(done, x="block", y="val_accuracy", color="block", points="all", hover_data=["number"],
                 color_discrete_map=BLOCK_COLOURS, title="Validation accuracy by block type")
    return fig


def fig_best_vs_wall_time(frame: pd.DataFrame):
    done = tables.finished(frame).dropna(subset=["datetime_complete"]).sort_values("datetime_complete")
    start = frame["datetime_start"].dropna().min()
    minutes = (done["datetime_complete"] - start).dt.total_seconds() / 60
    fig = go.Figure(go.Scatter(x=minutes, y=done["val_accuracy"].cummax(), mode="lines+markers",
                               line=dict(shape="hv"), text=done["number"], name="best so far"))
    fig.add_trace(go.Scatter(x=minutes, y=done["val_accuracy"], mode="markers", name="trial",
                             marker=dict(color=GREY)))
    fig.update_layout(title="Best so far vs wall time", xaxis_title="minutes since the first trial",
                      yaxis_title="val accuracy")
    return fig


def fig_search_value(curve: pd.DataFrame, value: pd.DataFrame):
    """Best so far against compute, with the reference trial's score as a line."""
    fig = go.Figure(go.Scatter(x=curve["trial_hours"], y=curve["best_val_accuracy"], mode="lines+markers",
                               line=dict(shape="hv"), text=curve["trial"], name="best so far"))
    if not value.empty:
        ref = value.iloc[0]
        fig.add_hline(y=ref["best_val_accuracy"], line_dash="dash", line_color=GREY,
                      annotation_text=str(ref["compute"]))
    fig.update_layout(title="What the search bought", xaxis_title="trial hours (compute spent)",
                      yaxis_title="best val accuracy")
    return fig


def fig_random_search(table: pd.DataFrame):
    """Random search over a recorded grid: its expected best so far with the 10th-90th percentile band,
    and the recording's own order (one random search)."""
    x = table["trial_hours"]
    fig = go.Figure([
        go.Scatter(x=x, y=table["p90_val_accuracy"], mode="lines", line=dict(width=0), showlegend=False,
                   hoverinfo="skip"),
        go.Scatter(x=x, y=table["p10_val_accuracy"], mode="lines", line=dict(width=0), fill="tonexty",
                   fillcolor="rgba(128,128,128,0.25)", name="10th-90th percentile"),
        go.Scatter(x=x, y=table["expected_best_val_accuracy"], mode="lines+markers", text=table["trials"],
                   name="random search, expected best"),
        go.Scatter(x=x, y=table["recording_val_accuracy"], mode="lines", line=dict(shape="hv", dash="dot"),
                   name="this recording's order"),
    ])
    fig.update_layout(title="Random search over the recorded grid", xaxis_title="trial hours (compute spent)",
                      yaxis_title="best val accuracy")
    return fig


def fig_learning_curves(curves: pd.DataFrame):
    if curves.empty:
        return None
    fig = go.Figure()
    shown: set[str] = set()
    for number, g in curves.groupby("number"):
        state, block = g["state"].iloc[0], g["block"].iloc[0]
        pruned = state != "complete"
        legend = "pruned / failed" if pruned else str(block)
        fig.add_trace(go.Scatter(
            x=g["epoch"], y=g["val_accuracy"], mode="lines", name=legend, legendgroup=legend,
            showlegend=legend not in shown, hovertext=f"trial {number} ({state})",
            line=dict(color=GREY if pruned else BLOCK_COLOURS.get(str(block), "#9467bd"), width=1 if pruned else 2),
        ))
        shown.add(legend)
    fig.update_layout(title="Learning curves (validation accuracy per epoch)", xaxis_title="epoch",
                      yaxis_title="val accuracy")
    return fig


def fig_pareto(done: pd.DataFrame, front: pd.DataFrame, cost: str, label: str, log: bool = False):
    fig = go.Figure()
    for block, g in done.groupby("block"):
        fig.add_trace(go.Scatter(x=g[cost], y=g["val_accuracy"], mode="markers", name=str(block),
                                 text=[f"trial {n}" for n in g["number"]],
                                 marker=dict(color=BLOCK_COLOURS.get(str(block)), size=8, opacity=0.7)))
    if not front.empty:
        fig.add_trace(go.Scatter(x=front[cost], y=front["val_accuracy"], mode="lines", name="Pareto front",
                                 line=dict(color="black", shape="hv")))
    fig.update_layout(title=f"Validation accuracy vs {label}", xaxis_title=label, yaxis_title="val accuracy")
    if log:
        fig.update_xaxes(type="log")
    return fig


def fig_history(history: pd.DataFrame):
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"))
    for col, (metric, colour) in enumerate((("loss", "#d62728"), ("accuracy", "#1f77b4")), start=1):
        for prefix, dash in (("", "solid"), ("val_", "dash")):
            if prefix + metric in history:
                fig.add_scatter(x=history["epoch"], y=history[prefix + metric], row=1, col=col,
                                name=f"{'val' if prefix else 'train'} {metric}", line=dict(color=colour, dash=dash))
    fig.update_layout(title="Retraining curves")
    fig.update_xaxes(title_text="epoch")
    return fig


def fig_confusion(confusion: pd.DataFrame):
    counts = confusion.to_numpy()
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts, dtype=float), where=rows > 0)
    names = [str(c) for c in confusion.columns]
    fig = go.Figure(go.Heatmap(
        z=share, x=names, y=names, colorscale="Blues", zmin=0, zmax=1,
        text=counts, texttemplate="%{text}", hovertemplate="true %{y}<br>pred %{x}<br>%{text} images<extra></extra>",
        colorbar=dict(title="share of row"),
    ))
    fig.update_layout(title="Confusion matrix (test split; counts, colour = share of the true class)",
                      xaxis_title="predicted", yaxis_title="true", yaxis_autorange="reversed",
                      height=max(450, 40 * len(names) + 150))
    return fig


def fig_per_class(per_class: pd.DataFrame):
    fig = go.Figure()
    for metric in ("precision", "recall", "f1"):
        fig.add_bar(x=per_class["class"], y=per_class[metric], name=metric)
    fig.update_layout(title="Per-class precision, recall and F1 (test split)", barmode="group",
                      yaxis_range=[0, 1])
    return fig


def note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def fig_best_curve_per_block(curves: pd.DataFrame):
    """The learning curve of the best trial of each block type, on one plot."""
    if curves.empty:
        return None
    fig = go.Figure()
    for block, g in curves.groupby("block"):
        fig.add_trace(go.Scatter(x=g["epoch"], y=g["val_accuracy"], mode="lines+markers",
                                 name=f"{block} (trial {g['number'].iloc[0]})",
                                 line=dict(color=BLOCK_COLOURS.get(str(block)))))
    fig.update_layout(title="The best trial of each block type, epoch by epoch", xaxis_title="epoch",
                      yaxis_title="val accuracy")
    return fig


def fig_front(front: pd.DataFrame):
    """Each exported file of the front by its own measured test accuracy against its batch-1 latency."""
    rows = [{"trial": r["trial"], "format": col.removesuffix("_latency_ms"), "latency_ms": r[col],
             "test_accuracy": r[col.replace("_latency_ms", "_accuracy")]}
            for _, r in front.iterrows() for col in front.columns
            if col.endswith("_latency_ms") and pd.notna(r[col])]
    fig = px.line(pd.DataFrame(rows).sort_values("latency_ms"), x="latency_ms", y="test_accuracy", color="format",
                  markers=True, hover_data=["trial"], log_x=True,
                  labels={"latency_ms": "ms per image at batch 1 (measured on the file)", "test_accuracy": "test accuracy"})
    fig.update_layout(title="The front's exported models, measured")
    return fig
