"""Command line: each command parses its flags, calls one library function and returns an exit code.

Errors a user can cause end in one line on stderr and exit code 2; Ctrl-C ends with 130 after the
study is left consistent.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from typing import Any, Callable, Sequence

from . import __version__
from .config import TTA_MODES
from .errors import UserError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
AUTO_TRIALS = 10_000  # `auto` searches until its share of the budget is spent, unless --trials says less


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (with a pointer to --help), not the whole usage text."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _subset(text: str) -> float | int | None:
    from .data import parse_subset

    try:
        return parse_subset(text)
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _duration(text: str) -> float:
    from .auto import parse_duration

    try:
        return parse_duration(text)
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _add_data_args(p: argparse.ArgumentParser) -> None:
    from .data import DATASETS

    g = p.add_argument_group("data")
    g.add_argument("--dataset", default="cifar10", choices=DATASETS, help="data set (default: %(default)s)")
    g.add_argument(
        "--data-dir",
        help="local copy: cifar-10-python.tar.gz or its folder, IDX .gz files, or an image tree "
        "(ROOT/train/<class>/*.jpg or ROOT/<class>/*.jpg; a .tar.gz of one works too)",
    )
    g.add_argument("--image-size", type=int, help="resize folder images to this size (default: most common)")
    g.add_argument("--cache-dir", help="where decoded arrays are cached (default: ~/.cache/cifar-automl)")


def _search_settings(args: argparse.Namespace, **overrides: Any) -> Any:
    from .search import SearchSettings

    values = dict(
        space=args.space, dataset=args.dataset, data_dir=args.data_dir, image_size=args.image_size,
        subset=args.subset, val_fraction=args.val_fraction, test_fraction=args.test_fraction,
        trials=args.trials, epochs=args.epochs, timeout=args.timeout, seed=args.seed,
        sampler=args.sampler, pruner=args.pruner, study_name=args.study_name, storage=args.storage,
        studies_dir=args.studies_dir, cache_dir=args.cache_dir, mixed_precision=args.mixed_precision,
        trials_per_process=args.trials_per_process, heartbeat=args.heartbeat, workers=args.workers,
        warm_start=args.warm_start,
    )
    values.update(overrides)
    return SearchSettings(**values)


def _search(args: argparse.Namespace, settings: Any, *, budgeted: bool = False) -> tuple[int, Any, Any]:
    """Run a search with progress on the terminal; returns (exit code, outcome, splits).

    `budgeted`: `auto` gave the search a time share, so its timeout is the plan, not an early stop.
    """
    from .report import TERMINAL_COLUMNS, format_table, leaderboard, trials_frame
    from .search import TIMEOUT_REACHED, SearchReporter, prepare, run_search

    prepared = prepare(settings)
    space, splits = prepared
    info = splits.info
    header = (
        f"space '{space.name}' ({', '.join(space.block_choices)}) | {info['dataset']} "
        f"{'x'.join(str(d) for d in info['image_shape'])}, {len(splits.class_names)} classes | "
        f"train {info['n_train']}, val {info['n_val']} (test {info['n_test']} held out)"
        + (f" | {info['skipped_files']} unreadable images skipped" if info.get("skipped_files") else "")
    )
    reporter = SearchReporter(quiet=args.quiet, header=header, open_ended=settings.trials >= AUTO_TRIALS)
    outcome = run_search(settings, prepared=prepared, reporter=reporter)
    study = outcome.study
    board = leaderboard(trials_frame(study), top=args.top, columns=TERMINAL_COLUMNS)
    print(format_table(board))
    resume = "cifar-automl " + shlex.join(args.argv)
    if budgeted and not outcome.interrupted and outcome.stopped_reason == TIMEOUT_REACHED:
        _say(f"study '{study.study_name}': the search's share of the budget is spent: {outcome.finished} "
             f"finished trials ({outcome.ran} run now, {outcome.seconds / 60:.1f} min) in {outcome.storage_url}")
        return 0, outcome, splits
    _say(
        f"study '{study.study_name}': {outcome.finished}/{settings.trials} finished trials "
        f"({outcome.ran} run now, {outcome.seconds / 60:.1f} min) in {outcome.storage_url}"
    )
    if outcome.interrupted:
        _say(f"interrupted: the study is saved; resume with: {resume}")
        return EXIT_INTERRUPTED, outcome, splits
    if outcome.stopped_reason:
        _say(f"stopped early: {outcome.stopped_reason}; resume with: {resume}")
        return (1 if "failed" in outcome.stopped_reason else 0), outcome, splits
    _say(f"watch it live: optuna-dashboard {outcome.storage_url}")
    return 0, outcome, splits


def cmd_search(args: argparse.Namespace) -> int:
    """Create or resume a study and run trials until it holds --trials finished trials."""
    return _search(args, _search_settings(args))[0]


def cmd_auto(args: argparse.Namespace) -> int:
    """Search, retrain a winner and write the report, all within --budget of wall time."""
    import time

    from .auto import choose_retrain, plan_budget, study_trials
    from .pipeline import matching_tta
    from .report_html import write_report
    from .retrain import RetrainSettings, load_study_data, retrain_dir, retrain_trial

    start = time.time()
    if args.timeout is not None:
        raise UserError("auto plans the search time from --budget and --search-share: leave out --timeout")
    plan = plan_budget(args.budget, args.search_share)
    _say(plan.describe())
    code, outcome, search_splits = _search(
        args, _search_settings(args, timeout=plan.search, prune_at_timeout=True), budgeted=True
    )
    if code != 0:
        return code
    study = outcome.study
    rs = RetrainSettings(study_name=study.study_name, storage=args.storage, studies_dir=args.studies_dir,
                         seed=args.seed, cache_dir=args.cache_dir, overwrite=args.overwrite,
                         progress=not args.quiet)
    splits, ss = load_study_data(study, rs)
    left = start + plan.total - plan.reserve - time.time()
    choice = choose_retrain(
        study_trials(study), left, retrain_images=len(splits.x_train) + len(splits.x_val),
        search_train_images=search_splits.info["n_train"], test_images=len(splits.y_test),
    )
    trial = study.get_trials(deepcopy=False)[choice.trial]
    out = retrain_dir(args.studies_dir, study.study_name, choice.trial)
    if out.exists() and not args.overwrite:
        raise UserError(f"{out} already exists (the search is saved): pass --overwrite, or run cifar-automl "
                        f"retrain --study-name {study.study_name} --trial {choice.trial} --epochs {choice.epochs} --overwrite")
    tta = matching_tta(trial.user_attrs["config"]["train"]["augment"])
    _say(f"retrain trial {choice.trial} (val {choice.val_accuracy:.4f}, {choice.reason}) for {choice.epochs} "
         f"epochs of ~{choice.epoch_seconds / 60:.1f} min on {len(splits.x_train) + len(splits.x_val)} images"
         f"{'' if tta == 'none' else f', {tta} TTA'}; {left / 60:.0f} min left")
    rs = dataclasses.replace(rs, trial=choice.trial, epochs=choice.epochs, tta=tta)
    result = retrain_trial(study, trial, splits, ss, rs)
    page = write_report(study.study_name, storage=args.storage, studies_dir=args.studies_dir)
    m = result.metrics
    used = time.time() - start
    print(f"trial {choice.trial}: test accuracy {m['accuracy']:.4f} after {choice.epochs} epochs; "
          f"{used / 60:.1f} of {plan.total / 60:.0f} min used -> {out}")
    print(f"report: {page}")
    return 0


def cmd_spaces(args: argparse.Namespace) -> int:
    """List the built-in search spaces, or print one as YAML."""
    from .spaces import builtin_space_dir, list_spaces, load_space

    if args.name:
        space = load_space(args.name)
        print(open(space.source).read(), end="")
        return 0
    for name in list_spaces():
        space = load_space(name)
        print(f"{name:<10} {', '.join(space.block_choices):<28} {space.description.splitlines()[0][:80]}")
    print(f"\n(files in {builtin_space_dir()}; pass --space NAME or --space path/to/your.yaml)")
    return 0


def cmd_retrain(args: argparse.Namespace) -> int:
    """Retrain the best trial (or --trial N, or the --top K) on all training data and test it."""
    from .retrain import RetrainSettings, retrain

    results = retrain(RetrainSettings(
        study_name=args.study_name, storage=args.storage, studies_dir=args.studies_dir, trial=args.trial,
        top=args.top, epochs=args.epochs, seed=args.seed, early_stopping=args.early_stopping,
        patience=args.patience, val_fraction=args.val_fraction, data_dir=args.data_dir,
        cache_dir=args.cache_dir, tta="flip" if args.tta_flip else args.tta, overwrite=args.overwrite, progress=not args.quiet,
    ))
    for r in results:
        m = r.metrics
        print(
            f"trial {r.trial}: test accuracy {m['accuracy']:.4f} (search val {m['val_accuracy_search']:.4f}), "
            f"loss {m['loss']:.4f}, macro F1 {m['macro_f1']:.4f}, {m['epochs']} epochs in "
            f"{m['train_minutes']:.1f} min, {m['latency_ms_batch1']:.2f} ms/image -> {r.out_dir}"
        )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Export a retrained model as .keras, SavedModel, TFLite or ONNX (preprocessing included)."""
    from pathlib import Path

    from .export import FORMATS, export_model
    from .retrain import MODEL_FILE, retrain_dir

    if args.model:
        model_path = Path(args.model)
    else:
        if not args.study_name:
            raise UserError("pass --study-name (with --trial) or --model PATH")
        trial = args.trial if args.trial is not None else _best_retrained(args)
        model_path = retrain_dir(args.studies_dir, args.study_name, trial) / MODEL_FILE
        if not model_path.is_file():
            raise UserError(f"trial {trial} has not been retrained (no {model_path}): run cifar-automl retrain first")
    written = []
    for fmt in args.format:
        out = Path(args.out) if args.out and len(args.format) == 1 else (
            Path(args.out or model_path.parent / "export") / f"model{FORMATS[fmt]}")
        written.append(export_model(model_path, fmt, out, overwrite=args.overwrite))
        print(f"{fmt}: {written[-1]}")
    return 0


def _best_retrained(args: argparse.Namespace) -> int:
    from .report import best_retrained
    from .search import load_existing_study

    study, _ = load_existing_study(args.study_name, args.storage, args.studies_dir)
    trial = best_retrained(study)
    if trial is None:
        raise UserError(f"no trial of study '{args.study_name}' has been retrained: run cifar-automl retrain first")
    return trial


def cmd_predict(args: argparse.Namespace) -> int:
    """Classify images (files or folders) with a saved model: top-k classes with probabilities."""
    from .predict import predict_files

    results = predict_files(args.model, args.images, top_k=args.top_k)
    if not results:
        raise UserError("no images found in the given paths")
    for r in results:
        if r.error:
            print(f"cifar-automl: error: {r.error}", file=sys.stderr)
        else:
            print(f"{r.path}: " + ", ".join(f"{name} {p:.3f}" for name, p in r.top or []))
    return EXIT_USAGE if any(r.error for r in results) else 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write the comparison report (HTML page, CSV tables, Markdown summary) of a study."""
    from .report_html import write_report

    page = write_report(args.study_name, storage=args.storage, studies_dir=args.studies_dir,
                        compare=args.compare, out=args.out)
    print(f"report: {page}")
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Serve optuna-dashboard on a study's storage: live learning curves, parameters, user attributes."""
    from pathlib import Path

    import optuna_dashboard

    from .search import default_storage_url, load_existing_study, open_storage

    if args.storage:
        url = args.storage
    elif args.study_name:
        url = default_storage_url(args.studies_dir, args.study_name)
    else:
        dbs = sorted(Path(args.studies_dir).glob("*.db"))
        if len(dbs) != 1:
            found = ", ".join(p.stem for p in dbs) or "none"
            raise UserError(f"pass --study-name or --storage (study databases in {args.studies_dir}: {found})")
        url = f"sqlite:///{dbs[0]}"
    if args.study_name:
        load_existing_study(args.study_name, url)  # a clear error for a wrong name or path
    elif url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise UserError(f"no study database at {url.removeprefix('sqlite:///')}")
    storage = open_storage(url)
    print(f"optuna-dashboard on {url}: http://{args.host}:{args.port}/dashboard/ (Ctrl-C to stop)", flush=True)
    try:
        optuna_dashboard.run_server(storage, host=args.host, port=args.port)
    except OSError as e:
        raise UserError(f"cannot serve on {args.host}:{args.port}: {e.strerror}") from None
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    """Train a textbook reference CNN with its own recipe, test it, and keep it next to a study."""
    from .baseline import BaselineSettings, build_preset, run_baseline
    from .presets import PRESETS

    if args.list:
        for name, preset in PRESETS.items():
            shape = preset.default_shape
            params = build_preset(preset, shape, 10).count_params()
            print(f"{name:<17} {params:>11,} params on {'x'.join(map(str, shape))}, 10 classes | "
                  f"{preset.description} | {preset.shape_note}")
        return 0
    if not args.model:
        raise UserError("pass --model NAME (see cifar-automl baseline --list)")
    r = run_baseline(BaselineSettings(
        preset=args.model, study_name=args.study_name, storage=args.storage, studies_dir=args.studies_dir,
        dataset=args.dataset, data_dir=args.data_dir, image_size=args.image_size, cache_dir=args.cache_dir,
        epochs=args.epochs, seed=args.seed, overwrite=args.overwrite, progress=not args.quiet,
    ))
    print(f"{r['preset']}: test accuracy {r['accuracy']:.4f} (val {r['val_accuracy']:.4f}), {r['params']:,} params, "
          f"{r['epochs']} epochs in {r['train_minutes']:.1f} min -> {r['out']} (study '{r['study']}')")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    """Print model.summary() (layers, shapes, parameters) of a preset or of a study's trial."""
    from .baseline import build_preset
    from .presets import get_preset

    if args.model:
        preset = get_preset(args.model)
        shape = tuple(args.input_shape) if args.input_shape else preset.default_shape
        model = build_preset(preset, shape, args.classes)
    elif args.study_name and args.trial is not None:
        from .config import TrialConfig
        from .models import build_model
        from .retrain import pick_trials
        from .search import load_existing_study

        study, _ = load_existing_study(args.study_name, args.storage, args.studies_dir)
        (trial,) = pick_trials(study, args.trial, 1)
        data = study.user_attrs.get("data", {})
        cfg = TrialConfig.from_dict(trial.user_attrs["config"])
        model = build_model(cfg.arch, data.get("image_shape", (32, 32, 3)), data.get("num_classes", args.classes),
                            name=f"{args.study_name}_trial{trial.number}")
    else:
        raise UserError("pass --model PRESET, or --study-name NAME --trial N")
    model.summary()
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "search": cmd_search, "spaces": cmd_spaces, "retrain": cmd_retrain, "export": cmd_export,
    "predict": cmd_predict, "report": cmd_report, "dashboard": cmd_dashboard, "baseline": cmd_baseline,
    "summary": cmd_summary, "auto": cmd_auto,
}


def _add_search_args(p: argparse.ArgumentParser, d: Any) -> None:
    from .search import PRUNERS, SAMPLERS

    p.add_argument("--space", default=d.space, help="built-in space name or path to a YAML file (default: %(default)s)")
    p.add_argument("--trials", type=int, default=d.trials, help="finished trials the study must hold (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=d.epochs, help="max epochs per trial (default: %(default)s)")
    p.add_argument("--timeout", type=float, help="stop starting new trials after this many seconds")
    p.add_argument("--subset", type=_subset, default=d.subset,
                   help="images for train+val: a count or a fraction of the training pool, 1.0 = all (default: %(default)s)")
    p.add_argument("--val-fraction", type=float, default=d.val_fraction, help="validation share of the subset (default: %(default)s)")
    p.add_argument("--test-fraction", type=float, default=d.test_fraction,
                   help="test share carved from the data when it has no test split (default: %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed for sampling, splits and training (default: %(default)s)")
    p.add_argument("--sampler", choices=SAMPLERS, default=d.sampler, help="(default: %(default)s)")
    p.add_argument("--pruner", choices=PRUNERS, default=d.pruner, help="per-epoch pruning on val accuracy (default: %(default)s)")
    p.add_argument("--study-name", help="default: the space's name")
    p.add_argument("--storage", help="Optuna storage URL (default: sqlite:///STUDIES_DIR/STUDY_NAME.db)")
    p.add_argument("--studies-dir", default=d.studies_dir, help="home of study databases and artifacts (default: %(default)s)")
    p.add_argument("--mixed-precision", action="store_true", help="float16 compute on a GPU (bfloat16 on a CPU)")
    p.add_argument("--trials-per-process", type=int, default=d.trials_per_process,
                   help="trials per worker process before a fresh one takes over, keeping memory flat; "
                   "0 runs trials in this process (default: %(default)s)")
    p.add_argument("--warm-start", metavar="baselines|STUDY",
                   help="try first the presets this space can express, or the 5 best trials of another study")
    p.add_argument("--workers", type=int, default=d.workers,
                   help="worker processes training at once on this machine (default: %(default)s)")
    p.add_argument("--heartbeat", type=int, default=d.heartbeat,
                   help="seconds between heartbeats of a running trial (database storages); a trial silent "
                   "for 3 heartbeats is failed and re-run with the same parameters (default: %(default)s)")
    p.add_argument("--top", type=int, default=10, help="rows of the final table (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-trial lines")
    _add_data_args(p)


def build_parser() -> argparse.ArgumentParser:
    from .auto import SEARCH_SHARE
    from .search import SearchSettings

    d = SearchSettings()
    parser = _Parser(prog="cifar-automl", description="AutoML search for Keras image classifiers.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("search", help=cmd_search.__doc__, description=cmd_search.__doc__)
    _add_search_args(p, d)

    p = sub.add_parser("auto", help=cmd_auto.__doc__, description=cmd_auto.__doc__)
    p.add_argument("--budget", type=_duration, required=True,
                   help="wall time for search + retrain + test + report, e.g. 2h, 90m, 1h30m")
    p.add_argument("--search-share", type=float, default=SEARCH_SHARE,
                   help="share of the budget spent searching (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier retrain of the chosen trial")
    _add_search_args(p, dataclasses.replace(d, trials=AUTO_TRIALS))

    p = sub.add_parser("spaces", help=cmd_spaces.__doc__, description=cmd_spaces.__doc__)
    p.add_argument("name", nargs="?", help="print this space's YAML")

    from .export import FORMATS
    from .retrain import EPOCH_MULTIPLIER, RetrainSettings

    r = RetrainSettings(study_name="")
    p = sub.add_parser("retrain", help=cmd_retrain.__doc__, description=cmd_retrain.__doc__)
    _add_study_args(p)
    p.add_argument("--trial", type=int, help="trial number (default: the best)")
    p.add_argument("--top", type=int, default=r.top, help="retrain the top K trials (default: %(default)s)")
    p.add_argument("--epochs", type=int, help=f"default: {EPOCH_MULTIPLIER} x the search's epochs per trial")
    p.add_argument("--seed", type=int, default=r.seed)
    p.add_argument("--early-stopping", action="store_true",
                   help="keep --val-fraction aside, stop when val accuracy stalls, restore the best weights")
    p.add_argument("--patience", type=int, default=r.patience, help="epochs without improvement (default: %(default)s)")
    p.add_argument("--val-fraction", type=float, default=r.val_fraction, help="(default: %(default)s)")
    p.add_argument("--data-dir", help="where the study's data is now, if it moved since the search")
    p.add_argument("--cache-dir")
    p.add_argument("--tta", choices=TTA_MODES, default="none",
                   help="average test predictions over mirrored (flip) and also 1-pixel-moved (flip_translate) "
                        "views (default: %(default)s)")
    p.add_argument("--tta-flip", action="store_true", help="the same as --tta flip")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier retrain of the same trial")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("export", help=cmd_export.__doc__, description=cmd_export.__doc__)
    _add_study_args(p, required=False)
    p.add_argument("--trial", type=int, help="retrained trial (default: the best retrained one)")
    p.add_argument("--model", help="a .keras file to export instead of a study's retrained model")
    p.add_argument("--format", nargs="+", choices=list(FORMATS), default=["keras"], help="(default: keras)")
    p.add_argument("--out", help="output path (one format) or folder (default: <retrain dir>/export/)")
    p.add_argument("--overwrite", action="store_true")

    p = sub.add_parser("predict", help=cmd_predict.__doc__, description=cmd_predict.__doc__)
    p.add_argument("model", help="a .keras file or a retrain folder (class names from its config.json)")
    p.add_argument("images", nargs="+", help="image files or folders of images")
    p.add_argument("--top-k", type=int, default=3, help="(default: %(default)s)")

    p = sub.add_parser("report", help=cmd_report.__doc__, description=cmd_report.__doc__)
    _add_study_args(p)
    p.add_argument("--compare", nargs="+", default=[], metavar="STUDY",
                   help="other studies (same storage/studies dir) to compare block types with")
    p.add_argument("--out", help="output folder (default: STUDIES_DIR/STUDY_NAME/report)")

    p = sub.add_parser("baseline", help=cmd_baseline.__doc__, description=cmd_baseline.__doc__)
    p.add_argument("--model", help="preset name (see --list)")
    p.add_argument("--list", action="store_true", help="list the presets with their parameter counts")
    p.add_argument("--study-name", help="use this study's data and test split; results go to STUDY-baselines")
    p.add_argument("--storage", help="Optuna storage URL of that study")
    p.add_argument("--studies-dir", default="studies", help="(default: %(default)s)")
    p.add_argument("--epochs", type=int, help="override the recipe's epochs (CPU budgets)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_data_args(p)

    p = sub.add_parser("summary", help=cmd_summary.__doc__, description=cmd_summary.__doc__)
    p.add_argument("--model", help="a preset name")
    p.add_argument("--input-shape", type=int, nargs=3, metavar=("H", "W", "C"), help="(default: the preset's)")
    p.add_argument("--classes", type=int, default=10, help="(default: %(default)s)")
    _add_study_args(p, required=False)
    p.add_argument("--trial", type=int, help="with --study-name: that trial's model")

    p = sub.add_parser("dashboard", help=cmd_dashboard.__doc__, description=cmd_dashboard.__doc__)
    _add_study_args(p, required=False)
    p.add_argument("--host", default="127.0.0.1", help="(default: %(default)s; 0.0.0.0 to serve other machines)")
    p.add_argument("--port", type=int, default=8080, help="(default: %(default)s)")
    return parser


def _add_study_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--study-name", required=required, help="the study (search's default: the space name)")
    p.add_argument("--storage", help="Optuna storage URL (default: sqlite:///STUDIES_DIR/STUDY_NAME.db)")
    p.add_argument("--studies-dir", default="studies", help="(default: %(default)s)")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if not debug:
        from .runtime import import_tensorflow_quietly

        import_tensorflow_quietly()
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    _quiet_libraries(debug)
    try:
        return COMMANDS[args.command](args)
    except UserError as e:
        print(f"cifar-automl: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("cifar-automl: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # an unexpected error: one line, the traceback only on request
        if args.debug:
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        print(f"cifar-automl: unexpected {type(e).__name__}: {first} (rerun with --debug for details)", file=sys.stderr)
        return 1


def _quiet_libraries(debug: bool) -> None:
    import logging

    import optuna

    # each trial gets our own one-line summary; Optuna's per-trial logs would repeat it
    optuna.logging.set_verbosity(optuna.logging.WARNING if debug else optuna.logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)


def _say(message: str) -> None:
    print(message, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
