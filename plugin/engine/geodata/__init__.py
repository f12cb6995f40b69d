"""Geodata: raster and vector access through GDAL and OGR (opening with clear errors, grids, windows, stacked sources,
class-tagged points), the one place GeoTIFFs are created, and what classes mean (ids, names, colours read from label
rasters, QML sidecars or text fields). Every other stage reads and writes geodata through these modules.
"""
