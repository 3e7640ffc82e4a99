"""Read PyTorch `torch.save` zip files without torch or numpy.

A `torch.save` file (format of torch >= 1.6) is a zip archive with one top folder holding
`data.pkl` (a pickle of the saved object), optionally `byteorder`, and one raw storage per tensor
under `data/<key>`. Tensors are pickled as `torch._utils._rebuild_tensor_v2(storage, offset,
size, stride, ...)` where the storage is a persistent id `('storage', <type>, key, location,
numel)`. Objects that contain numpy arrays (tiny-training's `.pkl` models) pickle them inline as
`numpy.core.multiarray._reconstruct` + `BUILD` state, with the bytes passed through
`_codecs.encode(str, 'latin1')`.

`load(path)` rebuilds the pickled object with every tensor or numpy array replaced by a
`Tensor` (shape, dtype name, flat C-order `array.array`). Only a fixed allow-list of globals
may be instantiated, so loading an untrusted file cannot run code; anything else is a
`TorchZipError` with a one-line message.
"""

import array
import codecs
import collections
import io
import pickle
import struct
import sys
import zipfile
import zlib


class TorchZipError(ValueError):
    """The file is not a readable torch.save zip (message is one line, names the file)."""


def _typecode(kind, size):
    """The array.array typecode of the given kind ('i', 'u', 'f') and byte size."""
    for code in {"i": "bhilq", "u": "BHILQ", "f": "fd"}[kind]:
        if array.array(code).itemsize == size:
            return code
    raise TorchZipError("no array typecode for %s%d on this platform" % (kind, size))


# dtype name -> (array typecode, element size in the file). float16/bfloat16 have no array
# typecode: they are widened (exactly) to float32 when decoded.
_DTYPES = {
    "int8": (_typecode("i", 1), 1),
    "uint8": (_typecode("u", 1), 1),
    "bool": (_typecode("u", 1), 1),
    "int16": (_typecode("i", 2), 2),
    "int32": (_typecode("i", 4), 4),
    "int64": (_typecode("i", 8), 8),
    "float16": ("f", 2),
    "bfloat16": ("f", 2),
    "float32": (_typecode("f", 4), 4),
    "float64": (_typecode("f", 8), 8),
}

# torch storage class names and numpy dtype strings, mapped onto the names above.
_TORCH_STORAGES = {
    "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool",
    "ShortStorage": "int16", "IntStorage": "int32", "LongStorage": "int64",
    "HalfStorage": "float16", "BFloat16Storage": "bfloat16",
    "FloatStorage": "float32", "DoubleStorage": "float64",
}
_NUMPY_KINDS = {
    "i1": "int8", "u1": "uint8", "b1": "bool", "i2": "int16", "i4": "int32", "i8": "int64",
    "f2": "float16", "f4": "float32", "f8": "float64",
}


class Tensor:
    """A dense tensor: `shape` (tuple of ints), `dtype` (a name such as 'float32', 'int8'),
    `data` (a flat `array.array` in C order; float16/bfloat16 values are held as float32)."""

    __slots__ = ("shape", "dtype", "data")

    def __init__(self, shape=(), dtype="float32", data=None):
        self.shape = tuple(shape)
        self.dtype = dtype
        self.data = data if data is not None else array.array(_DTYPES[dtype][0])

    @property
    def numel(self):
        n = 1
        for d in self.shape:
            n *= d
        return n

    def item(self):
        """The single value of a tensor with one element (as a Python int or float)."""
        if len(self.data) != 1:
            raise TorchZipError("item() of a tensor with %d elements" % len(self.data))
        return self.data[0]

    def tolist(self):
        return list(self.data)

    def __repr__(self):
        return "Tensor(shape=%s, dtype=%s)" % (self.shape, self.dtype)


def _decode(raw, dtype, little_endian=True):
    """Raw storage bytes -> flat array of `dtype`."""
    code, size = _DTYPES[dtype]
    if len(raw) % size:
        raise TorchZipError("storage of %d bytes is not a whole number of %s" % (len(raw), dtype))
    if dtype == "float16":
        n = len(raw) // 2
        return array.array("f", struct.unpack(("<" if little_endian else ">") + "%de" % n, raw))
    if dtype == "bfloat16":
        # bfloat16 is the top half of a float32: widen by appending 16 zero bits.
        halves = array.array(_typecode("u", 2), raw)
        if little_endian != (sys.byteorder == "little"):
            halves.byteswap()
        wide = array.array(_typecode("u", 4), (h << 16 for h in halves))
        return array.array("f", wide.tobytes())
    out = array.array(code)
    out.frombytes(raw)
    if size > 1 and little_endian != (sys.byteorder == "little"):
        out.byteswap()
    return out


def _contiguous_strides(shape):
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= d
    return tuple(reversed(strides))


def _gather(flat, offset, shape, strides):
    """Elements of a strided view of `flat`, in C order (a plain slice when contiguous)."""
    n = 1
    for d in shape:
        n *= d
    if n == 0:
        return flat[0:0]
    dense = all(s == c for s, c, d in zip(strides, _contiguous_strides(shape), shape) if d > 1)
    if dense:
        if offset + n > len(flat):
            raise TorchZipError("tensor view runs past the end of its storage")
        return flat[offset:offset + n]
    last = offset + sum((d - 1) * s for d, s in zip(shape, strides))
    if offset < 0 or last >= len(flat) or any(s < 0 for s in strides):
        raise TorchZipError("tensor view runs past the end of its storage")
    out = array.array(flat.typecode)
    index = [0] * len(shape)
    for _ in range(n):
        out.append(flat[offset + sum(i * s for i, s in zip(index, strides))])
        for axis in range(len(shape) - 1, -1, -1):
            index[axis] += 1
            if index[axis] < shape[axis]:
                break
            index[axis] = 0
    return out


class _StorageType:
    """Stands in for a torch storage class (torch.FloatStorage...) inside the pickle."""

    def __init__(self, dtype):
        self.dtype = dtype


class _Storage:
    def __init__(self, dtype, values):
        self.dtype = dtype
        self.values = values


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    if not isinstance(storage, _Storage):
        raise TorchZipError("tensor rebuilt from something that is not a storage")
    return Tensor(tuple(size), storage.dtype,
                  _gather(storage.values, storage_offset, tuple(size), tuple(stride)))


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data  # an nn.Parameter is its tensor here


class _NumpyDType:
    """numpy.dtype(kind, align, copy); BUILD may then set the byte order."""

    def __init__(self, kind, align=False, copy=True):
        self.kind = kind
        self.byteorder = "="

    def __setstate__(self, state):
        # (version, byteorder, subarray, names, fields, elsize, alignment, flags)
        if isinstance(state, tuple) and len(state) >= 2 and isinstance(state[1], str):
            self.byteorder = state[1]
        if isinstance(state, tuple) and len(state) >= 4 and state[3] is not None:
            raise TorchZipError("structured numpy dtypes are not supported")

    def resolve(self):
        kind = self.kind.lstrip("<>=|")
        if kind not in _NUMPY_KINDS:
            raise TorchZipError("unsupported numpy dtype %r" % self.kind)
        order = self.byteorder if self.byteorder in "<>" else "<" if sys.byteorder == "little" else ">"
        if self.kind[:1] in "<>":
            order = self.kind[0]
        return _NUMPY_KINDS[kind], order == "<"


class _NumpyArray(Tensor):
    """What `numpy.core.multiarray._reconstruct` returns; pickle's BUILD fills it in."""

    __slots__ = ()

    def __setstate__(self, state):
        # ndarray.__reduce__ state: (version, shape, dtype, is_fortran, rawdata); version absent
        # in very old numpy.
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise TorchZipError("unrecognised numpy array state")
        shape, dtype, is_fortran, raw = state[-4:]
        if not isinstance(dtype, _NumpyDType):
            raise TorchZipError("numpy array without a dtype")
        if not isinstance(raw, (bytes, bytearray)):
            raise TorchZipError("numpy object arrays are not supported")
        name, little = dtype.resolve()
        flat = _decode(bytes(raw), name, little)
        shape = tuple(shape)
        n = 1
        for d in shape:
            n *= d
        if len(flat) != n:
            raise TorchZipError("numpy array data does not match its shape %s" % (shape,))
        if is_fortran and len(shape) > 1:
            strides, acc = [], 1
            for d in shape:
                strides.append(acc)
                acc *= d
            flat = _gather(flat, 0, shape, tuple(strides))
        self.shape, self.dtype, self.data = shape, name, flat


def _numpy_reconstruct(subtype, shape, typecode):
    return _NumpyArray()


def _numpy_scalar(dtype, raw=None):
    if not isinstance(dtype, _NumpyDType) or not isinstance(raw, (bytes, bytearray)):
        raise TorchZipError("unsupported numpy scalar")
    name, little = dtype.resolve()
    values = _decode(bytes(raw), name, little)
    if len(values) != 1:
        raise TorchZipError("numpy scalar with %d values" % len(values))
    return values[0]


def _codecs_encode(text, encoding="utf-8", errors="strict"):
    # Only the latin1 round trip numpy uses for raw bytes under pickle protocol 2.
    if encoding.replace("-", "").lower() not in ("latin1", "iso88591"):
        raise TorchZipError("unexpected _codecs.encode(%r)" % encoding)
    return codecs.encode(text, encoding, errors)


class _Unpickler(pickle.Unpickler):
    _ALLOWED = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("_codecs", "encode"): _codecs_encode,
        ("numpy", "ndarray"): _NumpyArray,
        ("numpy", "dtype"): _NumpyDType,
        ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
        ("numpy.core.multiarray", "scalar"): _numpy_scalar,
        ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    }

    def __init__(self, data, read_storage):
        super().__init__(io.BytesIO(data))
        self._read_storage = read_storage
        self._storages = {}

    def find_class(self, module, name):
        if module == "torch" and name in _TORCH_STORAGES:
            return _StorageType(_TORCH_STORAGES[name])
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise TorchZipError("unsupported pickled object %s.%s" % (module, name)) from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise TorchZipError("unsupported persistent id %r" % (pid[:2],))
        _, storage_type, key, _location, numel = pid[:5]
        if key not in self._storages:
            values = self._read_storage(str(key), storage_type.dtype)
            if len(values) != numel:
                raise TorchZipError("storage %s holds %d elements, the pickle says %d"
                                    % (key, len(values), numel))
            self._storages[key] = _Storage(storage_type.dtype, values)
        return self._storages[key]


def load(path):
    """Load a torch.save zip file; returns the pickled object with `Tensor`s for its tensors.

    Raises TorchZipError (one-line message naming `path`) when the file is missing, not a zip,
    truncated, corrupt (zip CRC), or pickles an object outside the allow-list.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            pickles = [n for n in names if n.count("/") == 1 and n.endswith("/data.pkl")]
            if len(pickles) != 1:
                raise TorchZipError("no unique <folder>/data.pkl inside")
            prefix = pickles[0][:-len("data.pkl")]
            little = True
            if prefix + "byteorder" in names:
                order = archive.read(prefix + "byteorder").decode("ascii", "replace").strip()
                if order not in ("little", "big"):
                    raise TorchZipError("unknown byteorder %r" % order)
                little = order == "little"

            def read_storage(key, dtype):
                member = prefix + "data/" + key
                if member not in names:
                    raise TorchZipError("missing storage %s" % member)
                return _decode(archive.read(member), dtype, little)

            return _Unpickler(archive.read(pickles[0]), read_storage).load()
    except TorchZipError as e:
        raise TorchZipError("%s: %s" % (path, e)) from None
    except zipfile.BadZipFile as e:
        raise TorchZipError("%s: not a torch.save zip archive, or truncated (%s)" % (path, e)) from None
    except (pickle.UnpicklingError, EOFError, zlib.error, struct.error) as e:
        raise TorchZipError("%s: corrupt pickle or storage (%s)" % (path, e)) from None
    except OSError as e:
        raise TorchZipError("%s: %s" % (path, e.strerror or e)) from None
    except (TypeError, AttributeError, IndexError, KeyError, ValueError) as e:
        # A pickle whose opcodes are well formed but whose objects are not what torch writes.
        raise TorchZipError("%s: malformed pickle (%s: %s)" % (path, type(e).__name__, e)) from None
