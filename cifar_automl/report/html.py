"""The comparison report: tables from `tables.py` and figures from `figures.py` in one self-contained page.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from PIL import Image
from plotly.offline import get_plotlyjs

from .. import __version__
from ..errors import UserError
from ..results import (
    Bundle,
    best_retrained,
    load_bundle,
    retrain_dir,
    retrain_summaries,
)
from ..study import load_existing_study
from . import figures as F
from . import tables
from .figures import note


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
    study, _ = load_existing_study(study_name, storage, studies_dir)
    others = [load_existing_study(name, storage, studies_dir)[0] for name in compare or []]
    out_dir = Path(out) if out else Path(studies_dir) / study_name / "report"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create report folder {out_dir}: {e.strerror}") from None

    frame = tables.trials_frame(study)
    all_frames = pd.concat([frame, *(tables.trials_frame(s) for s in others)], ignore_index=True)
    baselines = pd.concat([tables.baseline_rows(s) for s in [study, *others]], ignore_index=True)
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


def _best_retrain(study: optuna.Study, studies_dir: str | Path) -> Bundle | None:
    trial = best_retrained(study)
    if trial is None:
        return None
    path = Path(retrain_summaries(study)[trial].get("path", ""))
    if not path.is_dir():  # the study moved: look in the default place
        path = retrain_dir(studies_dir, study.study_name, trial)
    return load_bundle(path, trial)


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
            [table_html(blocks), F.figure(lambda: F.fig_best_so_far_by_block(tables.best_so_far(all_frames))),
             F.figure(lambda: F.fig_block_box(tables.finished(all_frames)))],
        ),
        Section(
            "Search behaviour",
            "How the search spent its trials: the optimization history, best so far against wall time, "
            "the learning curves behind pruning (pruned trials grey), which parameters mattered, and "
            "how accuracy moves with each choice.",
            [
                F.figure(lambda: optuna.visualization.plot_optimization_history(study), need=finished, n=1),
                F.figure(lambda: F.fig_best_vs_wall_time(frame), need=finished, n=1),
                F.figure(lambda: F.fig_learning_curves(tables.learning_curves(study))),
                F.figure(lambda: F.importances(study), need=finished, n=3),
                F.figure(lambda: optuna.visualization.plot_parallel_coordinate(study, params=F.common_params(study)),
                        need=finished, n=2),
                F.figure(lambda: optuna.visualization.plot_slice(study, params=F.common_params(study)),
                        need=finished, n=1),
                F.figure(lambda: optuna.visualization.plot_timeline(study), need=frame, n=1),
            ],
        ),
        Section(
            "Accuracy vs cost",
            "Each finished trial by validation accuracy against parameters and against seconds per "
            "epoch on this machine; the line joins the Pareto front (nothing both cheaper and better).",
            [F.figure(lambda: F.fig_pareto(finished, pareto_params, "params", "parameters", log=True), need=finished, n=1),
             F.figure(lambda: F.fig_pareto(finished, pareto_time, "epoch_seconds", "seconds per epoch"),
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


def retrained_section(r: Bundle | None) -> Section:
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
        F.figure(lambda: F.fig_history(r.history)),
        F.figure(lambda: F.fig_confusion(r.confusion)),
        F.figure(lambda: F.fig_per_class(r.per_class)),
    ]
    names = r.class_names
    if "misclassified" in r.samples and len(r.samples["misclassified"]):
        s = r.samples
        captions = [f"true {html.escape(names[t])}<br>pred {html.escape(names[p])}"
                    for t, p in zip(s["misclassified_true"], s["misclassified_pred"])]
        parts.append("<h3>Misclassified test images</h3>" + image_grid(s["misclassified"], captions))
    if "per_class" in r.samples:
        s = r.samples
        parts.append("<h3>Test images per class</h3>"
                     + image_grid(s["per_class"], [html.escape(names[c]) for c in s["per_class_label"]]))
    return Section(title, f"Trial {r.trial} retrained on all training data and evaluated once on the "
                   f"held-out test split ({r.path}).", parts)


def image_grid(images: np.ndarray, captions: list[str], scale: int = 3) -> str:
    """Images as inline PNGs (no network, no plotly), enlarged with crisp pixels. `captions` are HTML:
    escape what comes from the user (class names) before."""
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


def markdown_summary(summary: dict[str, Any], board: pd.DataFrame, blocks: pd.DataFrame,
                     retrained: Bundle | None) -> str:
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
