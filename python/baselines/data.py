"""The split files of `tinyzo split` (CIFAR-10 binary layout) and the eval input pipeline."""

import os
import stat
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "reference"))
sys.path.insert(0, os.path.join(REPO, "python"))
import reference  # noqa: E402  (the bit-exact numpy simulation: network builder and preprocess)

RECORD = 1 + 3 * 32 * 32
MAX_RECORDS = 80000  # the bound `tinyzo` reads CIFAR-10 files with (host/data/cifar10.h kMaxCifar10Bytes)


def load_records(path):
    """(labels uint8 [n], images uint8 [n, 3, 32, 32]) of a CIFAR-10 binary file. The size is checked
    before anything is read (a huge or non-regular file is refused, not loaded)."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise SystemExit("baselines: %s: not a regular file" % path)
    if st.st_size == 0 or st.st_size % RECORD or st.st_size > MAX_RECORDS * RECORD:
        raise SystemExit("baselines: %s: size %d is not a positive multiple of %d up to %d records" %
                         (path, st.st_size, RECORD, MAX_RECORDS))
    raw = np.fromfile(path, np.uint8)
    if raw.size != st.st_size:
        raise SystemExit("baselines: %s: changed while being read" % path)
    rec = raw.reshape(-1, RECORD)
    return rec[:, 0].copy(), rec[:, 1:].reshape(-1, 3, 32, 32).copy()


def load_split(split_dir):
    """{'train'|'val'|'test': (labels int64 [n], int8 model input NCHW [n, 3, 128, 128])}, with the
    eval preprocessing of reference.preprocess (exactly what `tinyzo eval` / `train --no-augment` use)."""
    out = {}
    for part in ("train", "val", "test"):
        labels, images = load_records(os.path.join(split_dir, part + ".bin"))
        x = np.concatenate([reference.preprocess(images[i:i + 100]) for i in range(0, len(labels), 100)])
        out[part] = (labels.astype(np.int64), x.transpose(0, 3, 1, 2).copy())
    return out
