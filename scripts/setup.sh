#!/usr/bin/env bash
# Installs what is missing, nothing else: Debian packages (QGIS, GDAL), then the venv .venv over
# Debian's python3 with the pinned requirements. A second run installs nothing.
# GPU=1 installs the CUDA build of TensorFlow (requirements-gpu.txt).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(qgis python3-qgis qgis-providers python3-gdal gdal-bin python3-matplotlib python3-venv python3-pip unzip)
missing=()
for package in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

requirements=requirements.txt
[ "${GPU:-0}" = "1" ] && requirements=requirements-gpu.txt
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv (Debian's python3, with its system site-packages for GDAL and PyQGIS)"
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
stamp=".venv/.installed-$(md5sum "$requirements" | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "setup: installing $requirements into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check -r "$requirements"
  rm -f .venv/.installed-*
  touch "$stamp"
fi
.venv/bin/python -c "import numpy, osgeo.gdal, qgis.core" \
  || { echo "setup: .venv cannot import numpy, GDAL and QGIS together" >&2; exit 1; }
