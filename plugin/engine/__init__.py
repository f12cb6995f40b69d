"""PatchFlow engine: everything the worker runs (numpy, GDAL, later TensorFlow); never QGIS."""
