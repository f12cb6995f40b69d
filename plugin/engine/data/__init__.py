"""Data: training data made from geodata. Sample points per class (from a label raster or labelled vectors), split them
into spatially disjoint train/valid/test sets, extract patches into OTBTF patches-images with a manifest, build
super-resolution LR/HR pairs, and stream datasets from disk (chunks and the record cache) into training.
"""
