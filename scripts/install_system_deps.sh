#!/usr/bin/env bash
# System packages: libraries for headless MuJoCo rendering (EGL with Mesa's software rasteriser), and the
# compilers that build the reference ORCA (RVO2) the tests compare with. Installs with apt only what is
# missing, so it is a no-op on a prepared machine.
set -euo pipefail
missing=()
if ! (ldconfig -p | grep -q 'libEGL_mesa.so' && ldconfig -p | grep -q 'libGL.so.1'); then
    missing+=(libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri libgles2)
fi
command -v cmake >/dev/null || missing+=(cmake)
command -v g++ >/dev/null || missing+=(g++)
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
    echo "roboreward needs: ${missing[*]} (EGL/Mesa for headless rendering; cmake and g++ to build RVO2 for the tests)" >&2
    exit 1
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${missing[@]}"
