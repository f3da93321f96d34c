"""MJCF models on disk and the names in them: what the teleop robots and the hand retargeting share.

A teleop robot (:mod:`roboreward.teleop.robots`) compiles its scene and looks joints and bodies up by
name; a hand retargeting map (:mod:`roboreward.teleop.retarget`) reads its joint limits from the
hand's MJCF. Both find the file the same way and name a missing joint the same way, from here::

    path = resolve_model_path("pkg://mujoco_menagerie/unitree_g1/scene.xml")
    limits = joint_limits_from_mjcf(path, ["left_hand_index_0_joint"])      # [[lower, upper]]

Compiling a humanoid with its meshes takes seconds, so each model is compiled once per process
(:func:`cached_model`).
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import roboreward.envs.rendering  # noqa: F401  (sets MUJOCO_GL=egl before mujoco loads)
from roboreward.config import package_dir
from roboreward.errors import ConfigError, SetupError

import mujoco  # noqa: E402  (after rendering: it picks the GL backend)


def resolve_model_path(model: str, base_dir: str | Path | None = None) -> Path:
    """An MJCF path: ``pkg://PACKAGE/REL`` (in an installed Python package), absolute, or relative to ``base_dir``."""
    if not model:
        raise ConfigError("model: empty; give the MJCF file, e.g. pkg://PACKAGE/path/scene.xml")
    if model.startswith("pkg://"):
        package, _, rel = model[len("pkg://"):].partition("/")
        try:
            path = package_dir(package) / rel
        except SetupError as e:
            raise SetupError(f"model: {model!r}: {e}") from None
    else:
        path = Path(model)
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
    if not path.is_file():
        raise ConfigError(f"model: MJCF file {str(path)!r} does not exist (from {model!r})")
    return path


_model_cache: dict[tuple, Any] = {}
_model_lock = threading.Lock()


def cached_model(key: tuple, build: Callable[[], Any]) -> Any:
    """``build()`` once per process and ``key`` (a hashable description of the variant), then the same object."""
    with _model_lock:
        if key not in _model_cache:
            _model_cache[key] = build()
        return _model_cache[key]


def joint_limits_from_model(model: mujoco.MjModel, names: Sequence[str]) -> np.ndarray:
    """``[len(names), 2]`` lower/upper limits of the named joints (-inf/inf where a joint is unlimited)."""
    out = np.empty((len(names), 2))
    for i, name in enumerate(names):
        jid = joint_id(model, name)
        out[i] = model.jnt_range[jid] if model.jnt_limited[jid] else (-np.inf, np.inf)
    return out


def joint_limits_from_mjcf(model: str | Path, names: Sequence[str]) -> np.ndarray:
    """:func:`joint_limits_from_model` for an MJCF file (``pkg://`` paths allowed); compiled once per process."""
    path = resolve_model_path(str(model))
    m = cached_model(("file", str(path)), lambda: mujoco.MjModel.from_xml_path(str(path)))
    return joint_limits_from_model(m, names)


def joint_id(model: mujoco.MjModel, name: str) -> int:
    """The id of joint ``name``; a ConfigError listing the model's joints if there is none."""
    return _named_id(model, "joint", name, list_all=True)


def body_id(model: mujoco.MjModel, name: str, key: str) -> int:
    """The id of body ``name``, which the config key ``key`` gave; a ConfigError naming that key if there is none."""
    return _named_id(model, "body", name, where=f"{key}: ")


# kind -> (MuJoCo object type, the model's count of them)
_NAMED_KINDS = {"joint": (mujoco.mjtObj.mjOBJ_JOINT, "njnt"), "body": (mujoco.mjtObj.mjOBJ_BODY, "nbody")}


def _named_id(model: mujoco.MjModel, kind: str, name: str, *, where: str = "", list_all: bool = False) -> int:
    """The id of the ``kind`` (``"joint"`` or ``"body"``) called ``name`` in a compiled model.

    A missing name is a config typo, so the error suggests the closest name there is (and, with
    ``list_all``, lists them all); ``where`` prefixes the message with the config key that named it.
    """
    obj, count = _NAMED_KINDS[kind]
    idx = mujoco.mj_name2id(model, obj, name)
    if idx < 0:
        names = [getattr(model, kind)(i).name for i in range(getattr(model, count))]
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        listing = f"; its {kind}s: {names}" if list_all else ""
        raise ConfigError(f"{where}{kind} {name!r} is not in the model{hint}{listing}")
    return idx


__all__ = [
    "body_id",
    "cached_model",
    "joint_id",
    "joint_limits_from_mjcf",
    "joint_limits_from_model",
    "resolve_model_path",
]
