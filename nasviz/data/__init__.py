"""Data: built-in datasets that need no download, the user's own data, and one batch convention.

In memory, with seeded, disjoint, traceable train / val / test splits (:class:`Dataset`; each
split's ``extras["index"]`` holds its rows of the original data):

* :func:`digits` — scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes).
* :func:`tasks` — a synthetic multi-task token-sequence classification set.
* :func:`from_arrays`, :func:`from_frame`, :func:`from_files` — the user's arrays, pandas
  DataFrame, or CSV / Parquet / .npy / .npz files; classification or regression.

Any form, not held in memory: :func:`as_batches` turns a Dataset or Split, arrays, a DataFrame,
a torch DataLoader / Dataset / IterableDataset, a Hugging Face dataset or any re-iterable of
batches into :class:`Batches` (re-iterable for epochs, seeded, resumable in the middle of an
epoch). Everything in nasviz that trains or evaluates takes its data through it. A batch is a
tuple ``(inputs, targets)`` or a dict of tensors as Hugging Face models take them (see
:mod:`nasviz.data._batch`).
"""

from __future__ import annotations

from nasviz.data._arrays import from_arrays, from_frame
from nasviz.data._batch import (
    LABELS,
    batch_len,
    call_model,
    default_batch_fn,
    describe,
    logits_of,
    move,
    split_batch,
)
from nasviz.data._batches import Batches, as_batches
from nasviz.data._builtin import TASK_NAMES, digits, tasks
from nasviz.data._dataset import TASKS, Dataset, Split
from nasviz.data._files import from_files

__all__ = [
    "LABELS",
    "TASKS",
    "TASK_NAMES",
    "Batches",
    "Dataset",
    "Split",
    "as_batches",
    "batch_len",
    "call_model",
    "default_batch_fn",
    "describe",
    "digits",
    "from_arrays",
    "from_files",
    "from_frame",
    "logits_of",
    "move",
    "split_batch",
    "tasks",
]
