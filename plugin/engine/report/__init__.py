"""Report: what people read and QGIS loads, written without QGIS: self-contained HTML pages, score tables (CSV and
layers without geometry), and QML styles for class maps and class points.
"""
