"""The package as a user installs it: the built wheel (not this editable checkout) in a fresh virtualenv,
run from a folder outside the checkout. What the commands load by name (robot files, teleop robots, hands,
experiments) must ship inside the wheel.

The virtualenv reuses this environment's installed dependencies (a ``.pth`` file points at them), so the
test needs no network and no second copy of torch; roboreward itself comes from the wheel only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

DOMAIN_ID = 201  # the multi-process hardware tests draw their domains from 1..100
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A virtualenv holding the wheel built from this checkout; its ``bin`` folder."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"  # a copy: building writes build/ and *.egg-info beside the sources
    shutil.copytree(REPO / "roboreward", source / "roboreward",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp / "dist"), str(source)], check=True, capture_output=True)
    wheel = next((tmp / "dist").glob("roboreward-*.whl"))
    env_dir = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(env_dir), "platbase": str(env_dir)}))
    # This environment's packages, after the venv's own (so its roboreward is the wheel's); ROS 2's wheels
    # set themselves up from a .pth line of their own, repeated here.
    (site / "reuse_test_dependencies.pth").write_text(
        f"{sysconfig.get_path('purelib')}\nimport ros_wheels_bootstrapper\n"
    )
    subprocess.run([sys.executable, "-m", "pip", "--python", str(env_dir / "bin" / "python"), "install", "--quiet",
                    "--no-deps", "--no-index", str(wheel)], check=True, capture_output=True)
    return env_dir / "bin"


def run(venv: Path, cwd: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(MUJOCO_GL="egl", ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=str(DOMAIN_ID),
               PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.run([str(venv / args[0]), *args[1:]], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_the_wheel_is_what_runs_and_ships_its_named_configs(venv, tmp_path):
    code = ("import roboreward, roboreward.config as c; print(roboreward.__file__); "
            "print([(k, c.shipped_names(k)) for k in sorted(c.NAMED_KINDS)])")
    out = run(venv, tmp_path, "python", "-c", code)
    assert out.returncode == 0, out.stderr
    location, names = out.stdout.splitlines()
    assert Path(location).is_relative_to(venv.parent) and not Path(location).is_relative_to(REPO)
    for name in ("'franka'", "'g1'", "'diff_drive'", "'g1_hand'", "'shadow_hand'", "'default_job'", "'arm_reach'",
                 "'g1_holosoma'"):
        assert name in names, names


def test_sim_robot_teleop_and_train_run_from_the_wheel_outside_the_checkout(venv, tmp_path):
    sim = run(venv, tmp_path, "roboreward", "sim-robot", "franka", "--no-images", "--duration", "2",
              "--domain-id", str(DOMAIN_ID))
    assert sim.returncode == 0 and "franka: ready;" in sim.stdout and ": stopped;" in sim.stdout, sim.stdout + sim.stderr

    teleop = run(venv, tmp_path, "roboreward", "teleop", "run", "--robot", "g1", "--simulated", "--duration", "3",
                 "--viewer", "off")
    assert teleop.returncode == 0, teleop.stdout + teleop.stderr
    assert "exo_left" in teleop.stdout and "glove_right" in teleop.stdout, teleop.stdout  # the session's stats table

    train = run(venv, tmp_path, "roboreward", "train", "arm_reach", "train.total_timesteps=64", "env.n_envs=1",
                "algo.hyperparams.learning_starts=32", "algo.hyperparams.batch_size=16", "algo.net_arch=[16]",
                "train.progress_bar=false", "--run-dir", "run")
    assert train.returncode == 0, train.stdout + train.stderr
    assert (tmp_path / "run" / "model.zip").is_file() and (tmp_path / "run" / "config.yaml").is_file()
