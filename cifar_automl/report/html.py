"""The comparison report: `write_report` computes every table once (`tables.py`, `analyses.py`), writes
each as CSV, and draws them with the figures of `figures.py` in one self-contained page (`index.html`,
plotly.js embedded once, so it opens from disk with no network), with a Markdown `summary.md`.
"""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from plotly.offline import get_plotlyjs

from .. import __version__
from ..errors import UserError
from ..results import (
    Bundle,
    best_retrained,
    front_exports,
    load_bundle,
    reference_trials,
    retrain_dir,
    retrain_summaries,
)
from ..study import load_existing_study
from . import analyses, tables
from .format import cell, duration, percent, readable
from .sections import ReportData, build_sections


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

    data = report_data(study, others, studies_dir)
    for name, table in data.tables.items():
        table.to_csv(out_dir / f"{name}.csv", index=False)
    pd.Series(data.summary).to_csv(out_dir / "summary.csv", header=["value"])
    (out_dir / "summary.md").write_text(markdown_summary(data))
    page = render_page(f"cifar-automl report: {study_name}", data.headline, data.summary, build_sections(data))
    (out_dir / "index.html").write_text(page, encoding="utf-8")
    return out_dir / "index.html"


def report_data(study: optuna.Study, others: list[optuna.Study], studies_dir: str | Path) -> ReportData:
    """Every table of the report, computed once."""
    frame = tables.trials_frame(study)
    all_frames = pd.concat([frame, *(tables.trials_frame(s) for s in others)], ignore_index=True)
    baselines = analyses.baselines_table(reference_trials(study, studies_dir))
    summary = tables.summary(study, frame)
    retrain = retrain_summaries(study).get(summary["retrained trial"]) if summary["retrained trial"] is not None else None
    d = ReportData(study, others, frame, all_frames, summary, analyses.headline(summary, frame, baselines, retrain),
                   _best_retrain(study, studies_dir))
    d.tables = {
        "trials": frame.drop(columns=["datetime_start", "datetime_complete"], errors="ignore"),
        "leaderboard": analyses.with_baselines(tables.leaderboard(frame, top=20), baselines),
        "blocks": analyses.blocks_with_baselines(tables.block_comparison(all_frames), baselines, all_frames),
        "baselines": baselines,
        "choices": analyses.choice_table(frame),
        "choices_at_equal_epochs": analyses.choice_at_equal_epochs(study, frame),
        "best_curves": analyses.best_curve_per_block(study, frame),
        "search_value": analyses.search_value(frame),
        "fidelity_ranking": analyses.fidelity_ranking(study, frame),
        "random_search": analyses.random_search_curve(study, frame),
        "pareto_params": tables.pareto_front(frame, "params"),
        "pareto_epoch_time": tables.pareto_front(frame, "epoch_seconds"),
        "front": analyses.front_table(study, retrain_summaries(study), front_exports(study)),
    }
    return d


def _best_retrain(study: optuna.Study, studies_dir: str | Path) -> Bundle | None:
    trial = best_retrained(study)
    if trial is None:
        return None
    path = Path(retrain_summaries(study)[trial].get("path", ""))
    if not path.is_dir():  # the study moved: look in the default place
        path = retrain_dir(studies_dir, study.study_name, trial)
    return load_bundle(path, trial)


def markdown_summary(d: ReportData) -> str:
    summary, board, blocks, retrained = d.summary, d.tables["leaderboard"], d.tables["blocks"], d.retrained
    facts = pd.Series({k: _fmt(k, v) for k, v in summary.items()}).to_frame("value")
    lines = [f"# Study {summary['study']}", "", d.headline, "", facts.to_markdown(), "",
             "## Leaderboard (top 10)", "",
             readable(board.head(10)).to_markdown(index=False) if not board.empty else "(no finished trials)",
             "", "## Block types", "",
             readable(blocks).to_markdown(index=False) if not blocks.empty else "(none)", ""]
    if retrained is not None:
        lines += [f"## Retrained trial {retrained.trial}", "",
                  f"Test accuracy {retrained.metrics['accuracy']:.4f}, macro F1 {retrained.metrics['macro_f1']:.4f}.", "",
                  retrained.per_class.to_markdown(index=False, floatfmt=".3f"), ""]
    return "\n".join(lines)


def render_page(title: str, headline: str, summary: dict[str, Any], sections: list) -> str:
    facts = "".join(
        f"<div class='fact'><span>{html.escape(str(k))}</span><b>{html.escape(_fmt(k, v))}</b></div>"
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
.scroll {{ max-width: 100%; overflow-x: auto; }}
table.table {{ border-collapse: collapse; font-size: .85rem; }}
table.table th, table.table td {{ padding: .25rem .5rem; border-bottom: 1px solid #eee; text-align: right; white-space: nowrap; }}
table.table th {{ background: #f5f7fa; }}
.note {{ background: #fff8e1; border-left: 4px solid #ffb300; padding: .5rem .8rem; }}
.grid {{ display: flex; flex-wrap: wrap; gap: .6rem; }}
.grid figure {{ margin: 0; text-align: center; font-size: .75rem; }}
.grid img {{ image-rendering: pixelated; display: block; border: 1px solid #ccc; }}
.part {{ margin: 1rem 0; }}
.headline {{ font-size: 1.15rem; background: #eef6ee; border-left: 4px solid #2ca02c; padding: .6rem .9rem; }}
</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head><body>
<h1>{html.escape(title)}</h1>
<p>Written by cifar-automl {__version__} on {stamp}. Tables are also in the CSV files beside this page.</p>
<p class="headline">{html.escape(headline)}</p>
<div class="facts">{facts}</div>
{''.join(body)}
</body></html>
"""


def _fmt(key: str, v: Any) -> str:
    """A summary fact as text: accuracies as percentages, times in minutes or hours."""
    if v is None:
        return "-"
    if "accuracy" in key and isinstance(v, float):
        return percent(v)
    if key == "search time":
        return duration(v)
    return cell(key, v)
