#!/usr/bin/env bash
# System libraries for headless MuJoCo rendering (EGL with Mesa's software rasteriser).
# Installs them with apt only when missing, so it is a no-op on a prepared machine.
set -euo pipefail
if ldconfig -p | grep -q 'libEGL_mesa.so' && ldconfig -p | grep -q 'libGL.so.1'; then
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "roboreward needs EGL (Mesa) for headless rendering: install libEGL and Mesa's EGL/DRI drivers" >&2
    exit 1
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri libgles2
