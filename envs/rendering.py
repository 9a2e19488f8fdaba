"""The shared offscreen camera renderer for every MuJoCo environment.

MuJoCo's default scene is slow on software OpenGL (Mesa llvmpipe): shadow maps,
reflections and an offscreen buffer far larger than the image dominate the cost
of a 64x64 frame. :class:`CameraView` turns those off and sizes the buffer to
the image, which is what makes thousands of frames per second possible on a
CPU-only machine.
"""

from __future__ import annotations

import ctypes
import glob
import importlib.util
import os
import sys
import warnings
from collections.abc import Sequence

import mujoco
import numpy as np

_GL_HELP = (
    "MuJoCo could not create an offscreen OpenGL context (MUJOCO_GL={backend!r}). "
    "On a headless Debian/Ubuntu machine install the EGL libraries "
    "(apt-get install libegl1 libgl1-mesa-dri libegl-mesa0) or OSMesa "
    "(apt-get install libosmesa6 and set MUJOCO_GL=osmesa). MuJoCo reads MUJOCO_GL "
    "once, at the first `import mujoco`: set it in the environment, or import "
    "`envs` before `mujoco`, which defaults it to egl. Original error: {error}"
)

_COARSE_MAX_SIZE = 128
"""Views up to this many pixels keep the model's coarse tessellation."""


def _import_triton_safely() -> None:
    """Imports triton, when installed, so that a later ``import triton`` cannot crash.

    Mesa's software rasteriser (llvmpipe) and triton (which CUDA builds of torch
    install, and which torch's optimisers import on their first step) each carry
    their own LLVM, and they do not mix by default:

    - Mesa's DRI loader opens its driver (``swrast_dri.so``, linked to the system
      ``libLLVM-<N>.so``) with ``RTLD_GLOBAL``, so once any code in the process has
      made a Mesa GL context, the system LLVM's symbols are global.
    - ``libtriton.so`` contains a statically linked, newer LLVM whose symbols it also
      exports. The dynamic linker binds a library's references to the first
      definition in the global scope, so a ``libtriton.so`` loaded after Mesa's LLVM
      has its own LLVM calls bound to Mesa's: its static initialisers then mix the two
      LLVMs' objects and the process dies with a segmentation fault inside
      ``dlopen``. Seen with triton 3.8 and Mesa's LLVM 15: triton's
      ``PassBuilder.cpp`` initialiser calls ``llvm::DebugCounter::instance()``,
      which resolves to libLLVM-15's, and then grows that LLVM 15 object as if it
      had triton's LLVM's layout: ``free()`` of a garbage pointer.

    Loaded before Mesa, triton is safe (Python opens extension modules with
    ``RTLD_LOCAL``, so triton's symbols never reach Mesa). That is the normal case
    here: vmalign calls this before it makes each GL context, and the first call
    imports triton (about 0.1 s, once per process; nothing where triton is absent).

    But another library may have made the process's first GL context (Gymnasium's
    own MuJoCo envs, dm_control, ...). Then the system LLVM is already global, and
    a plain ``import triton`` would crash right here. So in that case we first open
    ``libtriton.so`` with ``RTLD_DEEPBIND``, which makes the dynamic linker bind
    triton's references to triton's own definitions before the global ones; the
    ``import triton`` that follows (ours, or torch's) reuses that already-loaded
    library. Triton then works as usual (its LLVM compiles, torch finds it), and Mesa
    keeps rendering. ``RTLD_DEEPBIND`` is used only in this case, where the
    alternative is a certain crash, because it also keeps a malloc preloaded with
    ``LD_PRELOAD`` (tcmalloc, jemalloc) from applying to triton's own calls.

    Not covered: a process where another library renders first and then torch
    imports triton before any vmalign env is made; that crashes without vmalign too.
    """
    if "triton" in sys.modules or importlib.util.find_spec("triton") is None:
        return
    if _system_llvm_loaded():
        if not _open_libtriton_deepbind():
            # No RTLD_DEEPBIND (not glibc) or no libtriton.so where expected:
            # importing triton now would crash the process, so leave it alone.
            _warn_triton_unsafe()
            return
    try:
        import triton  # noqa: F401
    except Exception:  # a broken triton install must not stop rendering
        pass


def _system_llvm_loaded() -> bool:
    """Whether a shared ``libLLVM`` (Mesa's llvmpipe links one) is already loaded."""
    try:
        with open("/proc/self/maps") as maps:
            return any("/libLLVM" in line for line in maps)
    except OSError:  # not Linux: no Mesa llvmpipe to collide with
        return False


def _open_libtriton_deepbind() -> bool:
    """Loads triton's native library with RTLD_DEEPBIND; False when that is impossible."""
    deepbind = getattr(os, "RTLD_DEEPBIND", None)
    spec = importlib.util.find_spec("triton")
    if deepbind is None or spec is None or spec.origin is None:
        return False
    libraries = glob.glob(os.path.join(os.path.dirname(spec.origin), "_C", "libtriton*.so"))
    if not libraries:
        return False
    try:
        for library in libraries:
            # The handle is dropped on purpose: ctypes never unloads a library, and the
            # import of triton._C.libtriton then reuses this one.
            ctypes.CDLL(library, mode=os.RTLD_NOW | os.RTLD_LOCAL | deepbind)
    except OSError:
        return False
    return True


_triton_warned = False


def _warn_triton_unsafe() -> None:
    global _triton_warned
    if not _triton_warned:
        _triton_warned = True
        warnings.warn(
            "another library created an OpenGL context with Mesa's software renderer "
            "before vmalign could import triton, and triton cannot be isolated from "
            "Mesa's LLVM on this platform; importing triton from now on (torch does on "
            "its first optimizer.step()) will crash the process. Import triton, or "
            "create a vmalign environment, before any other MuJoCo rendering, or "
            "uninstall triton on CPU-only machines.",
            RuntimeWarning,
            stacklevel=3,
        )


def check_camera(model: mujoco.MjModel, camera: str) -> None:
    """Raises ``ValueError`` listing the model's cameras unless it has ``camera``."""
    if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera) < 0:
        names = [model.camera(i).name for i in range(model.ncam)]
        raise ValueError(f"unknown camera {camera!r}; this model has cameras {names}")


class CameraView:
    """Renders one camera of a model to ``uint8`` (size, size, 3) arrays.

    :param model: the compiled model; its offscreen buffer size is set to the image
        size while the GL context is created (the model is otherwise unchanged).
    :param size: image height and width in pixels.
    :param camera: name of a camera in the model.
    """

    def __init__(self, model: mujoco.MjModel, size: int, camera: str) -> None:
        check_camera(model, camera)
        self.size = size
        self.camera = camera
        _import_triton_safely()
        global_, quality = model.vis.global_, model.vis.quality
        saved = (global_.offwidth, global_.offheight, quality.numslices, quality.numstacks)
        global_.offwidth, global_.offheight = size, size
        if size > _COARSE_MAX_SIZE:
            # Round shapes are tessellated once, when the GL context is made: large
            # views get smooth ones, small views keep the model's coarse default.
            quality.numslices, quality.numstacks = 24, 12
        try:
            self._renderer = mujoco.Renderer(model, height=size, width=size, max_geom=500)
        except Exception as error:  # GL failures surface as several exception types
            raise RuntimeError(
                _GL_HELP.format(backend=os.environ.get("MUJOCO_GL"), error=error)
            ) from error
        finally:
            global_.offwidth, global_.offheight, quality.numslices, quality.numstacks = saved
        flags = self._renderer.scene.flags
        flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = 0
        # Sites, joints and other decorations stay in their default hidden groups.
        self._option = mujoco.MjvOption()

    def render(self, data: mujoco.MjData, out: np.ndarray | None = None) -> np.ndarray:
        """Renders the current state of ``data``; writes into ``out`` when given."""
        self._renderer.update_scene(data, camera=self.camera, scene_option=self._option)
        if out is None:
            out = np.empty((self.size, self.size, 3), dtype=np.uint8)
        return self._renderer.render(out=out)

    def close(self) -> None:
        """Frees the GL context; the view cannot render afterwards."""
        self._renderer.close()


class EnvViews:
    """The two views a MuJoCo environment renders.

    The policy's observation (``obs_size`` from ``camera``) and the reward-model view
    of ``render()``: ``render_size`` square from each of ``render_cameras``, placed
    side by side, so k cameras give a (render_size, k * render_size, 3) frame. Two
    cameras give a reward model the depth a single view lacks (in one picture a hand
    in front of a ball and a hand at the ball look alike). The render contexts are
    made on first use, so envs that never render pay nothing.

    A render camera that is the observation's camera at the same size is the same
    picture: ``render`` then copies the last observation while the simulation has not
    moved since (same ``data.time``, ``qpos`` and mocap poses), instead of drawing it
    again, which halves the rendering of a training run whose reward scores that
    view. Edits to the model itself (colours, geom poses) between an observation and
    a render are the envs' own reset-time business and are always followed by a new
    observation.
    """

    def __init__(
        self, model: mujoco.MjModel, obs_size: int, camera: str, render_size: int,
        render_cameras: str | Sequence[str],
    ) -> None:
        if isinstance(render_cameras, str):
            render_cameras = (render_cameras,)
        for name in (camera, *render_cameras):
            check_camera(model, name)
        self._model = model
        self._obs_size, self._camera = obs_size, camera
        self._render_size = render_size
        self._render_cameras = tuple(render_cameras)
        self._observation_view: CameraView | None = None
        self._render_views: dict[str, CameraView] = {}
        self._shared_camera = camera if obs_size == render_size else None
        self._last_observation: tuple[np.ndarray, tuple[float, bytes, bytes]] | None = None

    @property
    def observation_view(self) -> CameraView:
        """The observation camera's renderer, made on first use (an env observing state
        only never makes its GL context)."""
        if self._observation_view is None:
            self._observation_view = CameraView(self._model, self._obs_size, self._camera)
        return self._observation_view

    def observe(self, data: mujoco.MjData) -> np.ndarray:
        """A fresh observation frame."""
        frame = self.observation_view.render(data)
        if self._shared_camera in self._render_cameras:
            self._last_observation = (frame.copy(), _state_stamp(data))
        return frame

    def render(self, data: mujoco.MjData) -> np.ndarray:
        """A fresh reward-model frame: every render camera's view, left to right."""
        size = self._render_size
        frame = np.empty((size, size * len(self._render_cameras), 3), dtype=np.uint8)
        for index, camera in enumerate(self._render_cameras):
            tile = frame[:, index * size:(index + 1) * size]
            if camera == self._shared_camera and self._last_observation is not None:
                observation, stamp = self._last_observation
                if stamp == _state_stamp(data):
                    tile[...] = observation
                    continue
            if camera not in self._render_views:
                self._render_views[camera] = CameraView(self._model, size, camera)
            view = self._render_views[camera]
            if tile.flags.c_contiguous:  # one camera: the tile is the whole frame
                view.render(data, out=tile)
            else:  # a tile of a wider frame is strided: render whole, then copy in
                tile[...] = view.render(data)
        return frame

    def close(self) -> None:
        """Frees every GL context."""
        for view in (self._observation_view, *self._render_views.values()):
            if view is not None:
                view.close()
        self._observation_view = None
        self._render_views = {}


def _state_stamp(data: mujoco.MjData) -> tuple[float, bytes, bytes]:
    """What identifies a simulation state for :class:`EnvViews`' reuse of a frame."""
    return data.time, data.qpos.tobytes(), data.mocap_pos.tobytes()
