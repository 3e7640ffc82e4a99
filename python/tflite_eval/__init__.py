"""Running exported `.tflite` files in an independent TensorFlow Lite runtime (Debian's Arm NN,
`python3-pyarmnn`, CpuRef backend) on the inputs `tinyzo split --inputs-for` writes, so its top-1
is comparable with `tinyzo train`'s (examples/tflite-journey, docs/import.md).

Needs /usr/bin/python3 (Debian's numpy and pyarmnn)."""
