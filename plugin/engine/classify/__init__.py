"""Classify: classic classifiers (Random Forest, SVM) trained on a network's deep features or on pixel values, and the
classification of whole rasters with them.
"""
