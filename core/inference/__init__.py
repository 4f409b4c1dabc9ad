"""Using a trained model: text generation from a checkpoint (``plugtron generate``)."""
