#!/usr/bin/env bash
# One idempotent set-up path for a machine that has nothing: system library for Open3D,
# a virtual environment, the CPU torch wheel, torch-cluster built against it, then the
# package (editable) with its dev tools. Re-running it is fast (pip finds everything).
set -euo pipefail
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_VERSION=2.13.0
TORCH_CLUSTER_VERSION=1.6.3

# Open3D's wheel links libusb-1.0 (Debian package libusb-1.0-0).
if ! ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then
  echo "[setup] installing libusb-1.0-0 (needed by Open3D)"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq libusb-1.0-0 >/dev/null
fi

# Pictures (pointnormals/render.py): Open3D's offscreen renderer runs on Vulkan; with no GPU
# Mesa's software device (lavapipe) does it. Needs the loader and the lvp ICD.
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1' \
  || ! ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1; then
  echo "[setup] installing libvulkan1 mesa-vulkan-drivers (software Vulkan for pictures)"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq libvulkan1 mesa-vulkan-drivers >/dev/null
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)

# 1. torch first, in its own pip call: the pinned CPU wheel (never an unpinned CUDA build).
"$VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null \
  || { echo "[setup] installing torch==$TORCH_VERSION"; "${PIP[@]}" "torch==$TORCH_VERSION"; }

# 2. torch-cluster is a source package whose setup.py imports torch: no build isolation,
#    parallel compile (pip caches the built wheel, so a second venv takes seconds).
if ! "$VENV/bin/python" -c "import torch_cluster" 2>/dev/null; then
  echo "[setup] building torch-cluster==$TORCH_CLUSTER_VERSION (a few minutes the first time)"
  cfg=$(mktemp)
  printf '[build_ext]\nparallel = %s\n' "$(nproc 2>/dev/null || echo 2)" >"$cfg"
  "${PIP[@]}" setuptools wheel
  DIST_EXTRA_CONFIG="$cfg" CXXFLAGS="-DNDEBUG -O2 -g0 -fwrapv" \
    "${PIP[@]}" --no-build-isolation "torch-cluster==$TORCH_CLUSTER_VERSION"
  rm -f "$cfg"
fi

# 3. the package and its dev tools; torch and torch-cluster are already satisfied.
echo "[setup] installing pointnormals (editable) + dev tools"
"${PIP[@]}" -e ".[dev]"
echo "[setup] done: $VENV"
