"""TokenIds: the "pt" tensors of the adapter, without torch.

libairllm computes on the CPU and takes token ids as plain integers, so the
adapter needs no tensor library. TokenIds holds ids shaped (rows, length) or
(length,) and offers the part of the torch.Tensor interface that code written
for AirLLM touches: .cuda() (and .cpu(), .to(), .long()), which return the
ids unchanged, indexing, .shape, len(), iteration and .tolist().
"""


class TokenIds:
    """Token ids, one sequence (length,) or a batch of rows (rows, length)."""

    __slots__ = ("_data", "_rows")

    def __init__(self, data):
        if hasattr(data, "tolist") and not isinstance(data, list):
            data = data.tolist()
        data = list(data)
        rows = bool(data) and hasattr(data[0], "__iter__")
        if rows:
            data = [_ints(r.tolist() if hasattr(r, "tolist") else r) for r in data]
            width = len(data[0])
            for i, r in enumerate(data):
                if len(r) != width:
                    raise ValueError(f"row {i} has {len(r)} ids, row 0 has {width}: the rows of "
                                     "TokenIds must have the same length")
        else:
            data = _ints(data)
        self._data = data
        self._rows = rows

    # -- torch.Tensor-like surface ------------------------------------------
    @property
    def shape(self):
        if self._rows:
            return (len(self._data), len(self._data[0]))
        return (len(self._data),)

    @property
    def ndim(self):
        return len(self.shape)

    def dim(self):
        return self.ndim

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[dim]

    def numel(self):
        n = 1
        for k in self.shape:
            n *= k
        return n

    @property
    def device(self):
        return "cpu"

    def cuda(self, *args, **kwargs):
        """The ids unchanged: libairllm runs on the CPU and reads them from here."""
        return self

    def cpu(self):
        return self

    def to(self, *args, **kwargs):
        return self

    def long(self):
        return self

    def tolist(self):
        return [list(r) for r in self._data] if self._rows else list(self._data)

    def __len__(self):
        return len(self._data)

    def __iter__(self):
        for item in self._data:
            yield TokenIds(item) if self._rows else item

    def __getitem__(self, key):
        if isinstance(key, tuple):
            if len(key) != 2 or not self._rows:
                raise IndexError(f"too many indices for TokenIds of shape {self.shape}")
            return self[key[0]][key[1]]
        item = self._data[key]
        if isinstance(key, slice):
            return TokenIds(item) if item else TokenIds([])
        return TokenIds(item) if self._rows else item

    def __eq__(self, other):
        if isinstance(other, TokenIds):
            return self.tolist() == other.tolist()
        return NotImplemented

    def __array__(self, dtype=None, copy=None):
        import numpy

        return numpy.array(self.tolist(), dtype=dtype or numpy.int64)

    def __repr__(self):
        return f"TokenIds({self.tolist()!r})"


def _ints(ids):
    out = []
    for i, v in enumerate(ids):
        if isinstance(v, bool) or not hasattr(v, "__index__"):
            raise TypeError(f"token ids must be integers, got {type(v).__name__} at {i}")
        out.append(v.__index__())
    return out
