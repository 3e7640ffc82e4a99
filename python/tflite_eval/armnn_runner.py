"""A `.tflite` loaded and run by Debian's Arm NN (python3-pyarmnn, CpuRef backend): an independent
TensorFlow Lite runtime, not bit-exact with TensorFlow Lite Micro (a few LSB on person_detect, see
the data directory's models/tflite/README.md).

Arm NN 20.08's parser checks a tensor's quantized_dimension against its rank, also on 1-D bias
tensors where TFLite ignores it (person_detect's are 3): the runtime is handed a copy with those
set to 0; the file itself is never changed. One Arm NN runtime per process (the README there)."""

import os
import tempfile

import numpy as np
import pyarmnn as ann

from . import flatbuf


class ArmnnModel:
    """Loads `path` into Arm NN's CpuRef backend. Raises RuntimeError when Arm NN refuses it (the
    parser's or optimizer's message) or the backend is missing."""

    def __init__(self, path):
        data, self.patched = flatbuf.zero_rank1_quantized_dimension(open(path, "rb").read())
        with tempfile.TemporaryDirectory() as tmp:
            copy = os.path.join(tmp, "armnn.tflite")
            open(copy, "wb").write(data)
            parser = ann.ITfLiteParser()
            try:
                network = parser.CreateNetworkFromBinaryFile(copy)
            except Exception as e:  # pyarmnn raises its own RuntimeError subclasses
                raise RuntimeError(f"Arm NN cannot parse {path}: {e}") from e
        in_names = parser.GetSubgraphInputTensorNames(0)
        out_names = parser.GetSubgraphOutputTensorNames(0)
        if len(in_names) != 1 or len(out_names) != 1:
            raise RuntimeError(f"{path}: {len(in_names)} inputs, {len(out_names)} outputs; expected 1 and 1")
        self.in_info = parser.GetNetworkInputBindingInfo(0, in_names[0])
        self.out_info = parser.GetNetworkOutputBindingInfo(0, out_names[0])
        self.runtime = ann.IRuntime(ann.CreationOptions())
        if "CpuRef" not in str(self.runtime.GetDeviceSpec()):
            raise RuntimeError("Arm NN has no CpuRef backend (apt-get install libarmnn-cpuref-backend22)")
        opt, messages = ann.Optimize(network, [ann.BackendId("CpuRef")], self.runtime.GetDeviceSpec(),
                                     ann.OptimizerOptions())
        self.net_id, _ = self.runtime.LoadNetwork(opt)
        info = self.in_info[1]
        self.input_shape = tuple(info.GetShape()[k] for k in range(info.GetNumDimensions()))
        info = self.out_info[1]
        self.output_shape = tuple(info.GetShape()[k] for k in range(info.GetNumDimensions()))

    def run(self, x):
        """The output array of one input item (its elements in the model input's order)."""
        x = np.ascontiguousarray(x).reshape(self.input_shape)
        inputs = ann.make_input_tensors([self.in_info], [x])
        outputs = ann.make_output_tensors([self.out_info])
        self.runtime.EnqueueWorkload(self.net_id, inputs, outputs)
        return ann.workload_tensors_to_ndarray(outputs)[0]

    def run_all(self, xs, progress=None):
        """Outputs of every item of xs (leading axis), stacked: [N, *output dims without batch]."""
        out = []
        for i in range(len(xs)):
            out.append(self.run(xs[i]).reshape(-1))
            if progress:
                progress(i + 1, len(xs))
        return np.stack(out)


def top1(outputs):
    """Predicted class per row: the first maximum (as `tinyzo eval` / `train` take it; the int8
    outputs order like their dequantized logits since the scale is positive)."""
    return np.argmax(outputs.reshape(len(outputs), -1), axis=1)
