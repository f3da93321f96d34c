"""Typed experiment configs loaded from YAML, with ``key.sub=value`` overrides.

Every experiment is a YAML file in ``configs/`` that maps onto the dataclasses below. Loading is
strict on purpose: a typo in a key or a value of the wrong type would otherwise train for fifteen
minutes on a default the user never asked for. So an unknown key, a wrong type or an out-of-range
value stops with a :class:`ConfigError` that names the key, the value and what is allowed.

Bounds live next to the field they constrain, as dataclass field metadata::

    n_envs: int = field(default=4, metadata={"ge": 1, "le": 64, "help": "parallel envs"})

Polymorphic sections (the reward model) are chosen by a ``type`` key; see
:meth:`ChoiceConfig.register_subclass`.

Example::

    cfg = load_config("configs/arm_reach.yaml", ["train.total_timesteps=2000", "env.n_envs=2"])
    save_config(cfg, run_dir / "config.yaml")
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import yaml

from roboreward.io import atomic_write

T = TypeVar("T")


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``3e-4`` and ``1e5`` as numbers (YAML 1.2), as users write them."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # a SafeLoader: no Python objects are ever built


class ConfigError(ValueError):
    """A config value is unknown, of the wrong type or out of range. The message says how to fix it."""


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


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = (), cls: type[T] | None = None) -> T:
    """Read a YAML experiment file, apply ``key.sub=value`` overrides, and build the typed config."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist; pass a YAML file such as configs/arm_reach.yaml")
    data = _yaml_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys to values, got {type(data).__name__}")
    for override in overrides:
        apply_override(data, override)
    if cls is None:
        from roboreward.experiment import ExperimentConfig

        cls = ExperimentConfig  # type: ignore[assignment]
    return from_dict(cls, data)


def apply_override(data: dict, override: str) -> None:
    """Set ``a.b.c=value`` in a nested dict; the value is parsed as YAML (``4``, ``true``, ``[64, 64]``)."""
    key, sep, raw = override.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {override!r} must look like key.sub=value, e.g. train.total_timesteps=5000")
    value = _yaml_load(raw) if raw.strip() else None
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
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: {value!r} matches none of {_type_name(hint)}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: {value!r} is not allowed; choose one of {list(args)}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list ({_type_name(hint)}), got {value!r}")
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
        if isinstance(value, float) and value.is_integer():
            return int(value)  # 1e5 in YAML
        if isinstance(value, str):
            try:
                as_float = float(value)
                if as_float.is_integer():
                    return int(as_float)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # PyYAML reads 3e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    raise ConfigError(f"{key}: unsupported config type {hint!r}")  # a bug in a config class, not in the YAML


def _check_bounds(meta: typing.Mapping[str, Any], value: Any, key: str) -> None:
    if value is None:
        return
    if "ge" in meta and value < meta["ge"]:
        raise ConfigError(f"{key}: {value!r} is too small; it must be >= {meta['ge']}")
    if "gt" in meta and value <= meta["gt"]:
        raise ConfigError(f"{key}: {value!r} is too small; it must be > {meta['gt']}")
    if "le" in meta and value > meta["le"]:
        raise ConfigError(f"{key}: {value!r} is too large; it must be <= {meta['le']}")
    if "lt" in meta and value >= meta["lt"]:
        raise ConfigError(f"{key}: {value!r} is too large; it must be < {meta['lt']}")
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(f"{key}: {value!r} is not allowed; choose one of {list(meta['choices'])}")


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def bounded(default: Any, help: str = "", **bounds: Any) -> Any:
    """A dataclass field with a default, bounds (ge/gt/le/lt/choices) and a help line."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **bounds})
    return field(default=default, metadata={"help": help, **bounds})


__all__ = [
    "ChoiceConfig",
    "ConfigError",
    "apply_override",
    "bounded",
    "dataclass",
    "from_dict",
    "load_config",
    "save_config",
    "to_dict",
]
