"""The comparison report: tables from `report.py` rendered as plotly figures in one self-contained page.

`write_report(...)` writes `index.html` (plotly.js embedded once, so it opens from disk with no
network), the tables as CSV and `summary.md`. Figures from Optuna's own `optuna.visualization` where it
has them (history, importances, parallel coordinates, slices, timeline); the rest are small plotly
functions over the report tables. A part that cannot be drawn (no retrain yet, too few trials) is
said in the page instead.
"""

from __future__ import annotations

import base64
import html
import io
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import optuna
import pandas as pd

from . import __version__
from . import report as tables
from .errors import UserError

GREY = "rgba(150,150,150,0.35)"
BLOCK_COLOURS = {"plain": "#1f77b4", "inception": "#ff7f0e", "residual": "#2ca02c"}


@dataclass
class Section:
    title: str
    intro: str
    parts: list[str]  # HTML fragments: figures, tables, notes


def write_report(
    study_name: str,
    storage: str | None = None,
    studies_dir: str | Path = "studies",
    compare: list[str] | None = None,
    out: str | Path | None = None,
) -> Path:
    """Write the report of `study_name` (and `compare` studies in the same storage or studies dir)."""
    from .search import load_existing_study

    study, _ = load_existing_study(study_name, storage, studies_dir)
    others = [load_existing_study(name, storage, studies_dir)[0] for name in compare or []]
    out_dir = Path(out) if out else Path(studies_dir) / study_name / "report"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create report folder {out_dir}: {e.strerror}") from None

    frame = tables.trials_frame(study)
    all_frames = pd.concat([frame, *(tables.trials_frame(s) for s in others)], ignore_index=True)
    baselines = pd.concat([baseline_rows(s) for s in [study, *others]], ignore_index=True)
    summary = tables.summary(study, frame)
    board = tables.leaderboard(frame, top=20)
    blocks = tables.block_comparison(all_frames)
    pareto_params = tables.pareto_front(frame, "params")
    pareto_time = tables.pareto_front(frame, "epoch_seconds")
    retrained = _best_retrain(study, studies_dir)

    frame.drop(columns=["datetime_start", "datetime_complete"]).to_csv(out_dir / "trials.csv", index=False)
    board.to_csv(out_dir / "leaderboard.csv", index=False)
    blocks.to_csv(out_dir / "blocks.csv", index=False)
    pareto_params.to_csv(out_dir / "pareto_params.csv", index=False)
    pareto_time.to_csv(out_dir / "pareto_epoch_time.csv", index=False)
    pd.Series(summary).to_csv(out_dir / "summary.csv", header=["value"])
    (out_dir / "summary.md").write_text(markdown_summary(summary, board, blocks, retrained))

    baselines.to_csv(out_dir / "baselines.csv", index=False)
    sections = build_sections(study, others, frame, all_frames, summary, board, blocks,
                              pareto_params, pareto_time, retrained, baselines)
    page = render_page(f"cifar-automl report: {study_name}", summary, sections)
    (out_dir / "index.html").write_text(page, encoding="utf-8")
    return out_dir / "index.html"


def _best_retrain(study: optuna.Study, studies_dir: str | Path) -> tables.RetrainArtifacts | None:
    trial = tables.best_retrained(study)
    if trial is None:
        return None
    path = Path(tables.retrain_summaries(study)[trial].get("path", ""))
    if not path.is_dir():  # the study moved: look in the default place
        path = Path(studies_dir) / study.study_name / "retrain" / str(trial)
    return tables.load_retrain(path, trial)


# --------------------------------------------------------------------------- sections


def baseline_rows(study: optuna.Study) -> pd.DataFrame:
    """The reference models kept for `study` (cifar-automl baseline), one row each."""
    from .baseline import reference_trials

    rows = [{
        "study": study.study_name, "baseline": t.user_attrs["baseline"],
        "val_accuracy": t.user_attrs.get("val_accuracy"), "test_accuracy": t.user_attrs.get("test_accuracy"),
        "params": t.user_attrs.get("params"), "epochs_run": t.user_attrs.get("epochs_run"),
        "minutes": sum(t.user_attrs.get("epoch_seconds", [])) / 60,
        "description": t.user_attrs.get("description"),
    } for t in reference_trials(study)]
    return pd.DataFrame(rows)


def build_sections(study, others, frame, all_frames, summary, board, blocks, pareto_params,
                   pareto_time, retrained, baselines) -> list[Section]:
    finished = tables.finished(frame)
    sections = [
        Section("Leaderboard", "Best finished trials by validation accuracy, with their main choices, "
                "size and cost. Test accuracy appears for retrained trials.", [table_html(board)]),
        Section(
            "Block types compared",
            "Does inception or residual beat plain? Best and median validation accuracy per block type, "
            "and the best-so-far accuracy of each against the compute spent on it."
            + (f" Compared studies: {', '.join(s.study_name for s in [study, *others])}." if others else ""),
            [table_html(blocks), _figure(lambda: fig_best_so_far_by_block(tables.best_so_far(all_frames))),
             _figure(lambda: fig_block_box(tables.finished(all_frames)))],
        ),
        Section(
            "Search behaviour",
            "How the search spent its trials: the optimization history, best so far against wall time, "
            "the learning curves behind pruning (pruned trials grey), which parameters mattered, and "
            "how accuracy moves with each choice.",
            [
                _figure(lambda: optuna.visualization.plot_optimization_history(study), need=finished, n=1),
                _figure(lambda: fig_best_vs_wall_time(frame), need=finished, n=1),
                _figure(lambda: fig_learning_curves(tables.learning_curves(study))),
                _figure(lambda: _importances(study), need=finished, n=3),
                _figure(lambda: optuna.visualization.plot_parallel_coordinate(study, params=_common_params(study)),
                        need=finished, n=2),
                _figure(lambda: optuna.visualization.plot_slice(study, params=_common_params(study)),
                        need=finished, n=1),
                _figure(lambda: optuna.visualization.plot_timeline(study), need=frame, n=1),
            ],
        ),
        Section(
            "Accuracy vs cost",
            "Each finished trial by validation accuracy against parameters and against seconds per "
            "epoch on this machine; the line joins the Pareto front (nothing both cheaper and better).",
            [_figure(lambda: fig_pareto(finished, pareto_params, "params", "parameters", log=True), need=finished, n=1),
             _figure(lambda: fig_pareto(finished, pareto_time, "epoch_seconds", "seconds per epoch"),
                     need=finished, n=1)],
        ),
        retrained_section(retrained),
    ]
    if not baselines.empty:
        best_test = summary.get("retrain test accuracy")
        intro = ("Textbook reference models trained with their own recipes (`cifar-automl baseline`) on "
                 "the same data and evaluated on the same test split"
                 + (f"; the retrained search winner reached {best_test:.4f}." if best_test else "."))
        sections.insert(1, Section("Baselines", intro, [table_html(baselines)]))
    return sections


def retrained_section(r: tables.RetrainArtifacts | None) -> Section:
    title = "The retrained model"
    if r is None:
        return Section(title, "", [note("No trial has been retrained yet: run `cifar-automl retrain "
                                        "--study-name NAME` to train the best configuration on all "
                                        "training data and evaluate it on the test split.")])
    m = r.metrics
    facts = {
        "trial": r.trial, "test accuracy": m.get("accuracy"), "test loss": m.get("loss"),
        "macro F1": m.get("macro_f1"), "weighted F1": m.get("weighted_f1"),
        "ROC AUC (one-vs-rest)": m.get("roc_auc_ovr"), "top-3 accuracy": m.get("top3_accuracy"),
        "epochs": m.get("epochs"), "train minutes": m.get("train_minutes"), "parameters": m.get("params"),
        "ms/image (batch 1)": m.get("latency_ms_batch1"), "ms/image (batch 256)": m.get("latency_ms_batch256"),
    }
    parts = [
        table_html(pd.DataFrame([{k: v for k, v in facts.items() if v is not None}])),
        _figure(lambda: fig_history(r.history)),
        _figure(lambda: fig_confusion(r.confusion)),
        _figure(lambda: fig_per_class(r.per_class)),
    ]
    names = r.class_names
    if "misclassified" in r.samples and len(r.samples["misclassified"]):
        s = r.samples
        captions = [f"true {names[t]}<br>pred {names[p]}" for t, p in zip(s["misclassified_true"], s["misclassified_pred"])]
        parts.append("<h3>Misclassified test images</h3>" + image_grid(s["misclassified"], captions))
    if "per_class" in r.samples:
        s = r.samples
        parts.append("<h3>Test images per class</h3>"
                     + image_grid(s["per_class"], [names[c] for c in s["per_class_label"]]))
    return Section(title, f"Trial {r.trial} retrained on all training data and evaluated once on the "
                   f"held-out test split ({r.path}).", parts)


def _figure(make: Callable[[], Any], need: pd.DataFrame | None = None, n: int = 0) -> str:
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


def _common_params(study: optuna.Study) -> list[str]:
    """Parameters every finished trial has (conditional ones left out), varied in the study."""
    trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
    if not trials:
        return []
    common = set(trials[0].params)
    for t in trials[1:]:
        common &= set(t.params)
    return sorted(p for p in common if len({repr(t.params[p]) for t in trials}) > 1)


def _importances(study: optuna.Study):
    params = _common_params(study)
    if not params:
        raise ValueError("no parameter varies across the finished trials")
    return optuna.visualization.plot_param_importances(study, params=params)


# --------------------------------------------------------------------------- figures


def fig_best_so_far_by_block(curve: pd.DataFrame):
    import plotly.graph_objects as go

    fig = go.Figure()
    for group, g in curve.groupby("group"):
        fig.add_trace(go.Scatter(x=g["trial_hours"], y=g["best_val_accuracy"], mode="lines+markers",
                                 name=str(group), line=dict(shape="hv", color=BLOCK_COLOURS.get(str(group)))))
    fig.update_layout(title="Best validation accuracy vs compute spent, per block type",
                      xaxis_title="trial-hours spent on this block type", yaxis_title="best val accuracy")
    return fig


def fig_block_box(done: pd.DataFrame):
    import plotly.express as px

    if done.empty:
        return None
    fig = px.box(done, x="block", y="val_accuracy", color="block", points="all", hover_data=["number"],
                 color_discrete_map=BLOCK_COLOURS, title="Validation accuracy by block type")
    return fig


def fig_best_vs_wall_time(frame: pd.DataFrame):
    import plotly.graph_objects as go

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


def fig_learning_curves(curves: pd.DataFrame):
    import plotly.graph_objects as go

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
    import plotly.graph_objects as go

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
    from plotly.subplots import make_subplots

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
    import plotly.graph_objects as go

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
    import plotly.graph_objects as go

    fig = go.Figure()
    for metric in ("precision", "recall", "f1"):
        fig.add_bar(x=per_class["class"], y=per_class[metric], name=metric)
    fig.update_layout(title="Per-class precision, recall and F1 (test split)", barmode="group",
                      yaxis_range=[0, 1])
    return fig


# --------------------------------------------------------------------------- HTML


def image_grid(images: np.ndarray, captions: list[str], scale: int = 3) -> str:
    """Images as inline PNGs (no network, no plotly), enlarged with crisp pixels."""
    from PIL import Image

    cells = []
    for img, caption in zip(images, captions):
        arr = img[..., 0] if img.shape[-1] == 1 else img
        buf = io.BytesIO()
        Image.fromarray(arr.astype(np.uint8)).save(buf, format="PNG")
        data = base64.b64encode(buf.getvalue()).decode()
        w = img.shape[1] * scale
        cells.append(f'<figure><img src="data:image/png;base64,{data}" width="{w}" alt="">'
                     f"<figcaption>{caption}</figcaption></figure>")
    return f'<div class="grid">{"".join(cells)}</div>'


def table_html(frame: pd.DataFrame) -> str:
    if frame is None or frame.empty:
        return note("No rows yet.")
    fmt = frame.copy()
    for col in fmt.columns:
        if pd.api.types.is_float_dtype(fmt[col]):
            fmt[col] = fmt[col].map(lambda v: "" if pd.isna(v) else f"{v:.4g}")
    return fmt.to_html(index=False, classes="table", border=0, escape=True, na_rep="")


def note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def markdown_summary(summary: dict[str, Any], board: pd.DataFrame, blocks: pd.DataFrame,
                     retrained: tables.RetrainArtifacts | None) -> str:
    lines = [f"# Study {summary['study']}", "", pd.Series(summary).to_frame("value").to_markdown(), "",
             "## Leaderboard (top 10)", "",
             board.head(10).to_markdown(index=False, floatfmt=".4g") if not board.empty else "(no finished trials)",
             "", "## Block types", "",
             blocks.to_markdown(index=False, floatfmt=".4g") if not blocks.empty else "(none)", ""]
    if retrained is not None:
        lines += [f"## Retrained trial {retrained.trial}", "",
                  f"Test accuracy {retrained.metrics['accuracy']:.4f}, macro F1 {retrained.metrics['macro_f1']:.4f}.", "",
                  retrained.per_class.to_markdown(index=False, floatfmt=".3f"), ""]
    return "\n".join(lines)


def render_page(title: str, summary: dict[str, Any], sections: list[Section]) -> str:
    from plotly.offline import get_plotlyjs

    facts = "".join(
        f"<div class='fact'><span>{html.escape(str(k))}</span><b>{html.escape(_fmt(v))}</b></div>"
        for k, v in summary.items()
    )
    body = []
    for s in sections:
        body.append(f"<section><h2>{html.escape(s.title)}</h2>"
                    + (f"<p>{html.escape(s.intro)}</p>" if s.intro else "")
                    + "".join(f'<div class="part">{p}</div>' for p in s.parts) + "</section>")
    stamp = time.strftime("%Y-%m-%d %H:%M")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 1.5rem; color: #222; }}
h1 {{ margin-bottom: .2rem; }} h2 {{ border-bottom: 2px solid #ddd; padding-bottom: .3rem; margin-top: 2.5rem; }}
.facts {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(210px, 1fr)); gap: .5rem; }}
.fact {{ background: #f5f7fa; border-radius: 6px; padding: .5rem .7rem; }}
.fact span {{ display: block; font-size: .8rem; color: #666; }} .fact b {{ font-size: 1.1rem; }}
table.table {{ border-collapse: collapse; font-size: .85rem; display: block; overflow-x: auto; }}
table.table th, table.table td {{ padding: .25rem .5rem; border-bottom: 1px solid #eee; text-align: right; white-space: nowrap; }}
table.table th {{ background: #f5f7fa; }}
.note {{ background: #fff8e1; border-left: 4px solid #ffb300; padding: .5rem .8rem; }}
.grid {{ display: flex; flex-wrap: wrap; gap: .6rem; }}
.grid figure {{ margin: 0; text-align: center; font-size: .75rem; }}
.grid img {{ image-rendering: pixelated; display: block; border: 1px solid #ccc; }}
.part {{ margin: 1rem 0; }}
</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head><body>
<h1>{html.escape(title)}</h1>
<p>Written by cifar-automl {__version__} on {stamp}. Tables are also in the CSV files beside this page.</p>
<div class="facts">{facts}</div>
{''.join(body)}
</body></html>
"""


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}" if v < 10 else f"{v:,.1f}"
    return str(v)
