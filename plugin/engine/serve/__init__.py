"""Serve: apply a model to whole rasters (OTBTF TensorflowModelServe), block by block and seamless, and style what it
writes (class maps, probabilities, images, features).
"""
