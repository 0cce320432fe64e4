"""Command line: each command parses its flags, calls one library function and returns an exit code.

A command is one class here: its docstring is its help, `add_arguments` its flags (most of them read
from the settings class it fills, see `config.option`), `run` its action. Adding a command is one
class and one entry in `COMMANDS`. The table of commands is one concept and is kept in one file,
although it passes 400 lines.

Errors a user can cause end in one line on stderr and exit code 2; Ctrl-C ends with 130 after the
study is left consistent. The `cifar-automl` command starts in `__main__.py`, which imports
TensorFlow quietly before this module imports it.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shlex
import sys
import wsgiref.simple_server
from pathlib import Path
from typing import Any, Callable, Sequence

import optuna
import optuna_dashboard
import pandas as pd

from . import __version__
from .auto import (
    AUTO_TRIALS,
    MIN_SEARCH_TRIALS,
    SEARCH_SHARE,
    default_search_share,
    parse_duration,
    run_auto,
)
from .config import TrialConfig
from .errors import SearchError, UserError
from .models import PRESETS, build_model, build_preset, get_preset
from .report import format_table, leaderboard, trials_frame, write_report
from .report.tables import TERMINAL_COLUMNS
from .results import (
    FORMATS,
    MODEL_FILE,
    BaselineSettings,
    RetrainSettings,
    best_retrained,
    export_front,
    export_model,
    pick_trials,
    predict_files,
    retrain,
    retrain_dir,
    run_baseline,
)
from .results.bundle import model_name
from .results.export import export_path
from .runtime import BACKENDS, select_backend
from .search import (
    TIMEOUT_REACHED,
    SearchOutcome,
    SearchReporter,
    SearchSettings,
    run_search,
)
from .search.space import builtin_space_dir, list_spaces, load_space
from .study import default_storage_url, load_existing_study, open_storage, redact

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (with a pointer to --help), not the whole usage text."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _checked(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """A flag's parser whose UserError becomes argparse's one-line usage error."""

    def call(text: str) -> Any:
        try:
            return parse(text)
        except UserError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    call.__name__ = getattr(parse, "__name__", "value")
    return call


_SCALARS = {"int": int, "float": float, "str": str}


def add_settings_args(p: argparse.ArgumentParser, settings_class: type, **defaults: Any) -> None:
    """Add a flag for every field of `settings_class` declared with `config.option`; `defaults`
    replace the class's own (auto's open-ended --trials)."""
    groups: dict[str, Any] = {}
    for f in dataclasses.fields(settings_class):
        meta = f.metadata
        if not meta.get("cli"):
            continue
        target = p
        if meta["group"]:
            target = groups.setdefault(meta["group"], p.add_argument_group(meta["group"]))
        flag = meta["flag"] or "--" + f.name.replace("_", "-")
        kwargs: dict[str, Any] = {"dest": f.name, "help": meta["help"]}
        default = defaults.get(f.name, f.default)
        if default is dataclasses.MISSING:
            kwargs["required"] = True
        else:
            kwargs["default"] = default
        if str(f.type) == "bool":
            kwargs["action"] = "store_true"
        else:
            scalar = _SCALARS.get(str(f.type).split(" | ")[0], str)
            kwargs["type"] = _checked(meta["type"] or scalar)
            if meta["choices"] is not None:
                kwargs["choices"] = meta["choices"]()
            if meta["metavar"]:
                kwargs["metavar"] = meta["metavar"]
            if meta.get("const") is not None:
                kwargs.update(nargs="?", const=meta["const"])
        target.add_argument(flag, **kwargs)


def settings_from(args: argparse.Namespace, settings_class: type, **overrides: Any) -> Any:
    """The settings the parsed flags describe."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(settings_class)
              if f.metadata.get("cli") and hasattr(args, f.name)}
    return settings_class(**{**values, **overrides})


def _add_study_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--study-name", required=required, help="the study (search's default: the space name)")
    p.add_argument("--storage", help="Optuna storage URL (default: sqlite:///STUDIES_DIR/STUDY_NAME.db)")
    p.add_argument("--studies-dir", default="studies", help="(default: %(default)s)")


def _say(message: str) -> None:
    print(message, file=sys.stderr)


class Command:
    """One subcommand: the docstring is its help."""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        pass

    def run(self, args: argparse.Namespace) -> int:
        raise NotImplementedError


class Search(Command):
    """Create or resume a study and run trials until it holds --trials finished trials."""

    def add_arguments(self, p: argparse.ArgumentParser, **defaults: Any) -> None:
        add_settings_args(p, SearchSettings, **defaults)
        p.add_argument("--top", type=int, default=10, help="rows of the final table (default: %(default)s)")
        p.add_argument("--quiet", action="store_true", help="no progress bar or per-trial lines")

    def run(self, args: argparse.Namespace) -> int:
        settings = settings_from(args, SearchSettings)
        return self.finished(args, settings, run_search(settings, reporter=self.reporter(args, settings)))

    @staticmethod
    def reporter(args: argparse.Namespace, settings: SearchSettings) -> SearchReporter:
        return SearchReporter(quiet=args.quiet, open_ended=settings.trials >= AUTO_TRIALS, debug=args.debug)

    @staticmethod
    def finished(args: argparse.Namespace, settings: SearchSettings, outcome: SearchOutcome,
                 budgeted: bool = False) -> int:
        """Print the final table and how the search ended; returns the exit code.

        `budgeted`: `auto` gave the search a time share, so its timeout is the plan, not an early stop.
        """
        study = outcome.study
        print(format_table(leaderboard(trials_frame(study), top=args.top, columns=TERMINAL_COLUMNS)))
        resume = "cifar-automl " + shlex.join(redact(a) for a in args.argv)
        where = redact(outcome.storage_url)
        if settings.trials >= AUTO_TRIALS:  # open-ended (`auto`): no target to count against
            finished = f"{outcome.finished} finished trial{'' if outcome.finished == 1 else 's'}"
        else:
            finished = f"{outcome.finished}/{settings.trials} finished trials"
        if budgeted and not outcome.interrupted and outcome.stopped_reason == TIMEOUT_REACHED:
            _say(f"study '{study.study_name}': the search's share of the budget is spent: {finished} "
                 f"({outcome.ran} run now, {outcome.seconds / 60:.1f} min) in {where}")
            return 0
        _say(f"study '{study.study_name}': {finished} ({outcome.ran} run now, {outcome.seconds / 60:.1f} min) in "
             f"{where}")
        if outcome.interrupted:
            _say(f"interrupted: the study is saved; resume with: {resume}")
            return EXIT_INTERRUPTED
        if outcome.stopped_reason:
            _say(f"stopped early: {outcome.stopped_reason}; resume with: {resume}")
            return 1 if "failed" in outcome.stopped_reason else 0
        _say(f"watch it live: optuna-dashboard {where}")
        return 0


class Auto(Command):
    """Search, retrain a winner and write the report, all within --budget of wall time."""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--budget", type=_checked(parse_duration), required=True,
                       help="wall time for search + retrain + test + report, e.g. 2h, 90m, 1h30m")
        p.add_argument("--search-share", type=float, default=None,
                       help="share of the budget spent searching, kept even when it holds fewer than "
                            f"{MIN_SEARCH_TRIALS} trials like the first (with a warning); 0: no search, the space's "
                            "defaults (or the first "
                            "--warm-start configuration) retrained for the whole budget (default: after a space's "
                            f"defaults or a --warm-start's best, as long as {MIN_SEARCH_TRIALS} trials like it take, "
                            f"if that is at most {100 * default_search_share(True):.0f}%% of the budget, else no "
                            f"search; {SEARCH_SHARE:g} for a search from scratch)")
        p.add_argument("--overwrite", action="store_true", help="replace an earlier retrain of the chosen trial")
        Search().add_arguments(p, trials=AUTO_TRIALS)

    def run(self, args: argparse.Namespace) -> int:
        settings = settings_from(args, SearchSettings)
        codes: list[int] = []
        outcome = run_auto(
            settings, args.budget, args.search_share, overwrite=args.overwrite, progress=not args.quiet,
            reporter=Search.reporter(args, settings), say=_say,
            on_search_end=lambda search: codes.append(Search.finished(args, settings, search, budgeted=True)),
        )
        if outcome.result is None:
            return codes[0]
        m, choice = outcome.result.metrics, outcome.choice
        if m.get("schedule_resizes"):
            after, lengths = zip(*m["schedule_resizes"])
            print(f"the retrain's schedule was re-sized after epoch{'s' if len(after) > 1 else ''} "
                  f"{', '.join(map(str, after))}: to {' -> '.join(f'{s / choice.steps_per_epoch:.2f}' for s in lengths)} "
                  "epochs")
        print(f"trial {choice.trial}: test accuracy {m['accuracy']:.4f} after {choice.length}; "
              f"{outcome.seconds / 60:.1f} of {outcome.plan.total / 60:.0f} min used -> {outcome.result.out_dir}")
        print(f"report: {outcome.report}")
        return 0


class Spaces(Command):
    """List the built-in search spaces, or print one as YAML."""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("name", nargs="?", help="print this space's YAML")

    def run(self, args: argparse.Namespace) -> int:
        if args.name:
            space = load_space(args.name)
            print(open(space.source).read(), end="")
            return 0
        for name in list_spaces():
            space = load_space(name)
            print(f"{name:<10} {', '.join(space.block_choices):<28} {space.description.splitlines()[0][:80]}")
        print(f"\n(files in {builtin_space_dir()}; pass --space NAME or --space path/to/your.yaml)")
        return 0


class Retrain(Command):
    """Retrain the best trial (or --trial N, or the --top K) on all training data and test it."""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        add_settings_args(p, RetrainSettings)
        p.add_argument("--tta-flip", action="store_true", help="the same as --tta flip")
        p.add_argument("--quiet", action="store_true", help="no progress bar")

    def run(self, args: argparse.Namespace) -> int:
        settings = settings_from(args, RetrainSettings, progress=not args.quiet,
                                 **({"tta": "flip"} if args.tta_flip else {}))
        for r in retrain(settings):
            m = r.metrics
            print(
                f"trial {r.trial}: test accuracy {m['accuracy']:.4f} (search val {m['val_accuracy_search']:.4f}), "
                f"loss {m['loss']:.4f}, macro F1 {m['macro_f1']:.4f}, {m['epochs']} epochs in "
                f"{m['train_minutes']:.1f} min, {m['latency_ms_batch1']:.2f} ms/image -> {r.out_dir}"
            )
        return 0


class Export(Command):
    """Export a retrained model as .keras, SavedModel, TFLite or ONNX (preprocessing included)."""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        _add_study_args(p, required=False)
        p.add_argument("--trial", type=int, help="retrained trial (default: the best retrained one)")
        p.add_argument("--model", help="a .keras file to export instead of a study's retrained model")
        p.add_argument("--format", nargs="+", choices=list(FORMATS), default=["keras"], help="(default: keras)")
        p.add_argument("--out", help="output path (one format), or a folder to write into (default: <retrain dir>/export/)")
        p.add_argument("--overwrite", action="store_true")
        p.add_argument("--pareto", action="store_true",
                       help="every model of `retrain --pareto`, each file then measured on the test split "
                            "(accuracy, batch-1 latency)")

    def run(self, args: argparse.Namespace) -> int:
        if args.pareto:
            if not args.study_name or args.model or args.trial is not None or args.out:
                raise UserError("--pareto exports a study's front: pass --study-name, without --model, --trial or --out")
            study, _ = load_existing_study(args.study_name, args.storage, args.studies_dir)
            rows = export_front(study, args.studies_dir, args.format, overwrite=args.overwrite, storage=args.storage)
            print(format_table(pd.DataFrame(rows)[["trial", "format", "accuracy", "latency_ms", "path"]]))
            return 0
        if args.model:
            model_path = Path(args.model)
        else:
            if not args.study_name:
                raise UserError("pass --study-name (with --trial) or --model PATH")
            trial = args.trial if args.trial is not None else self._best_retrained(args)
            model_path = retrain_dir(args.studies_dir, args.study_name, trial) / MODEL_FILE
            if not model_path.is_file():
                raise UserError(f"trial {trial} has not been retrained (no {model_path}): run cifar-automl retrain first")
        for fmt in args.format:
            out = export_path(model_path, fmt, args.out, len(args.format))
            print(f"{fmt}: {export_model(model_path, fmt, out, overwrite=args.overwrite)}")
        return 0

    @staticmethod
    def _best_retrained(args: argparse.Namespace) -> int:
        study, _ = load_existing_study(args.study_name, args.storage, args.studies_dir)
        trial = best_retrained(study)
        if trial is None:
            raise UserError(f"no trial of study '{args.study_name}' has been retrained: run cifar-automl retrain first")
        return trial


class Predict(Command):
    """Classify images (files or folders) with a saved model: top-k classes with probabilities."""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("model", help="a .keras file or a retrain folder (class names from its config.json)")
        p.add_argument("images", nargs="+", help="image files or folders of images")
        p.add_argument("--top-k", type=int, default=3, help="(default: %(default)s)")

    def run(self, args: argparse.Namespace) -> int:
        results = predict_files(args.model, args.images, top_k=args.top_k)
        if not results:
            raise UserError("no images found in the given paths")
        for r in results:
            if r.error:
                print(f"cifar-automl: error: {r.error}", file=sys.stderr)
            else:
                print(f"{r.path}: " + ", ".join(f"{name} {p:.3f}" for name, p in r.top or []))
        return EXIT_USAGE if any(r.error for r in results) else 0


class Report(Command):
    """Write the comparison report (HTML page, CSV tables, Markdown summary) of a study."""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        _add_study_args(p)
        p.add_argument("--compare", nargs="+", default=[], metavar="STUDY",
                       help="other studies (same storage/studies dir) to compare block types with")
        p.add_argument("--out", help="output folder (default: STUDIES_DIR/STUDY_NAME/report)")

    def run(self, args: argparse.Namespace) -> int:
        page = write_report(args.study_name, storage=args.storage, studies_dir=args.studies_dir,
                            compare=args.compare, out=args.out)
        print(f"report: {page}")
        return 0


class Baseline(Command):
    """Train a textbook reference CNN with its own recipe, test it, and keep it next to a study."""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--list", action="store_true", help="list the presets with their parameter counts")
        add_settings_args(p, BaselineSettings)
        p.add_argument("--quiet", action="store_true", help="no progress bar")

    def run(self, args: argparse.Namespace) -> int:
        if args.list:
            for name, preset in PRESETS.items():
                shape = preset.default_shape
                params = build_preset(preset, shape, 10).count_params()
                print(f"{name:<17} {params:>11,} params on {'x'.join(map(str, shape))}, 10 classes | "
                      f"{preset.description} | {preset.shape_note}")
            return 0
        r = run_baseline(settings_from(args, BaselineSettings, progress=not args.quiet))
        val = "" if r["val_accuracy"] is None else f" (val {r['val_accuracy']:.4f})"  # None: trained on train + val
        print(f"{r['preset']}: test accuracy {r['accuracy']:.4f}{val}, {r['params']:,} params, "
              f"{r['epochs']} epochs in {r['train_minutes']:.1f} min -> {r['out']} (study '{r['study']}')")
        return 0


class Summary(Command):
    """Print model.summary() (layers, shapes, parameters) of a preset or of a study's trial."""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--model", help="a preset name")
        p.add_argument("--input-shape", type=int, nargs=3, metavar=("H", "W", "C"), help="(default: the preset's)")
        p.add_argument("--classes", type=int, default=10, help="(default: %(default)s)")
        _add_study_args(p, required=False)
        p.add_argument("--trial", type=int, help="with --study-name: that trial's model")

    def run(self, args: argparse.Namespace) -> int:
        if args.model:
            preset = get_preset(args.model)
            shape = tuple(args.input_shape) if args.input_shape else preset.default_shape
            model = build_preset(preset, shape, args.classes)
        elif args.study_name and args.trial is not None:
            study, _ = load_existing_study(args.study_name, args.storage, args.studies_dir)
            (trial,) = pick_trials(study, args.trial, 1)
            data = study.user_attrs.get("data", {})
            cfg = TrialConfig.from_dict(trial.user_attrs["config"])
            model = build_model(cfg.arch, data.get("image_shape", (32, 32, 3)), data.get("num_classes", args.classes),
                                name=model_name(args.study_name, trial.number))
        else:
            raise UserError("pass --model PRESET, or --study-name NAME --trial N")
        model.summary()
        return 0


class Dashboard(Command):
    """Serve optuna-dashboard on a study's storage: live learning curves, parameters, user attributes."""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        _add_study_args(p, required=False)
        p.add_argument("--host", default="127.0.0.1",
                       help="(default: %(default)s; from another machine, forward the port over SSH rather than "
                            "serving on 0.0.0.0: the dashboard has no login and can delete studies)")
        p.add_argument("--port", type=int, default=8080, help="(default: %(default)s; 0: a free port, printed)")

    def run(self, args: argparse.Namespace) -> int:
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
        try:  # optuna-dashboard's own app, served here so that --port 0 can say which port it got
            server = wsgiref.simple_server.make_server(args.host, args.port, optuna_dashboard.wsgi(storage),
                                                       handler_class=_QuietHandler)
        except OSError as e:
            raise UserError(f"cannot serve on {args.host}:{args.port}: {e.strerror}") from None
        port = server.server_port
        if args.host not in LOOPBACK:
            _say(f"warning: optuna-dashboard has no login, and anyone who reaches {args.host}:{port} can "
                 f"delete or rename studies; safer: serve on 127.0.0.1 and forward the port with "
                 f"ssh -L {port}:127.0.0.1:{port} THIS_HOST")
        print(f"optuna-dashboard on {redact(url)}: http://{args.host}:{port}/dashboard/ "
              "(Ctrl-C to stop)", flush=True)
        with server:
            server.serve_forever()
        return 0


class _QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # no line per request on the terminal
        pass


COMMANDS: dict[str, Command] = {
    "search": Search(), "auto": Auto(), "spaces": Spaces(), "retrain": Retrain(), "export": Export(),
    "predict": Predict(), "report": Report(), "baseline": Baseline(), "summary": Summary(), "dashboard": Dashboard(),
}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cifar-automl", description="AutoML search for Keras image classifiers.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    parser.add_argument("--backend", choices=BACKENDS, default=None,
                        help="Keras backend (default: $KERAS_BACKEND, else tensorflow); set before Keras starts")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, command in COMMANDS.items():
        doc = type(command).__doc__
        command.add_arguments(sub.add_parser(name, help=doc, description=doc))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code (the `cifar-automl` entry point is `__main__.main`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    _quiet_libraries(args.debug)
    try:
        if args.backend is not None:
            select_backend(args.backend)  # `cifar-automl` sets it earlier (__main__); here it must agree
        return COMMANDS[args.command].run(args)
    except UserError as e:
        print(f"cifar-automl: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except SearchError as e:
        print(f"cifar-automl: error: {e}", file=sys.stderr)
        if args.debug and e.details:
            print(e.details, file=sys.stderr, end="")
        return 1
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
    # each trial gets our own one-line summary; Optuna's per-trial logs would repeat it
    optuna.logging.set_verbosity(optuna.logging.WARNING if debug else optuna.logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
