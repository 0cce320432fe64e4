"""The sections of the report page, each from tables computed once (`ReportData`) and the figures of
`figures.py`. A part that cannot be drawn (no retrain yet, too few trials) is said instead."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import pandas as pd
from PIL import Image

from ..results import Bundle
from . import figures as F
from . import tables
from .figures import note
from .format import readable


@dataclass
class Section:
    title: str
    intro: str
    parts: list[str]  # HTML fragments: figures, tables, notes


@dataclass
class ReportData:
    """Everything the report shows, computed once: each table is written as CSV and drawn in the page."""

    study: optuna.Study
    others: list[optuna.Study]
    frame: pd.DataFrame  # one row per trial (tables.trials_frame)
    all_frames: pd.DataFrame  # the same for the compared studies too
    summary: dict[str, Any]
    headline: str
    retrained: Bundle | None
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # name -> table (and <name>.csv)


def build_sections(d: ReportData) -> list[Section]:
    t, study, frame = d.tables, d.study, d.frame
    done = tables.finished(frame)
    compared = f" Compared studies: {', '.join(s.study_name for s in [study, *d.others])}." if d.others else ""
    sections = [
        Section("Leaderboard", "Best finished trials by validation accuracy, with their main choices, size and "
                "cost; test accuracy for retrained trials. Textbook models trained on the same data follow as "
                "baseline rows, with their test accuracy.", [table_html(t["leaderboard"])]),
        Section("What the search bought",
                "The best validation accuracy found after each share of the compute (the training time of all "
                "trials, in trial order), against the space's defaults, or, in a space without defaults, the "
                "first complete trial. Then how well each epoch's validation accuracy ranked the trials that "
                "trained to the end (Spearman's rank correlation with their final score): near 1, pruning at "
                "that epoch keeps the right trials; near 0, it keeps them by chance.",
                [table_html(t["search_value"]),
                 F.figure(lambda: F.fig_search_value(tables.best_so_far(frame, by=None, scored=("complete",)),
                                                    t["search_value"]),
                          need=done, n=1),
                 table_html(t["fidelity_ranking"]),
                 *random_search_parts(t["random_search"])]),
        Section("Block types compared",
                "Does inception or residual beat plain? Best and median validation accuracy per block type, "
                "the best retrained trial's test accuracy, the textbook models beside them, and the best-so-far "
                "accuracy of each block type against the compute spent on it." + compared,
                [table_html(t["blocks"]),
                 F.figure(lambda: F.fig_best_so_far_by_block(tables.best_so_far(d.all_frames))),
                 F.figure(lambda: F.fig_block_box(tables.finished(d.all_frames))),
                 F.figure(lambda: F.fig_best_curve_per_block(t["best_curves"]), need=done, n=1)]),
        Section("What each choice bought",
                "For each searched choice, every option's trials: the best, median and spread (interquartile "
                "range) of their validation accuracy, and their median time per epoch. Then the same at equal "
                "training: the median validation accuracy of each option after the same number of epochs, "
                "so that an option is not judged by trials that happened to train longer.",
                [table_html(t["choices"]), table_html(t["choices_at_equal_epochs"])]),
        Section("Search behaviour",
                "How the search spent its trials: the optimization history, best so far against wall time, the "
                "learning curves behind pruning (pruned trials grey), which parameters mattered, and how "
                "accuracy moves with each choice.",
                [F.figure(lambda: optuna.visualization.plot_optimization_history(study, **F.on_accuracy(study)), need=done, n=1),
                 F.figure(lambda: F.fig_best_vs_wall_time(frame), need=done, n=1),
                 F.figure(lambda: F.fig_learning_curves(tables.learning_curves(study))),
                 F.figure(lambda: F.importances(study), need=done, n=3),
                 F.figure(lambda: optuna.visualization.plot_parallel_coordinate(study, params=F.common_params(study),
                                                                         **F.on_accuracy(study)),
                          need=done, n=2),
                 F.figure(lambda: optuna.visualization.plot_slice(study, params=F.common_params(study),
                                                          **F.on_accuracy(study)), need=done, n=1),
                 F.figure(lambda: optuna.visualization.plot_timeline(study), need=frame, n=1)]),
        Section("Accuracy vs cost",
                "Each finished trial by validation accuracy against parameters and against seconds per epoch on "
                "this machine; the line joins the Pareto front (nothing both cheaper and better).",
                [F.figure(lambda: F.fig_pareto(done, t["pareto_params"], "params", "parameters", log=True),
                          need=done, n=1),
                 F.figure(lambda: F.fig_pareto(done, t["pareto_epoch_time"], "epoch_seconds", "seconds per epoch"),
                          need=done, n=1),
                 *front_parts(t["front"])]),
        retrained_section(d.retrained),
    ]
    return sections


def random_search_parts(table: pd.DataFrame) -> list[str]:
    """A replay recording (every configuration of a grid trained to the end): what random search over
    the grid finds after k trials, the yardstick every search method on that grid is measured against."""
    if table.empty:
        return []
    return ["<h3>Random search over this recording</h3>",
            note("This study recorded every configuration of a grid, trained to the end in a random order. "
                 "What random search over the grid finds after k trials, over every order it could draw them "
                 "in: the expected best validation accuracy, its 10th and 90th percentiles, and this "
                 "recording's own order; compute is k trials of the recording's mean training time."),
            table_html(table), F.figure(lambda: F.fig_random_search(table))]


def front_parts(front: pd.DataFrame) -> list[str]:
    """A search of several objectives: its front, what retraining and exporting its models measured
    (`retrain --pareto`, `export --pareto`), as a table and a figure."""
    if front.empty:
        return []
    parts = ["<h3>The searched front, retrained and exported</h3>", table_html(front)]
    if front.filter(like="_latency_ms").notna().any().any():
        parts.append(F.figure(lambda: F.fig_front(front)))
    return parts


def retrained_section(r: Bundle | None) -> Section:
    title = "The retrained model"
    if r is None:
        return Section(title, "", [note("No trial has been retrained yet: run `cifar-automl retrain "
                                        "--study-name NAME` to train the best configuration on all "
                                        "training data and evaluate it on the test split.")])
    m = r.metrics
    facts = {
        "trial": r.trial, "accuracy": m.get("accuracy"), "loss": m.get("loss"),
        "macro F1": m.get("macro_f1"), "weighted F1": m.get("weighted_f1"),
        "ROC AUC (one-vs-rest)": m.get("roc_auc_ovr"), "top3_accuracy": m.get("top3_accuracy"),
        "epochs": m.get("epochs"), "train_minutes": m.get("train_minutes"), "params": m.get("params"),
        "latency_ms_batch1": m.get("latency_ms_batch1"), "latency_ms_batch256": m.get("latency_ms_batch256"),
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


def table_html(frame: pd.DataFrame | None) -> str:
    """A table with readable numbers (format.readable), in a box that scrolls when it is wide."""
    if frame is None or frame.empty:
        return note("No rows yet.")
    table = readable(frame).to_html(index=False, classes="table", border=0, escape=True, na_rep="")
    return f'<div class="scroll">{table}</div>'
