"""Raster work past one process, on Dask: the execution choice and the client (execution), SLURM/PBS clusters
from a small file (clusterconfig), windows aligned to the serving plan's tiles (windows), the task a Dask worker
runs on one window of Apply model (tasks), part files joined into the output (parts), the client's loop over the
windows (dispatch), and Classify's blocks on Dask (classifying)."""
