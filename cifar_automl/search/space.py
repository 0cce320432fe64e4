"""Search spaces: YAML files in `search_spaces/` turned into Optuna distributions and sampled into configs.

A space file has three sections, each mapping a config field to either a fixed value or a distribution
written close to Optuna's own JSON form::

    arch:
      block: {type: categorical, choices: [plain, inception, residual]}
      stages: {type: int, low: 2, high: 4}
    blocks:                       # block-specific options, sampled only when that block is chosen
      residual:
        preact: {type: categorical, choices: [false, true]}
    train:
      learning_rate: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
      momentum: {type: float, low: 0.8, high: 0.99, when: {optimizer: sgd}}

`when` makes a parameter conditional on another parameter of the same section. `default` (as in
KerasTuner) is the value a new study tries first: the first trial runs every parameter's default
(parameters without one are sampled), so a known-good recipe is in the study from the start. Fields
a space leaves out keep the defaults of `ArchConfig` / `TrainConfig`. The number of epochs is the
search's fidelity (`--epochs`), not part of the space.

One concept in one file (a little over 400 lines): reading a space (with errors that name the file,
line and key) and sampling it share the `Param` and `SearchSpace` types and read best together.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import optuna
import yaml

from ..config import ArchConfig, TrainConfig, TrialConfig
from ..errors import SpaceError
from ..models import ACTIVATIONS, BLOCKS, HEADS, POOLINGS, STEMS, block_option_defaults
from ..training import AUGMENTATIONS, OPTIMIZERS, SCHEDULES

_FIELD_TYPES = {
    "arch": {f.name: f for f in dataclasses.fields(ArchConfig) if f.name != "block_options"},
    "train": {f.name: f for f in dataclasses.fields(TrainConfig) if f.name != "epochs"},
}
# the names a field may take: those the code implementing it knows (block types are checked apart)
_CHOICES = {
    ("arch", "activation"): ACTIVATIONS,
    ("arch", "pooling"): POOLINGS,
    ("arch", "head"): HEADS,
    ("arch", "stem"): STEMS,
    ("train", "optimizer"): tuple(OPTIMIZERS),
    ("train", "lr_schedule"): tuple(SCHEDULES),
    ("train", "augment"): tuple(AUGMENTATIONS),
}


# the values a field can take at all, checked when a space is read (with file, line and key):
# (low, high, the low end included, the high end included); None is unbounded
_LIMITS: dict[tuple[str, str], tuple[float | None, float | None, bool, bool]] = {
    ("arch", "stages"): (1, None, True, False),
    ("arch", "blocks_per_stage"): (1, None, True, False),
    ("arch", "base_filters"): (1, None, True, False),
    ("arch", "width_growth"): (0, None, False, False),
    ("arch", "max_width"): (0, None, True, False),
    ("arch", "stem_filters"): (0, None, True, False),
    ("arch", "kernel_size"): (1, None, True, False),
    ("arch", "conv_dropout"): (0, 1, True, False),
    ("arch", "dense_units"): (0, None, True, False),
    ("arch", "dense_dropout"): (0, 1, True, False),
    ("arch", "logit_scale"): (0, None, False, False),
    ("train", "learning_rate"): (0, None, False, False),
    ("train", "weight_decay"): (0, None, True, False),
    ("train", "momentum"): (0, 1, True, False),
    ("train", "batch_size"): (1, None, True, False),
    ("train", "warmup_fraction"): (0, 1, True, False),
    ("train", "warmup_start"): (0, 1, False, True),
    ("train", "final_lr_fraction"): (0, 1, True, True),
    ("train", "label_smoothing"): (0, 1, True, False),
    ("train", "weight_averaging"): (0, 1, True, False),
    ("plain", "convs"): (1, None, True, False),
    ("inception", "reduction"): (0, 1, False, True),
}


def _check_limits(param: Param, limits: tuple | None, path: str, fail: Any) -> None:
    """One clear error for a value the field cannot take (a batch size of 0, a dropout of 1, ...)."""
    if param.kind in ("int", "float") and param.step is not None:
        if param.step <= 0:
            raise fail(f"{path}.step", f"must be positive, not {param.step}")
        if param.high > param.low and param.step > param.high - param.low:
            raise fail(f"{path}.step", f"{param.step} is larger than the range {param.low}..{param.high}")
    if limits is None:
        return
    low, high, low_in, high_in = limits
    values = {"fixed": (param.value,), "categorical": param.choices}.get(param.kind, (param.low, param.high))
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if (low is not None and (v < low or (v == low and not low_in))) or (
                high is not None and (v > high or (v == high and not high_in))):
            lo = "(-inf" if low is None else f"{'[' if low_in else '('}{low}"
            hi = "inf)" if high is None else f"{high}{']' if high_in else ')'}"
            raise fail(path, f"{v} is out of range: must be in {lo}, {hi}")


class TrialLike(Protocol):
    """What sampling needs from an Optuna trial (a `Trial`, `FixedTrial` or KerasTuner adapter)."""

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int: ...

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float: ...

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


@dataclass(frozen=True)
class Param:
    """One entry of a space: a fixed value or a distribution, maybe conditional on another parameter."""

    name: str  # Optuna parameter name: the field name, or "<block>.<option>" for block options
    field: str
    kind: str  # fixed | int | float | categorical
    value: Any = None  # for fixed
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    when: tuple[tuple[str, Any], ...] = ()  # all must hold for the parameter to be sampled
    default: Any = None  # tried by a new study's first trial (None: no default)

    def sample(self, trial: TrialLike) -> Any:
        if self.kind == "fixed":
            return self.value
        if self.kind == "int":
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)
        return trial.suggest_categorical(self.name, list(self.choices))

    def contains(self, value: Any) -> bool:
        if self.kind == "fixed":
            return value == self.value
        if self.kind == "categorical":  # True == 1 in Python: keep booleans and numbers apart
            return any(value == c and isinstance(value, bool) == isinstance(c, bool) for c in self.choices)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not self.low <= value <= self.high:
            return False
        if self.step:
            steps = (value - self.low) / self.step
            return abs(steps - round(steps)) < 1e-6
        return True

    def nearest(self, value: Any) -> Any:
        """A number moved into this range (and onto its step); anything else unchanged."""
        if self.kind not in ("int", "float") or isinstance(value, bool) or not isinstance(value, (int, float)):
            return value
        value = min(max(value, self.low), self.high)
        if self.step:
            value = self.low + round((value - self.low) / self.step) * self.step
        return int(round(value)) if self.kind == "int" else float(value)

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in dataclasses.asdict(self).items() if v not in (None, (), False)}
        out.pop("name")
        out.pop("field")
        return out


@dataclass(frozen=True)
class SearchSpace:
    name: str
    description: str
    arch: tuple[Param, ...]
    blocks: dict[str, tuple[Param, ...]]
    train: tuple[Param, ...]
    source: str = ""

    @property
    def block_choices(self) -> tuple[str, ...]:
        return _block_choices(self.arch)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "arch": {p.field: p.to_dict() for p in self.arch},
            "blocks": {b: {p.field: p.to_dict() for p in ps} for b, ps in self.blocks.items()},
            "train": {p.field: p.to_dict() for p in self.train},
        }

    @property
    def fingerprint(self) -> str:
        """Hash of what the space samples (not its comments or description): a study stores it."""
        text = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def default_params(self) -> dict[str, Any]:
        """The Optuna parameters of the first trial a new study runs: the default of every searched
        parameter that trial uses. Options of a block other than the default one, and parameters whose
        `when` the defaults rule out, are left out (as a trial sampled with them records them), so the
        queued trial compares equal to a configuration that runs the same; where a choice has no
        default, what depends on it keeps its defaults."""
        params: dict[str, Any] = {}

        def walk(section: tuple[Param, ...]) -> dict[str, Any]:
            values: dict[str, Any] = {}  # field -> its value, when the defaults decide it
            for p in section:
                if any(k in values and values[k] != v for k, v in p.when):
                    values[p.field] = _UNUSED  # what depends on it is unused too
                    continue
                value = p.value if p.kind == "fixed" else p.default
                if value is not None:
                    values[p.field] = value
                if p.kind != "fixed" and p.default is not None:
                    params[p.name] = p.default
            return values

        arch = walk(self.arch)
        searched_block = any(p.field == "block" and p.kind != "fixed" for p in self.arch)
        block = arch.get("block", None if searched_block else ArchConfig.block)
        for name, section in self.blocks.items():
            if block is None or name == block:
                walk(section)
        walk(self.train)
        return params

    def params_for(self, cfg: TrialConfig) -> dict[str, Any] | None:
        """The Optuna parameters under which this space samples `cfg` (numbers moved into the space's
        ranges, e.g. no weight decay -> the smallest searched), or None if a choice is not in it."""
        params: dict[str, Any] = {}
        sections = [
            (self.arch, lambda f: getattr(cfg.arch, f)),
            (self.blocks.get(cfg.arch.block, ()), lambda f: cfg.arch.block_options.get(f)),
            (self.train, lambda f: getattr(cfg.train, f)),
        ]
        if cfg.arch.block not in self.block_choices:
            return None
        for params_of, value_of in sections:
            values: dict[str, Any] = {}
            for p in params_of:
                if not all(values.get(k) == v for k, v in p.when):
                    continue
                value = p.nearest(value_of(p.field))
                values[p.field] = value
                if not p.contains(value):
                    return None
                if p.kind != "fixed":
                    params[p.name] = value
        return params

    def sample(self, trial: TrialLike, epochs: int) -> TrialConfig:
        """Sample one configuration. Block options are sampled only for the chosen block."""
        arch = _sample_section(self.arch, trial)
        block = arch.get("block", ArchConfig.block)
        options = block_option_defaults(block)
        options.update({p.field: p.sample(trial) for p in self.blocks.get(block, ())})
        train = _sample_section(self.train, trial)
        return TrialConfig(
            arch=ArchConfig(**arch, block_options=options),
            train=TrainConfig(**train, epochs=epochs),
        )


_UNUSED = object()  # default_params: a parameter its `when` leaves out


def _sample_section(params: tuple[Param, ...], trial: TrialLike) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for p in params:  # `when` may only refer to earlier parameters, checked at load time
        if all(values.get(k) == v for k, v in p.when):
            values[p.field] = p.sample(trial)
    return values


def builtin_space_dir() -> Path:
    return Path(str(resources.files("cifar_automl.search_spaces")))


def list_spaces() -> list[str]:
    return sorted(p.stem for p in builtin_space_dir().glob("*.yaml"))


def load_space(name_or_path: str | Path) -> SearchSpace:
    """Load a built-in space by name (`residual`) or a YAML file by path."""
    text_name = str(name_or_path)
    path = Path(text_name)
    if not (text_name.endswith((".yaml", ".yml")) or path.is_file()):
        path = builtin_space_dir() / f"{text_name}.yaml"
        if not path.is_file():
            raise SpaceError(
                f"unknown search space '{text_name}': choose one of {', '.join(list_spaces())} "
                "or pass a path to a .yaml file"
            )
    elif not path.is_file():
        raise SpaceError(f"search space file not found: {text_name}")
    try:
        text = path.read_text()
    except OSError as e:
        raise SpaceError(f"cannot read search space {path}: {e.strerror}") from None
    return parse_space(text, source=str(path), default_name=path.stem)


def parse_space(text: str, source: str = "<string>", default_name: str = "custom") -> SearchSpace:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SpaceError(f"{source}:{where}: invalid YAML: {problem}") from None
    lines = _key_lines(node)

    def fail(path: str, message: str) -> SpaceError:
        line = lines.get(path)
        where = f" line {line}," if line else ""
        return SpaceError(f"{source}:{where} {path}: {message}")

    if not isinstance(data, dict):
        raise fail("(top)", "a search space must be a mapping with 'arch', 'blocks' and 'train' sections")
    unknown = set(data) - {"name", "description", "arch", "blocks", "train"}
    if unknown:
        key = sorted(unknown)[0]
        raise fail(key, "unknown section (expected name, description, arch, blocks, train)")

    arch = _parse_section(data.get("arch") or {}, "arch", fail)
    space_blocks = _block_choices(arch)
    for b in space_blocks:
        if b not in BLOCKS:
            raise fail("arch.block", f"unknown block type '{b}' (registered: {', '.join(sorted(BLOCKS))})")
    blocks_raw = data.get("blocks") or {}
    if not isinstance(blocks_raw, dict):
        raise fail("blocks", "must map block names to their options")
    blocks: dict[str, tuple[Param, ...]] = {}
    for block, opts in blocks_raw.items():
        if block not in BLOCKS:
            raise fail(f"blocks.{block}", f"unknown block type (registered: {', '.join(sorted(BLOCKS))})")
        if not isinstance(opts, dict):
            raise fail(f"blocks.{block}", "must map option names to values or distributions")
        defaults = block_option_defaults(block)
        for opt in opts:
            if opt not in defaults:
                raise fail(
                    f"blocks.{block}.{opt}",
                    f"unknown option of block '{block}' (known: {', '.join(sorted(defaults)) or 'none'})",
                )
        blocks[block] = tuple(
            _parse_param(f"{block}.{opt}", opt, spec, f"blocks.{block}.{opt}", fail, type(defaults[opt]))
            for opt, spec in opts.items()
        )
        for param in blocks[block]:
            _check_limits(param, _LIMITS.get((block, param.field)), f"blocks.{block}.{param.field}", fail)
    train = _parse_section(data.get("train") or {}, "train", fail)
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise fail("name", "must be a non-empty string")
    return SearchSpace(
        name=name,
        description=str(data.get("description", "")).strip(),
        arch=arch,
        blocks=blocks,
        train=train,
        source=source,
    )


def _block_choices(arch: tuple[Param, ...]) -> tuple[str, ...]:
    for p in arch:
        if p.field == "block":
            return (p.value,) if p.kind == "fixed" else tuple(p.choices)
    return (ArchConfig.block,)


def _parse_section(raw: Any, section: str, fail: Any) -> tuple[Param, ...]:
    if not isinstance(raw, dict):
        raise fail(section, "must map config fields to values or distributions")
    fields = _FIELD_TYPES[section]
    params: list[Param] = []
    for key, spec in raw.items():
        if section == "train" and key == "epochs":
            raise fail("train.epochs", "epochs is the search's fidelity: set it with --epochs, not in the space")
        if key not in fields:
            raise fail(f"{section}.{key}", f"unknown field (known: {', '.join(sorted(fields))})")
        ftype = _field_pytype(fields[key])
        param = _parse_param(key, key, spec, f"{section}.{key}", fail, ftype)
        _check_limits(param, _LIMITS.get((section, key)), f"{section}.{key}", fail)
        allowed = _CHOICES.get((section, key))
        values = (param.value,) if param.kind == "fixed" else param.choices
        if allowed is not None:
            for v in values:
                if v not in allowed:
                    raise fail(f"{section}.{key}", f"unknown value '{v}' (known: {', '.join(allowed)})")
        seen = {p.field for p in params}
        for cond_key, _ in param.when:
            if cond_key not in seen:
                raise fail(
                    f"{section}.{key}.when",
                    f"'{cond_key}' must be a parameter listed before '{key}' in section '{section}'",
                )
        params.append(param)
    return tuple(params)


def _field_pytype(f: dataclasses.Field) -> type:
    return {"int": int, "float": float, "bool": bool, "str": str}.get(str(f.type), object)


def _parse_param(name: str, field: str, spec: Any, path: str, fail: Any, ftype: type) -> Param:
    if not isinstance(spec, dict):
        _check_type(spec, ftype, path, fail)
        return Param(name=name, field=field, kind="fixed", value=spec)
    kind = spec.get("type")
    when = spec.get("when") or {}
    if not isinstance(when, dict):
        raise fail(f"{path}.when", "must map a parameter name to the value it must have")
    when_t = tuple(sorted(when.items()))
    allowed_keys = {
        "int": {"type", "low", "high", "step", "log", "when", "default"},
        "float": {"type", "low", "high", "step", "log", "when", "default"},
        "categorical": {"type", "choices", "when", "default"},
    }
    if kind not in allowed_keys:
        raise fail(path, f"'type' must be int, float or categorical, not {kind!r}")
    extra = set(spec) - allowed_keys[kind]
    if extra:
        raise fail(path, f"unexpected key(s) for a {kind} distribution: {', '.join(sorted(extra))}")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise fail(path, "'choices' must be a non-empty list")
        for c in choices:
            _check_type(c, ftype, path, fail)
        return _with_default(Param(name=name, field=field, kind=kind, choices=tuple(choices), when=when_t),
                             spec, path, fail)
    if "low" not in spec or "high" not in spec:
        raise fail(path, f"a {kind} distribution needs 'low' and 'high'")
    low, high, step, log = spec["low"], spec["high"], spec.get("step"), bool(spec.get("log", False))
    number = int if kind == "int" else (int, float)
    for key, v in (("low", low), ("high", high), ("step", step)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, number)):
            raise fail(f"{path}.{key}", f"must be a{'n integer' if kind == 'int' else ' number'}, not {v!r}")
    if kind == "int" and ftype is float:
        kind = "int"  # an int range for a float field (e.g. width_growth) is fine
    elif kind == "float" and ftype is int:
        raise fail(path, "this field is an integer: use type: int")
    if low > high:
        raise fail(path, f"'low' ({low}) must be <= 'high' ({high})")
    if log and (low <= 0 or step is not None):
        raise fail(path, "log scale needs low > 0 and no step")
    return _with_default(
        Param(name=name, field=field, kind=kind, low=low, high=high, step=step, log=log, when=when_t), spec, path, fail
    )


def _with_default(param: Param, spec: dict[str, Any], path: str, fail: Any) -> Param:
    if "default" not in spec:
        return param
    default = spec["default"]
    if param.kind == "int" and isinstance(default, float) and default.is_integer():
        default = int(default)
    if default is None or not param.contains(default):
        raise fail(f"{path}.default", f"{default!r} is not one of the values the distribution can take")
    return dataclasses.replace(param, default=default)


def _check_type(value: Any, ftype: type, path: str, fail: Any) -> None:
    ok = {
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        bool: lambda v: isinstance(v, bool),
        str: lambda v: isinstance(v, str),
    }.get(ftype, lambda v: True)
    if not ok(value):
        raise fail(path, f"expected a {ftype.__name__}, got {value!r}")


def _key_lines(node: yaml.Node | None, prefix: str = "") -> dict[str, int]:
    """Map dotted key paths ("train.learning_rate.low") to 1-based line numbers, for error messages."""
    out: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = f"{prefix}{key_node.value}"
            out[path] = key_node.start_mark.line + 1
            out.update(_key_lines(value_node, path + "."))
    return out


def config_from_params(space: SearchSpace, params: dict[str, Any], epochs: int) -> TrialConfig:
    """Rebuild the config a trial with these Optuna `params` sampled (for enqueued or stored trials)."""
    return space.sample(optuna.trial.FixedTrial(params), epochs)
