"""Typed configs loaded from YAML, with ``key.sub=value`` overrides, and the shipped files picked by name.

An experiment, a robot, a teleop robot, a hand or a ROS joint map is a YAML file that maps onto a
dataclass. Loading is strict on purpose: a typo in a key or a value of the wrong type would otherwise
train for fifteen minutes on a default the user never asked for — or move a robot. So an unknown key,
a wrong type or an out-of-range value stops with a :class:`ConfigError` that names the file, the key,
the value and what is allowed. One rule holds for every number: finite (NaN fails every comparison,
so it is checked explicitly) and within the bounds that live next to the field, as metadata::

    n_envs: int = bounded(4, "parallel envs", ge=1, le=256)

Polymorphic sections (the reward model) are chosen by a ``type`` key; see
:meth:`ChoiceConfig.register_subclass`. The files roboreward ships live in ``roboreward/configs/``
(package data) and are found by name with :func:`find_named` (``--robot franka``).

Example::

    cfg = load_named("arm_reach", "experiment", ExperimentConfig, ["train.total_timesteps=2000", "env.n_envs=2"])
    save_config(cfg, run_dir / "config.yaml")
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import importlib.resources
import importlib.util
import math
import operator
import os
import re
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal, TypeVar

import numpy as np
import yaml

from roboreward.errors import ConfigError, SetupError
from roboreward.io import atomic_write

T = TypeVar("T")


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with YAML 1.2's plain scalars, as users write them: ``3e-4`` and ``1e5`` are
    numbers, and only ``true`` / ``false`` are booleans (``viewer: off`` is the word off, not False)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # a SafeLoader: no Python objects are ever built


class ChoiceConfig:
    """Base for config sections that come in several kinds, selected by a ``type`` key.

    Subclasses register under a name, as LeRobot's ``RobotConfig.register_subclass`` does::

        @RewardConfig.register_subclass("goal_image")
        @dataclass(kw_only=True)
        class GoalImageRewardConfig(RewardConfig): ...
    """

    _registry: ClassVar[dict[str, type]]
    # Modules whose import registers a family's built-in kinds; imported on the first lookup of a type,
    # so that importing the family (e.g. for a CLI's --help) does not import every implementation.
    builtin_modules: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.is_family():  # a new family (e.g. RewardConfig) gets its own registry
            cls._registry = {}

    @classmethod
    def register_subclass(cls, name: str):
        def decorator(subclass: type) -> type:
            if name in cls._registry:
                raise ValueError(f"{cls.__name__} type {name!r} is already registered by {cls._registry[name].__name__}")
            cls._registry[name] = subclass
            subclass.type_name = name
            return subclass

        return decorator

    @classmethod
    def is_family(cls) -> bool:
        """True for a family base such as ``RewardConfig`` (whose YAML must say ``type``)."""
        return ChoiceConfig in cls.__bases__

    @classmethod
    def choices(cls) -> list[str]:
        cls.import_builtins()
        return sorted(cls._registry)

    @classmethod
    def import_builtins(cls) -> None:
        import importlib

        for module in cls.builtin_modules:
            importlib.import_module(module)

    @classmethod
    def subclass_for(cls, name: Any, key: str) -> type:
        if name not in cls._registry:
            cls.import_builtins()
        if name not in cls._registry:
            raise ConfigError(f"{key}.type: unknown {cls.__name__} type {name!r}; choose one of {cls.choices()}")
        return cls._registry[name]


# --------------------------------------------------------------------------------------------
# Loading and saving


def load_config(path: str | Path, overrides: Sequence[str] = (), *, cls: type[T]) -> T:
    """Read a YAML file, apply ``key.sub=value`` overrides, and build the typed config ``cls``.

    Every error is a :class:`ConfigError` that names the file (and the key), except one about a value
    given in ``overrides``, which names the key alone.
    """
    path = Path(path)
    data = read_yaml(path, "config file") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys to values, got {type(data).__name__}")
    for override in overrides:
        apply_override(data, override)
    try:
        return from_dict(cls, data)
    except ConfigError as e:
        # A value typed on the command line is named by its key alone; one from the file, by the file too.
        typed = [o.partition("=")[0] for o in overrides]
        if any(str(e).startswith((f"{key}:", f"{key}.", f"{key}[")) for key in typed):
            raise
        raise ConfigError(f"{path}: {e}") from None


def read_yaml(path: str | Path, what: str = "YAML file") -> Any:
    """The plain data of a YAML file; every way it can fail is a :class:`ConfigError` that names the file.

    A missing file, a folder, an unreadable or binary file, a syntax error (with its line and column) and
    a Python tag such as ``!!python/object`` (never executed: only plain YAML is read) each get a one-line
    message that says what to fix. ``what`` names the file's role in the message (``robot file``).
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{what} {str(path)!r} does not exist")
    if path.is_dir():
        raise ConfigError(f"{what} {str(path)!r} is a folder, not a file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {str(path)!r} is not a text file (not UTF-8); pass a YAML file") from None
    except OSError as e:
        raise ConfigError(f"{what} {str(path)!r} cannot be read: {e.strerror or e}") from None
    if "\0" in text:
        raise ConfigError(f"{what} {str(path)!r} is a binary file, not YAML; pass a YAML file")
    try:
        return _yaml_load(text)
    except yaml.constructor.ConstructorError as e:
        raise ConfigError(
            f"{path}{_yaml_position(e)}: {e.problem}; config files hold plain YAML (mappings, lists, numbers, "
            "strings), never Python objects"
        ) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}{_yaml_position(e)}: invalid YAML: {_yaml_problem(e)}") from None


def _yaml_position(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    return f": line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def _yaml_problem(e: yaml.YAMLError) -> str:
    return getattr(e, "problem", None) or str(e).splitlines()[0]


# --------------------------------------------------------------------------------------------
# Shipped files, picked by name


# The folders of roboreward/configs/ whose files a command picks by name (`--robot franka`); they ship
# inside the package, so a wheel install finds them as a source checkout does.
NAMED_KINDS: dict[str, tuple[str, str]] = {
    # kind: (folder under roboreward/configs, what the messages call a file of it)
    "experiment": ("", "experiment config"),
    "robot": ("robots", "robot file"),
    "teleop robot": ("teleop/robots", "teleop robot file"),
    "hand": ("teleop/hands", "hand retargeting file"),
    "joint map": ("teleop/ros", "joint map"),
    "locomotion": ("locomotion", "locomotion policy config"),
}


def shipped_dir(kind: str) -> Path:
    """The package's folder of ``kind`` files (read with ``importlib.resources``: works from a wheel too)."""
    if kind not in NAMED_KINDS:
        raise ValueError(f"unknown kind of named config {kind!r}; one of {sorted(NAMED_KINDS)}")
    folder = importlib.resources.files("roboreward") / "configs" / NAMED_KINDS[kind][0]
    return Path(str(folder))  # pip installs packages as folders, so this is a real path


def shipped_names(kind: str) -> list[str]:
    """The names of the shipped ``kind`` files (``robot``: franka, g1, ...)."""
    return sorted(p.stem for p in shipped_dir(kind).glob("*.yaml"))


def package_dir(package: str) -> Path:
    """Where an installed Python package's files are, found without importing it (some packages roboreward
    reads data from import heavy stacks, or cannot import without their own dependencies).

    :raises SetupError: the package is not installed; ``make setup`` installs the ones roboreward uses.
    """
    spec = importlib.util.find_spec(package) if package else None
    if spec is None or not spec.submodule_search_locations:
        raise SetupError(f"the Python package {package!r} is not installed; `make setup` installs it")
    return Path(next(iter(spec.submodule_search_locations)))


def find_named(name_or_path: str | Path, kind: str) -> Path:
    """The file a user means: a shipped ``kind`` file by name (``"franka"``), or a path.

    Anything ending in ``.yaml``/``.yml`` or holding a path separator is a path; a name that is not
    shipped is refused with the names that are (and the closest one).
    """
    what = NAMED_KINDS[kind][1] if kind in NAMED_KINDS else kind
    text = str(name_or_path)
    names = shipped_names(kind)
    if text.endswith((".yaml", ".yml")) or "/" in text or os.sep in text:
        path = Path(text)
        if not path.exists():
            raise ConfigError(f"{what} {text!r} does not exist; give a YAML file or one of {names}")
        return path  # a folder or an unreadable file: read_yaml says which
    path = shipped_dir(kind) / f"{text}.yaml"
    if not path.is_file():
        close = difflib.get_close_matches(text, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown {kind} {text!r}{hint}; choose one of {names}, or give a YAML file")
    return path


def load_named(name_or_path: str | Path, kind: str, cls: type[T], overrides: Sequence[str] = ()) -> T:
    """:func:`find_named` then :func:`load_config`: the typed config of a shipped name or a YAML path."""
    return load_config(find_named(name_or_path, kind), overrides, cls=cls)


def apply_override(data: dict, override: str) -> None:
    """Set ``a.b.c=value`` in a nested dict; the value is parsed as YAML (``4``, ``true``, ``[64, 64]``)."""
    key, sep, raw = override.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {override!r} must look like key.sub=value, e.g. train.total_timesteps=5000")
    try:
        value = _yaml_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(f"override {override!r}: the value is not valid YAML ({_yaml_problem(e)})") from None
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"override {override!r}: {part!r} holds a value, not a section")
        node = child
    node[parts[-1]] = value


def save_config(config: Any, path: str | Path) -> None:
    """Write the resolved config as YAML; :func:`load_config` reads it back to an equal object."""
    atomic_write(Path(path), yaml.safe_dump(to_dict(config), sort_keys=False).encode())


def to_dict(config: Any) -> Any:
    if dataclasses.is_dataclass(config):
        out = {}
        if isinstance(config, ChoiceConfig):
            out["type"] = config.type_name  # type: ignore[attr-defined]
        for f in dataclasses.fields(config):
            out[f.name] = to_dict(getattr(config, f.name))
        return out
    if isinstance(config, (list, tuple)):
        return [to_dict(v) for v in config]
    if isinstance(config, dict):
        return {k: to_dict(v) for k, v in config.items()}
    return config


# --------------------------------------------------------------------------------------------
# Building typed objects


def from_dict(cls: type[T], data: Any, key: str = "") -> T:
    """Build dataclass ``cls`` from plain data, checking keys, types and bounds field by field."""
    where = key or "config"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys to values, got {data!r}")
    data = dict(data)
    if isinstance(cls, type) and issubclass(cls, ChoiceConfig) and cls.is_family():
        cls = cls.subclass_for(data.pop("type", None), where)
    elif "type" in data and issubclass(cls, ChoiceConfig):
        if data.pop("type") != cls.type_name:  # type: ignore[attr-defined]
            raise ConfigError(f"{where}.type must be {cls.type_name!r}")  # type: ignore[attr-defined]
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{_join(key, unknown[0])}: unknown key; {where} accepts {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        sub = _join(key, name)
        value = _default_choice_type(fields[name], hints[name], value)
        kwargs[name] = _coerce(hints[name], value, sub)
        _check_bounds(fields[name].metadata, kwargs[name], sub)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from e


def _default_choice_type(f: dataclasses.Field, hint: Any, value: Any) -> Any:
    """A section without ``type`` keeps the kind of its default (``reward.scale=5`` tunes the default reward)."""
    is_family = isinstance(hint, type) and issubclass(hint, ChoiceConfig) and hint.is_family()
    if is_family and isinstance(value, dict) and "type" not in value and f.default_factory is not dataclasses.MISSING:
        return {"type": f.default_factory().type_name, **value}  # type: ignore[misc]
    return value


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _coerce(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, key)
            except ConfigError as e:
                errors.append((arg, str(e)))
        # A list given to `int | tuple[int, str]` failed inside the tuple: that arm's message says what is wrong.
        same_shape = [message for arg, message in errors if _same_shape(arg, value)]
        if len(errors) == 1 or len(same_shape) == 1:
            raise ConfigError(same_shape[0] if len(same_shape) == 1 else errors[0][1])
        raise ConfigError(f"{key}: {value!r} matches none of {_type_name(hint)}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: {value!r} is not allowed; choose one of {list(args)}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list ({_type_name(hint)}), got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:  # tuple[int, str]: one type per position
            if len(value) != len(args):
                raise ConfigError(f"{key}: expected {len(args)} items ({_type_name(hint)}), got {value!r}")
            return tuple(_coerce(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        items = [_coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return {str(k): _coerce(args[1] if args else Any, v, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, key)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        as_float = value
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                as_float = float(value)
        # 1e5 in YAML is a float; above 2**53 a float no longer holds an exact integer.
        if isinstance(as_float, float) and as_float.is_integer() and abs(as_float) <= 2**53:
            return int(as_float)
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if hint is float:
        try:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
            if isinstance(value, str):  # PyYAML reads 3e-4 (no dot) as a string
                with contextlib.suppress(ValueError):
                    return float(value)
        except OverflowError:
            raise ConfigError(f"{key}: {value!r} is too large for a number") from None
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    raise ConfigError(f"{key}: unsupported config type {hint!r}")  # a bug in a config class, not in the YAML


def _same_shape(hint: Any, value: Any) -> bool:
    """Whether ``value`` is a container of the kind ``hint`` describes (a list for a list or tuple type)."""
    origin = typing.get_origin(hint) or hint
    if isinstance(value, (list, tuple)):
        return origin in (list, tuple)
    if isinstance(value, dict):
        return origin is dict or dataclasses.is_dataclass(hint)
    return False


def _check_bounds(meta: typing.Mapping[str, Any], value: Any, key: str) -> None:
    """The one rule for every number in a config: finite, and within the field's bounds.

    NaN fails no comparison (``nan < 0`` and ``nan >= 0`` are both false), so finiteness is checked
    first and explicitly; a field that really takes ``inf`` says ``finite=False``. Bounds and choices
    apply to each item of a list; values inside a mapping (``env.kwargs``, ``algo.hyperparams``) are
    checked for finiteness.
    """
    if value is None or dataclasses.is_dataclass(value):
        return  # a nested config checked its own fields
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_bounds(meta, item, f"{key}[{i}]")
        return
    if isinstance(value, dict):
        finite_only = {"finite": meta.get("finite", True)}
        for name, item in value.items():
            _check_bounds(finite_only, item, f"{key}.{name}")
        return
    if isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_)):
        problem = _number_problem(meta, value)
        if problem:
            raise ConfigError(f"{key}: {problem}")
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(f"{key}: {value!r} is not allowed; choose one of {list(meta['choices'])}")


def _number_problem(meta: typing.Mapping[str, Any], value: float) -> str | None:
    """What is wrong with a number under a field's rule (non-finite, out of bounds), or None."""
    if meta.get("finite", True) and not math.isfinite(value):
        return f"{value!r} is not a finite number; it must be {_allowed(meta)}"
    for bound, (holds, word) in _BOUNDS.items():
        if bound in meta and not holds(value, meta[bound]):
            size = "small" if bound in ("ge", "gt") else "large"
            return f"{value!r} is too {size}; it must be {word} {meta[bound]}"
    return None


_BOUNDS: dict[str, tuple[Callable[[Any, Any], bool], str]] = {
    "ge": (operator.ge, ">="),
    "gt": (operator.gt, ">"),
    "le": (operator.le, "<="),
    "lt": (operator.lt, "<"),
}


def _allowed(meta: typing.Mapping[str, Any]) -> str:
    """``a number > 0 and <= 1``: what a field's bounds allow, for messages."""
    parts = [f"{word} {meta[bound]}" for bound, (_, word) in _BOUNDS.items() if bound in meta]
    return "a finite number" + (" " + " and ".join(parts) if parts else "")


MAX_WHOLE_NUMBER = 2**63 - 1  # JSON, Parquet and LeRobot store counts and indices as int64


def is_whole_number(value: Any, minimum: int = 0) -> bool:
    """A number read from a file (JSON) that counts something: an int (not a bool) in ``[minimum, 2**63 - 1]``."""
    return isinstance(value, int) and not isinstance(value, bool) and minimum <= value <= MAX_WHOLE_NUMBER


def is_finite_number(value: Any, minimum: float = -math.inf) -> bool:
    """A number read from a file (JSON): a finite int or float (not a bool) ``>= minimum``.

    NaN and inf are refused by name: NaN would slip through any ``not value < minimum`` test. (An int is
    finite however large; ``math.isfinite`` cannot take every int.)
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return (isinstance(value, int) or math.isfinite(value)) and value >= minimum


def arg_number(kind: type = float, **bounds: Any) -> Callable[[str], Any]:
    """An argparse ``type=`` for a flag that takes a number, checked by the rule of every config field.

    ``p.add_argument("--max-step", type=arg_number(gt=0))``: ``--max-step nan`` (or ``inf``, or ``-1``)
    stops at the command line with a message that names the flag and what it allows.
    """

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        problem = _number_problem(bounds, value)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value

    parse.__name__ = kind.__name__  # argparse names the type in some messages
    return parse


def check_fields(config: Any, key: str = "") -> None:
    """Check every field of a config dataclass by the rule of :func:`from_dict` (finite, within bounds).

    :func:`from_dict` checks values as it reads them; this is for a config built in Python
    (``SafetyConfig(max_step=...)``), whose ``__post_init__`` calls it, and for code that must not
    trust an object it was handed (the safety layer re-checks its settings when it is built).
    """
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        sub = _join(key, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_fields(value, sub)
        else:
            _check_bounds(f.metadata, value, sub)


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def bounded(default: Any, help: str = "", **bounds: Any) -> Any:
    """A dataclass field with a default, bounds (ge/gt/le/lt/choices) and a help line."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **bounds})
    return field(default=default, metadata={"help": help, **bounds})


__all__ = [
    "ChoiceConfig",
    "arg_number",
    "ConfigError",
    "apply_override",
    "bounded",
    "check_fields",
    "dataclass",
    "find_named",
    "from_dict",
    "is_finite_number",
    "is_whole_number",
    "load_config",
    "load_named",
    "package_dir",
    "read_yaml",
    "save_config",
    "shipped_names",
    "to_dict",
]
