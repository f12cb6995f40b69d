# PatchFlow: `make demo` and `make test` install what is missing, then run.
SHELL := /bin/bash
PY := .venv/bin/python
export QT_QPA_PLATFORM ?= offscreen
GPU ?= 0
PROFILE_PLUGINS ?= $(HOME)/.local/share/QGIS/QGIS3/profiles/default/python/plugins

.PHONY: setup demo test test-fast bench lint install data screenshots sr-experiment

setup:
	@GPU=$(GPU) bash scripts/setup.sh

data: setup
	@bash scripts/get_demo_data.sh

demo: setup data
	@$(PY) scripts/demo.py

# 'Does super-resolution help?' (patchflow:comparesr): SCENE=spot6 (default; needs ../shared/data/spot6_amsterdam)
# or SCENE=nc (NC Landsat-7 land cover, the demo data), or your data: HR=hr.tif LABELS=labels.tif|.shp|.gpkg
# [CLASS_FIELD=field (polygon/point labels)] [LR=lr.tif (a real LR image)]; CLASSIFIER=fcnn|unet|rf, REPEATS=3.
# Output in sr-experiment-output/<scene or HR name>/ (OUTPUT=DIR).
SCENE ?= spot6
CLASSIFIER ?= fcnn
REPEATS ?= 3
sr-experiment: setup
	@if [ -n "$(HR)" ]; then \
		$(PY) scripts/sr_experiment.py --hr "$(HR)" --labels "$(LABELS)" \
			$(if $(CLASS_FIELD),--class-field "$(CLASS_FIELD)") $(if $(LR),--lr "$(LR)") \
			--classifier $(CLASSIFIER) --repeats $(REPEATS) $(if $(OUTPUT),--output "$(OUTPUT)"); \
	else \
		if [ "$(SCENE)" = nc ]; then bash scripts/get_demo_data.sh; fi; \
		$(PY) scripts/sr_experiment.py --scene $(SCENE) --classifier $(CLASSIFIER) --repeats $(REPEATS) \
			$(if $(OUTPUT),--output "$(OUTPUT)"); \
	fi

test: setup
	@$(PY) -m pytest tests -q -p no:cacheprovider

test-fast: setup
	@$(PY) -m pytest tests -q -p no:cacheprovider -m "not slow"

screenshots: setup
	@test -f demo-output/summary.json || $(MAKE) demo
	@$(PY) scripts/screenshots.py

bench: setup
	@$(PY) bench/run.py

# ruff, then mypy on the engine and the protocol (settings in pyproject.toml)
lint: setup
	@.venv/bin/ruff check .
	@.venv/bin/mypy

install: setup
	@mkdir -p "$(PROFILE_PLUGINS)"
	@ln -sfn "$(CURDIR)" "$(PROFILE_PLUGINS)/patchflow"
	@/usr/bin/qgis_process.bin plugins enable patchflow >/dev/null 2>&1 || qgis_process plugins enable patchflow
	@echo "PatchFlow linked into $(PROFILE_PLUGINS)/patchflow and enabled; restart QGIS."
