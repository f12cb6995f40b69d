#!/usr/bin/env bash
# qgis_process with PatchFlow enabled, headless. Debian's /usr/bin/qgis_process wrapper passes
# --noversioncheck, which QGIS 3.22 rejects, so the binary is called directly. The plugin is found
# through QGIS_PLUGINPATH (a folder holding a 'patchflow' link to this checkout).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/runtime-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
links="$root/.cache/plugins"
mkdir -p "$links"
[ -L "$links/patchflow" ] || ln -sfn "$root" "$links/patchflow"
export QGIS_PLUGINPATH="$links${QGIS_PLUGINPATH:+:$QGIS_PLUGINPATH}"
binary=/usr/bin/qgis_process.bin
[ -x "$binary" ] || binary="$(command -v qgis_process)"
if [ ! -f "${QGIS_CUSTOM_CONFIG_PATH:-$HOME/.local/share/QGIS/QGIS3}/profiles/default/.patchflow-enabled" ]; then
  "$binary" plugins enable patchflow >/dev/null 2>&1 || true
  mkdir -p "${QGIS_CUSTOM_CONFIG_PATH:-$HOME/.local/share/QGIS/QGIS3}/profiles/default"
  touch "${QGIS_CUSTOM_CONFIG_PATH:-$HOME/.local/share/QGIS/QGIS3}/profiles/default/.patchflow-enabled"
fi
# QGIS computes statistics of every raster layer it loads (a model's raster inputs too, outside
# PatchFlow's algorithms) and GDAL would save them as an .aux.xml beside the user's file: this one-shot
# QGIS keeps them to itself. The worker gets PAM back (it reads, and never writes, the inputs' .aux.xml).
export GDAL_PAM_ENABLED=NO PATCHFLOW_QGIS_PAM_OFF=1
# QGIS 3.22 itself calls sip.setapi() when it starts Python (QgsPythonUtilsImpl::checkSystemImports, in C++,
# before any plugin loads), as code of __main__, so Python prints "<string>:1: DeprecationWarning: setapi() is
# deprecated" on every call. Only that warning is turned off, for QGIS's __main__ alone; the user's own
# PYTHONWARNINGS come after it and win.
export PYTHONWARNINGS="ignore:setapi() is deprecated:DeprecationWarning:__main__${PYTHONWARNINGS:+,$PYTHONWARNINGS}"
exec "$binary" "$@"
