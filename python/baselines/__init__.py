"""Back-propagation baselines for tinyzo (docs/baselines.md): the int8 network of
tests/reference/reference.py rebuilt in PyTorch with straight-through estimators, trained with
FP32 back-propagation or MIT tiny-training style quantized back-propagation (QAS, integer updates),
on the split files written by `tinyzo split`."""
