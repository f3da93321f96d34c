"""Offscreen MuJoCo rendering with the realism/throughput trade-off exposed.

On a CPU (Mesa llvmpipe behind EGL) shadows, reflections and multisampling cost most of the render
time: Humanoid-v5 renders in ~20 ms a frame with them off and ~75 ms with them on. Learned rewards
read every frame, so the defaults here are the fast ones; turn them on for videos meant for people.
"""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from dataclasses import dataclass

import numpy as np

# EGL is the headless backend that works both on CPU (Mesa) and on NVIDIA GPUs. It must be chosen
# before mujoco is imported anywhere; an explicit MUJOCO_GL from the user still wins.
os.environ.setdefault("MUJOCO_GL", "egl")


def _load_triton_before_gl() -> None:
    """Import Triton before the first GL context exists.

    Triton ships its own LLVM, and so does Mesa's llvmpipe renderer behind EGL. Whichever loads
    second crashes the process (a segfault, seen with torch 2.14 + Mesa 22), and torch imports
    Triton lazily — creating an Adam optimiser is enough — so after rendering a frame, building a
    policy would kill the process. Loading Triton first avoids the clash.
    """
    try:
        import triton.runtime.autotuner  # noqa: F401
    except Exception:  # not installed, or no usable backend: then there is nothing to clash with
        pass


_load_triton_before_gl()

import mujoco  # noqa: E402

from roboreward.errors import ConfigError  # noqa: E402

_live_renderers: weakref.WeakSet[FrameRenderer] = weakref.WeakSet()
_atexit_registered = False


def _close_live_renderers() -> None:
    # Close GL contexts while EGL is still up; left to the garbage collector at interpreter exit
    # they raise EGLError noise from mujoco's destructors. A context whose thread still runs (a
    # daemon thread may be inside a frame) is not ours to close: closing it under that thread segfaults.
    here = threading.current_thread()
    for renderer in list(_live_renderers):
        if renderer.owner is here or not renderer.owner.is_alive():
            renderer.close()


@dataclass(kw_only=True)
class RenderOptions:
    """How frames are rendered. Bigger and prettier costs frames per second."""

    width: int = 64
    height: int = 64
    camera: str | None = None  # a camera name in the model; None = the env's default camera
    shadows: bool = False
    reflections: bool = False
    multisample: int = 0  # MSAA samples (0, 2, 4, 8); 0 is fastest

    def __post_init__(self) -> None:
        if not (8 <= self.width <= 4096 and 8 <= self.height <= 4096):
            raise ConfigError(f"render size {self.width}x{self.height} is out of range; use 8..4096 pixels per side")
        if self.multisample not in (0, 2, 4, 8):
            raise ConfigError(f"multisample={self.multisample} is not allowed; choose 0, 2, 4 or 8")


class FrameRenderer:
    """Renders ``uint8 [H, W, 3]`` frames of an ``MjData`` with fixed :class:`RenderOptions`."""

    def __init__(self, model: mujoco.MjModel, options: RenderOptions, default_camera: str | int = -1):
        self.options = options
        # The offscreen buffer must be at least the frame size, and MSAA is fixed at context creation.
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, options.width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, options.height)
        previous_samples = model.vis.quality.offsamples
        model.vis.quality.offsamples = options.multisample
        camera = options.camera if options.camera is not None else default_camera
        if isinstance(camera, str) and mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera) < 0:
            names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(model.ncam)]
            raise ConfigError(f"camera {camera!r} is not in the model; choose one of {names}")
        self.camera = camera
        self._renderer: mujoco.Renderer | None = mujoco.Renderer(model, height=options.height, width=options.width)
        self.owner = threading.current_thread()  # its GL context is current in this thread
        _track(self)
        # MSAA is read at context creation only: restore the model so that a second renderer (say, a
        # high-quality video one) does not change what renderers created later on this model see.
        model.vis.quality.offsamples = previous_samples

    def render(self, data: mujoco.MjData) -> np.ndarray:
        if self._renderer is None:
            raise RuntimeError("this renderer was closed")
        self._renderer.update_scene(data, camera=self.camera)
        # Scene flags are applied per frame so that the options hold whatever touched the scene before.
        self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = self.options.shadows
        self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = self.options.reflections
        return self._renderer.render().copy()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


def _track(renderer: FrameRenderer) -> None:
    global _atexit_registered
    _live_renderers.add(renderer)
    if not _atexit_registered:  # registered after mujoco's own EGL handlers, so it runs before them
        atexit.register(_close_live_renderers)
        _atexit_registered = True
