"""The parquet files of the chain (parsed shards, predictions, response tables): their `mlpf` metadata and the
one-line error for a file that is not parquet. Every stage reads and writes both through here.

The metadata is a JSON record under the parquet key-value key `mlpf` (docs/contracts.md section 2): the
producing settings, version and inputs, and the events' origin, which each later stage carries on.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mlpf.atomic import atomic_output
from mlpf.errors import InputFileError

METADATA_KEY = b"mlpf"


@contextlib.contextmanager
def reading(path: str | Path) -> Iterator[None]:
    """Turn the error of opening `path` as parquet into one line naming it (a file of another format, a
    truncated file)."""
    try:
        yield
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise InputFileError(f"not a readable parquet file ({type(exc).__name__})", path=path) from None


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The `mlpf` record of a parquet file written by a stage (empty if it has none)."""
    with reading(path):
        # The footer's key-value metadata: it holds the record of a table written at once (write_table, where
        # it is also in the arrow schema) and of one written in row groups (streaming, footer only).
        raw = pq.ParquetFile(path).metadata.metadata or {}
    value = raw.get(METADATA_KEY)
    return json.loads(value) if value else {}


def write_table(table: pa.Table, path: str | Path, record: dict[str, Any]) -> None:
    """Write `table` atomically (zstd) with `record` as its `mlpf` metadata; values JSON cannot hold become
    strings."""
    metadata = dict(table.schema.metadata or {})
    metadata[METADATA_KEY] = json.dumps(record, sort_keys=True, default=str).encode("utf-8")
    with atomic_output(path) as tmp:
        pq.write_table(table.replace_schema_metadata(metadata), tmp, compression="zstd")


class TableStream:
    """Tables appended as row groups of one parquet file as they are made (a shard's chunks, so that no stage
    holds a whole shard), the `mlpf` record written into the footer at the end. Made by `streaming`."""

    def __init__(self, tmp: Path) -> None:
        self._tmp = tmp
        self._writer: pq.ParquetWriter | None = None

    def append(self, table: pa.Table) -> None:
        if self._writer is None:
            # No dictionary encoding: element features are mostly distinct floats, for which the encoder tries
            # a dictionary and falls back (20 % of the write time at the hit level, and larger files).
            self._writer = pq.ParquetWriter(self._tmp, table.schema, compression="zstd", use_dictionary=False)
        self._writer.write_table(table)

    def finish(self, record: dict[str, Any], empty: pa.Table) -> None:
        """Write `record` as the `mlpf` metadata and close; `empty` (the schema, no rows) if nothing came."""
        if self._writer is None:
            self.append(empty)
        assert self._writer is not None
        self._writer.add_key_value_metadata({METADATA_KEY: json.dumps(record, sort_keys=True, default=str)})
        self.close()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


@contextlib.contextmanager
def streaming(path: str | Path) -> Iterator[TableStream]:
    """Write `path` atomically from tables appended one by one (TableStream); call `finish` inside the block."""
    with atomic_output(path) as tmp:
        stream = TableStream(tmp)
        try:
            yield stream
        finally:
            stream.close()
