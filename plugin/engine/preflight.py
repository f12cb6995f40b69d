"""Checks before the run: the cheap checks an operation runs first (band counts against the model card
or the classifier, patch sizes, CRS, extents, datasets readable), run on their own, so that the QGIS
side can refuse a bad input in the dialog (the algorithm's ``checkParameterValues``) before any worker
or TensorFlow starts. The operation runs the same checks again in the worker (its own first step),
so nothing is skipped when this is not run (the command line, a QGIS Python without numpy).

Nothing here imports TensorFlow, Keras or scikit-learn (tests/engine/test_preflight.py checks it),
reads more than the metadata and a few blocks of a raster, or writes a file a user would see (the
writability probe of the training's OUTPUT is a hidden folder, removed at once). Warnings are not
said here: the worker says them, once, when it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from ..declarations import OPERATIONS as DECLARATIONS
from .params import Params
from .reporting import Reporter


def _apply_model(params: Params) -> None:
    from . import checks
    from .geodata.raster import Grid, open_raster
    from .serve.binding import MAX_SOURCES
    from .serve.sourcegrids import check_grids

    checks.rasters(params, *(f"SOURCE{i}" for i in range(1, MAX_SOURCES + 1)))
    card = checks.card_of(params.string("MODEL"))
    checks.sources_against_card(params, card, MAX_SOURCES)
    checks.outputs_in_card(params.string("MODEL"), card, str(params.values.get("OUTPUTS") or "").split(";"), "OUTPUTS")
    checks.extent_overlaps(params, "SOURCE1")
    # SOURCE2, SOURCE3: SOURCE1's CRS, overlapping it, at the ratio of pixel sizes the model was trained with
    parameters = [f"SOURCE{i}" for i in range(1, MAX_SOURCES + 1) if checks.raster_paths(params, f"SOURCE{i}")]
    if card is None or len(parameters) < 2:
        return
    given = [n.strip() for n in str(params.values.get("INPUT_NAMES") or "").split(";") if n.strip()]
    names = given or [spec.name for spec in card.inputs]
    sources = []
    for parameter, name in zip(parameters, names):
        grid = Grid.of(open_raster(checks.raster_paths(params, parameter)[0], parameter), parameter)
        sources.append(SimpleNamespace(name=name, stack=SimpleNamespace(grid=grid)))
    check_grids(sources, parameters, card)  # type: ignore[arg-type]  # the grids and names are all it reads


def _train_model(params: Params) -> None:
    from . import checks
    from .train.trainsettings import Settings, check_output

    settings = Settings.from_params(params)
    check_output(params.string("OUTPUT"), params.boolean("OVERWRITE"))
    checks.training(params, Reporter(), settings.batch_size, settings.epochs)


def _extract_patches(params: Params) -> None:
    from . import checks
    from .data.extraction import _sources_from
    from .data.sourcechecks import check_sources

    checks.rasters(params, "SOURCE1", "SOURCE2", "SOURCE3", "LABEL_RASTER", labels={"LABEL_RASTER": None})
    if params.values.get("LABEL_POLYGONS"):
        return  # rasterising the polygons is the run's first step, not a cheap check
    check_sources(_sources_from(params))


def _train_classifier(params: Params) -> None:
    from . import checks

    checks.classifier_training(params)
    checks.classifier_sources(params)
    if params.values.get("MODEL"):
        return  # which source a model's features read is known once its extractor is made (scikit-learn loaded)
    from .classify.labelled import check_validation, load_dataset

    train = load_dataset(params.string("DATASET"), "DATASET")  # a labels image, one class per patch
    for key in ("VALID", "TEST"):
        if params.values.get(key):
            check_validation(train, load_dataset(params.string(key), key), key)


def _classify(params: Params) -> None:
    from . import checks

    checks.rasters(params, "INPUT", "INPUT2", "INPUT3")
    checks.input_against_classifier(params, checks.classifier_description(params.values.get("CLASSIFIER")))


PREFLIGHTS: dict[str, Callable[[Params], None]] = {
    "apply_model": _apply_model,
    "train_model": _train_model,
    "extract_patches": _extract_patches,
    "train_classifier": _train_classifier,
    "classify": _classify,
}


def preflight(operation: str, parameters: dict[str, Any], labels: dict[str, str] | None = None) -> None:
    """Run ``operation``'s checks before the run on a job's parameters; a bad input raises the
    PatchFlowError the worker would raise, naming its parameter. Operations without checks here pass."""
    check = PREFLIGHTS.get(operation)
    if check is not None:
        from .overlap import check_outputs_apart, check_outputs_hold_nothing_else

        params = Params(dict(parameters), labels, DECLARATIONS.get(operation))
        check_outputs_apart(params.values, params.describe)  # first, as the worker does: an output over an input
        check_outputs_hold_nothing_else(params.values)
        check(params)
