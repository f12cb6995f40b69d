"""PatchFlow engine: everything the worker runs (numpy, GDAL, later TensorFlow); never QGIS.

Its top level runs jobs (worker, operations, params, errors, reporting, checks, locks, overlap, staging,
ownership); one sub-package per stage of the workflow: geodata (raster and vector access), data (samples,
splits, patches, datasets), models, train, serve, classify (deep-features classifiers), evaluate, report.
"""
