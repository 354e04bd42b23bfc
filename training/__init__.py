"""Training pipeline (not shipped): the PyTorch model, export to int8 weights, data."""
