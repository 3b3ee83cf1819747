"""Chunk sources: vectorised enumeration of an array's chunks into ``chunk_index`` batches.

Nothing here builds a Python object per chunk. A grid is enumerated in linear-index slices with NumPy,
storage keys are built with Arrow string kernels, and stored chunks are matched by binary search against
the sorted linear indices found by one directory walk. Peak memory is one batch plus the stored-chunk
arrays (16 bytes per stored chunk), whatever the grid size.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bioimage_pipeline.errors import StoreError
from bioimage_pipeline.storage import FileEntry, StoreReader, join_key
from bioimage_pipeline.tables import chunk_batch_schema

#: Rows per chunk_index batch: a few MB of Arrow data for up to 5-D arrays.
DEFAULT_BATCH_ROWS = 65_536


@dataclass(frozen=True)
class KeyEncoding:
    """How grid coordinates become storage keys inside a store.

    ``prefix`` is the array's key in the store; ``chunk_prefix`` is ``"c"`` for Zarr v3's default encoding;
    ``reverse`` writes coordinates fastest-axis first, as N5 does.
    """

    prefix: str
    separator: str = "."
    chunk_prefix: str = ""
    reverse: bool = False

    @property
    def description(self) -> str:
        if self.reverse:
            return "n5"
        return f"{'default' if self.chunk_prefix else 'v2'}/{self.separator}"

    def zero_dim_key(self) -> str:
        return self.chunk_prefix or "0"

    def relative_key(self, coords: Sequence[int]) -> str:
        parts = [str(c) for c in (reversed(coords) if self.reverse else coords)]
        if not parts:
            return self.zero_dim_key()
        body = self.separator.join(parts)
        return f"{self.chunk_prefix}{self.separator}{body}" if self.chunk_prefix else body

    def key(self, coords: Sequence[int]) -> str:
        return join_key(self.prefix, self.relative_key(coords))

    def keys(self, coords: np.ndarray, grid: Sequence[int] | None = None) -> pa.Array:
        """Storage keys for an (n, ndim) coordinate array (``grid``: its extent per axis, when known)."""
        n, ndim = coords.shape
        if ndim == 0:
            return pa.repeat(pa.scalar(self.key(()), pa.string()), n)
        head = join_key(self.prefix, self.chunk_prefix)
        if self.chunk_prefix:
            head += self.separator
        elif head:
            head += "/"
        columns = coords[:, ::-1] if self.reverse else coords
        extents = (list(grid)[::-1] if self.reverse else list(grid)) if grid is not None else None
        return join_decimal(head, columns, self.separator, extents)

    def walk_stored(self, store: StoreReader, ndim: int) -> list[FileEntry]:
        """The files under the array that may be chunks (one listing; never per-chunk probes)."""
        nested_prefix = bool(self.chunk_prefix) and self.separator == "/" and ndim > 0
        base = join_key(self.prefix, self.chunk_prefix) if nested_prefix else self.prefix
        if ndim == 0 or (self.separator == "." and not self.reverse):
            _, entries = store.list_dir(base)
        else:
            entries = list(store.walk_files(base))
        if nested_prefix:
            entries = [FileEntry(f"{self.chunk_prefix}/{e.key}", e.size) for e in entries]
        return entries

    def parse(self, entries: Sequence[FileEntry], grid_shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Linear grid indices (sorted) and sizes of the entries that are chunk keys of this grid."""
        ndim = len(grid_shape)
        if not entries:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        names = pa.array([e.key for e in entries], pa.string())
        sizes = np.fromiter((e.size for e in entries), np.int64, len(entries))
        if ndim == 0:
            keep = np.asarray(pc.equal(names, self.zero_dim_key()).to_numpy(zero_copy_only=False))
            return np.zeros(int(keep.sum()), np.int64), sizes[keep][:1]
        if self.chunk_prefix:
            lead = self.chunk_prefix + self.separator
            has = np.asarray(pc.starts_with(names, lead).to_numpy(zero_copy_only=False))
            names, sizes = names.filter(pa.array(has)), sizes[has]
            names = pc.utf8_slice_codeunits(names, len(lead))
        digits = r"\d+" + (r"(" + _re_escape(self.separator) + r"\d+)" + f"{{{ndim - 1}}}" if ndim > 1 else "")
        ok = np.asarray(pc.match_substring_regex(names, f"^{digits}$").to_numpy(zero_copy_only=False))
        if not ok.all():
            names, sizes = names.filter(pa.array(ok)), sizes[ok]
        if len(names) == 0:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        parts = (
            pc.split_pattern(names, self.separator)
            if ndim > 1
            else pa.ListArray.from_arrays(np.arange(len(names) + 1, dtype=np.int32), names)
        )
        flat = pc.cast(parts.flatten(), pa.int64()).to_numpy()
        coords = flat.reshape(len(names), ndim)
        if self.reverse:
            coords = coords[:, ::-1]
        grid = np.asarray(grid_shape, np.int64)
        inside = (coords < grid).all(axis=1)
        coords, sizes = coords[inside], sizes[inside]
        linear = np.ravel_multi_index(tuple(coords.T), tuple(int(g) for g in grid_shape)).astype(np.int64)
        order = np.argsort(linear, kind="stable")
        return linear[order], sizes[order]


#: Grid extents up to this size get their decimal strings computed once and gathered with ``take``
#: (Arrow's integer-to-string cast costs ~150 ns per value; a gather costs a few).
_DECIMAL_TABLE_LIMIT = 4_000_000


@functools.lru_cache(maxsize=64)
def _decimal_strings(size: int) -> pa.Array:
    return pc.cast(pa.array(np.arange(size, dtype=np.int64)), pa.string())


def _decimal(column: np.ndarray, extent: int | None) -> pa.Array:
    if extent is not None and 0 < extent <= _DECIMAL_TABLE_LIMIT:
        return pc.take(_decimal_strings(extent), pa.array(column))
    return pc.cast(pa.array(column), pa.string())


def join_decimal(head: str, values: np.ndarray, separator: str, extents: Sequence[int] | None = None) -> pa.Array:
    """``head + v0 + sep + v1 + ...`` for each row of a non-negative (n, k) int64 array (Arrow kernels only;
    ``extents`` bounds each column so its decimal strings can be looked up instead of formatted)."""
    _, k = values.shape
    columns = [_decimal(values[:, i], extents[i] if extents is not None else None) for i in range(k)]
    parts: list[pa.Array | pa.Scalar] = [pa.scalar(head)] if head else []
    for i, column in enumerate(columns):
        parts.append(column)
        if i < k - 1:
            parts.append(pa.scalar(separator))
    if len(parts) == 1:
        return columns[0]
    return pc.binary_join_element_wise(*parts, "")


def _re_escape(sep: str) -> str:
    return "\\" + sep if sep in ".^$*+?{}[]\\|()" else sep


#: Largest count a catalog column holds (Iceberg ``long``).
MAX_COUNT = 2**63 - 1


def check_extent(shape: Sequence[int], where: str) -> None:
    """Raise StoreError (naming ``where``, the array's metadata document) for a shape whose element count no
    64-bit count can hold: no such array exists, and its chunk counts could not be catalogued."""
    elements = math.prod(shape)
    if elements > MAX_COUNT:
        raise StoreError(where, f"shape {list(shape)} declares {elements:.3e} elements, more than 2**63 - 1")


def grid_shape(shape: Sequence[int], chunk_shape: Sequence[int]) -> tuple[int, ...]:
    return tuple(math.ceil(s / c) if c > 0 else 0 for s, c in zip(shape, chunk_shape, strict=True))


def _coords_list(coords: np.ndarray) -> pa.Array:
    n, ndim = coords.shape
    offsets = pa.array(np.arange(0, (n + 1) * ndim, ndim, dtype=np.int32) if ndim else np.zeros(n + 1, np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(np.ascontiguousarray(coords).reshape(-1)))


def _unravel_linear(linear: np.ndarray, grid: Sequence[int]) -> np.ndarray:
    if not grid:
        return np.zeros((len(linear), 0), np.int64)
    return np.stack(np.unravel_index(linear, tuple(grid)), axis=1).astype(np.int64, copy=False)


def _unravel(start: int, stop: int, grid: Sequence[int]) -> np.ndarray:
    if not grid:
        return np.zeros((stop - start, 0), np.int64)
    linear = np.arange(start, stop, dtype=np.int64)
    return np.stack(np.unravel_index(linear, tuple(grid)), axis=1).astype(np.int64, copy=False)


def _slices(rows: range, max_rows: int) -> Iterator[tuple[int, int]]:
    """[start, stop) pieces of at most ``max_rows`` covering ``rows`` (a contiguous range)."""
    for start in range(rows.start, rows.stop, max_rows):
        yield start, min(rows.stop, start + max_rows)


def _lookup(sorted_keys: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of ``wanted`` in ``sorted_keys`` and whether each was found."""
    if sorted_keys.size == 0:
        return np.zeros(wanted.shape, np.int64), np.zeros(wanted.shape, bool)
    pos = np.searchsorted(sorted_keys, wanted)
    pos_c = np.minimum(pos, sorted_keys.size - 1)
    return pos_c, sorted_keys[pos_c] == wanted


def _batch(
    coords: np.ndarray, keys: pa.Array, stored: np.ndarray, offsets: np.ndarray | None, lengths: np.ndarray
) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(
        [
            _coords_list(coords),
            keys,
            pa.array(stored, pa.bool_()),
            pa.array(offsets, pa.int64(), mask=~stored) if offsets is not None else pa.nulls(len(stored), pa.int64()),
            pa.array(lengths, pa.int64(), mask=~stored),
        ],
        schema=chunk_batch_schema(),
    )


@dataclass
class GridChunks:
    """A regular chunk grid where each chunk is one stored object (Zarr v2/v3 chunks, N5 blocks)."""

    shape: tuple[int, ...]
    chunk_shape: tuple[int, ...]
    encoding: KeyEncoding
    stored_linear: np.ndarray = field(repr=False)
    stored_sizes: np.ndarray = field(repr=False)

    @classmethod
    def from_store(
        cls, store: StoreReader, shape: Sequence[int], chunk_shape: Sequence[int], encoding: KeyEncoding
    ) -> GridChunks:
        grid = grid_shape(shape, chunk_shape)
        linear, sizes = encoding.parse(encoding.walk_stored(store, len(grid)), grid)
        return cls(tuple(shape), tuple(chunk_shape), encoding, linear, sizes)

    @property
    def grid(self) -> tuple[int, ...]:
        return grid_shape(self.shape, self.chunk_shape)

    @property
    def chunk_count(self) -> int:
        return math.prod(self.grid)

    @property
    def stored_count(self) -> int:
        return int(self.stored_linear.size)

    @property
    def stored_bytes(self) -> int:
        return int(self.stored_sizes.sum())

    def batches(self, max_rows: int = DEFAULT_BATCH_ROWS, rows: range | None = None) -> Iterator[pa.RecordBatch]:
        grid = self.grid
        for start, stop in _slices(rows if rows is not None else range(self.chunk_count), max_rows):
            coords = _unravel(start, stop, grid)
            pos, found = _lookup(self.stored_linear, np.arange(start, stop, dtype=np.int64))
            lengths = np.where(found, self.stored_sizes[pos] if self.stored_sizes.size else 0, 0)
            yield _batch(coords, self.encoding.keys(coords, grid), found, None, lengths)

    def stored_batches(self, max_rows: int = DEFAULT_BATCH_ROWS, rows: range | None = None) -> Iterator[pa.RecordBatch]:
        grid = self.grid
        for start, stop in _slices(rows if rows is not None else range(self.stored_count), max_rows):
            coords = _unravel_linear(self.stored_linear[start:stop], grid)
            stored = np.ones(stop - start, bool)
            yield _batch(coords, self.encoding.keys(coords, grid), stored, None, self.stored_sizes[start:stop])


@dataclass
class ShardedChunks:
    """Zarr v3 ``sharding_indexed``: one row per inner chunk, keyed by its shard, located by the shard index.

    ``index`` has one row per stored shard (same order as ``stored_shards``) and, per inner chunk of a
    shard in C order, the (offset, nbytes) pair of the shard index; ``2**64 - 1`` marks an empty chunk.
    """

    shape: tuple[int, ...]
    shard_shape: tuple[int, ...]
    inner_shape: tuple[int, ...]
    encoding: KeyEncoding
    stored_shards: np.ndarray = field(repr=False)
    shard_sizes: np.ndarray = field(repr=False)
    index: np.ndarray = field(repr=False)  # (n_stored_shards, n_inner, 2) uint64

    @property
    def per_shard(self) -> tuple[int, ...]:
        return tuple(s // i for s, i in zip(self.shard_shape, self.inner_shape, strict=True))

    @property
    def grid(self) -> tuple[int, ...]:
        return grid_shape(self.shape, self.inner_shape)

    @property
    def shard_grid(self) -> tuple[int, ...]:
        return grid_shape(self.shape, self.shard_shape)

    @property
    def chunk_count(self) -> int:
        return math.prod(self.grid)

    @property
    def stored_count(self) -> int:
        return int((self.index[..., 0] != np.uint64(2**64 - 1)).sum()) if self.index.size else 0

    @property
    def stored_bytes(self) -> int:
        return int(self.shard_sizes.sum())

    def batches(self, max_rows: int = DEFAULT_BATCH_ROWS, rows: range | None = None) -> Iterator[pa.RecordBatch]:
        grid, per = self.grid, self.per_shard
        per_arr = np.asarray(per, np.int64)
        missing = np.uint64(2**64 - 1)
        for start, stop in _slices(rows if rows is not None else range(self.chunk_count), max_rows):
            coords = _unravel(start, stop, grid)
            shard_coords = coords // per_arr if coords.size else coords
            local = coords % per_arr if coords.size else coords
            if grid:
                shard_linear = np.ravel_multi_index(tuple(shard_coords.T), self.shard_grid).astype(np.int64)
                local_linear = np.ravel_multi_index(tuple(local.T), per).astype(np.int64)
            else:
                shard_linear = local_linear = np.zeros(len(coords), np.int64)
            pos, found = _lookup(self.stored_shards, shard_linear)
            offsets = np.zeros(len(coords), np.uint64)
            lengths = np.zeros(len(coords), np.uint64)
            if found.any():
                entries = self.index[pos[found], local_linear[found]]
                offsets[found], lengths[found] = entries[:, 0], entries[:, 1]
            stored = found & (offsets != missing)
            keys = self.encoding.keys(shard_coords, self.shard_grid)
            yield _batch(
                coords,
                keys,
                stored,
                np.where(stored, offsets, 0).astype(np.int64),
                np.where(stored, lengths, 0).astype(np.int64),
            )

    def stored_batches(self, max_rows: int = DEFAULT_BATCH_ROWS, rows: range | None = None) -> Iterator[pa.RecordBatch]:
        # The stored inner chunks, located from the shard indexes (one entry per inner chunk of each stored
        # shard), in grid order.
        shard_row, local = np.nonzero(self.index[..., 0] != np.uint64(2**64 - 1)) if self.index.size else ((), ())
        shard_row, local = np.asarray(shard_row, np.int64), np.asarray(local, np.int64)
        per = np.asarray(self.per_shard, np.int64)
        shard_coords = _unravel_linear(self.stored_shards[shard_row], self.shard_grid)
        coords = shard_coords * per + _unravel_linear(local, self.per_shard) if len(per) else shard_coords
        linear = np.ravel_multi_index(tuple(coords.T), self.grid).astype(np.int64) if len(per) else local
        order = np.argsort(linear, kind="stable")
        for start, stop in _slices(rows if rows is not None else range(len(order)), max_rows):
            pick = order[start:stop]
            entries = self.index[shard_row[pick], local[pick]]
            yield _batch(
                coords[pick],
                self.encoding.keys(shard_coords[pick], self.shard_grid),
                np.ones(len(pick), bool),
                entries[:, 0].astype(np.int64),
                entries[:, 1].astype(np.int64),
            )


@dataclass
class ExplicitChunks:
    """Chunks listed one by one by the file itself (TIFF tiles and strips): coordinates, file, offset, length.

    A byte count of zero marks a tile that was never written (sparse TIFF).
    """

    coords: np.ndarray = field(repr=False)  # (n, ndim) int64
    #: The file of each chunk (a string array), or one file's key for them all — a plate's 17,280 channel
    #: files would otherwise each cost an Arrow array of their own when scanned.
    keys: pa.Array | str = field(repr=False)
    offsets: np.ndarray = field(repr=False)
    lengths: np.ndarray = field(repr=False)

    @property
    def chunk_count(self) -> int:
        return len(self.coords)

    @property
    def stored_count(self) -> int:
        return int((self.lengths > 0).sum())

    @property
    def stored_bytes(self) -> int:
        return int(self.lengths.sum())

    def key_array(self) -> pa.Array:
        """The file of each chunk, as a string array."""
        if isinstance(self.keys, str):
            return pa.repeat(pa.scalar(self.keys, pa.string()), self.chunk_count)
        return self.keys

    def batches(self, max_rows: int = DEFAULT_BATCH_ROWS, rows: range | None = None) -> Iterator[pa.RecordBatch]:
        keys = self.key_array()
        for start, stop in _slices(rows if rows is not None else range(self.chunk_count), max_rows):
            lengths = self.lengths[start:stop]
            stored = lengths > 0
            yield _batch(
                self.coords[start:stop],
                keys.slice(start, stop - start),
                stored,
                self.offsets[start:stop],
                lengths,
            )

    def stored_batches(self, max_rows: int = DEFAULT_BATCH_ROWS, rows: range | None = None) -> Iterator[pa.RecordBatch]:
        positions = np.flatnonzero(self.lengths > 0)
        keys = self.key_array()
        for start, stop in _slices(rows if rows is not None else range(len(positions)), max_rows):
            pick = positions[start:stop]
            yield _batch(
                self.coords[pick],
                pc.take(keys, pa.array(pick)),
                np.ones(len(pick), bool),
                self.offsets[pick],
                self.lengths[pick],
            )


def concat_explicit(sources: Sequence[ExplicitChunks]) -> ExplicitChunks:
    """Many explicitly listed chunk sources of one dimensionality as one (a plate's thousands of channel files,
    a few strips each): their rows are then built with one set of array kernels instead of one per file."""
    if not sources:
        return ExplicitChunks(
            coords=np.zeros((0, 0), np.int64),
            keys=pa.array([], pa.string()),
            offsets=np.zeros(0, np.int64),
            lengths=np.zeros(0, np.int64),
        )
    if all(isinstance(s.keys, str) for s in sources):
        # One file per source: each key repeated by its source's chunk count, in one take.
        counts = np.fromiter((s.chunk_count for s in sources), np.int64, len(sources))
        names = pa.array([s.keys for s in sources], pa.string())
        keys: pa.Array = pc.take(names, pa.array(np.repeat(np.arange(len(sources)), counts)))
    else:
        keys = pa.concat_arrays([s.key_array() for s in sources])
    return ExplicitChunks(
        coords=np.concatenate([s.coords for s in sources]),
        keys=keys,
        offsets=np.concatenate([s.offsets for s in sources]),
        lengths=np.concatenate([s.lengths for s in sources]),
    )
