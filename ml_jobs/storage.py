"""Read and write a run's partition: a local folder or an `s3://` prefix, through ONE code path.

pyarrow's filesystem layer (`pyarrow.fs`) does both: it is already what writes the parquet
files, it ships S3 support in the wheel, and it needs neither s3fs nor aiobotocore (which
would pull boto3 off the line constraints.txt pins). Locally DATA_ROOT is a folder; in AWS it
is `s3://bucket/prefix`, credentials come from the task role (the AWS SDK's default chain),
and `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` point it at another endpoint (tests, MinIO).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping
from datetime import date
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ml_jobs.errors import DataError, UsageError

if TYPE_CHECKING:
    import pandas as pd

Kind = Literal["number", "text", "bool"]


@cache
def _s3(region: str | None, endpoint: str | None) -> pafs.S3FileSystem:
    kwargs: dict[str, Any] = {"region": region}
    if endpoint:
        scheme, _, host = endpoint.partition("://")
        kwargs.update(endpoint_override=host or scheme, scheme=scheme if host else "https")
    return pafs.S3FileSystem(**kwargs)


def filesystem(root: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for a DATA_ROOT: a folder, `file://…` or `s3://bucket/prefix`."""
    if root.startswith("s3://"):
        path = root.removeprefix("s3://").strip("/")
        if not path:
            raise UsageError(f"DATA_ROOT={root!r} names no bucket")
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if region is None and endpoint is None:
            region = pafs.resolve_s3_region(path.split("/")[0])
        return _s3(region, endpoint), path
    if "://" in root and not root.startswith("file://"):
        raise UsageError(f"DATA_ROOT={root!r}: only a local folder, file:// or s3:// is supported")
    return pafs.LocalFileSystem(), os.path.abspath(root.removeprefix("file://"))


class Partition:
    """DATA_ROOT/<project>/<day>/: the files one run date owns."""

    def __init__(self, fs: pafs.FileSystem, path: str, uri: str) -> None:
        self.fs = fs
        self.path = path
        self.uri = uri

    def _file(self, name: str) -> str:
        return f"{self.path}/{name}"

    def where(self, name: str) -> str:
        return f"{self.uri}/{name}"

    def clear(self) -> None:
        """Drop what an earlier run of this date wrote; other dates are never touched."""
        self.fs.delete_dir_contents(self.path, missing_dir_ok=True)

    def exists(self, name: str) -> bool:
        return self.fs.get_file_info(self._file(name)).type != pafs.FileType.NotFound

    def write_bytes(self, name: str, data: bytes) -> None:
        if self.fs.type_name == "local":  # object stores have no folders to make
            self.fs.create_dir(self.path, recursive=True)
        with self.fs.open_output_stream(self._file(name)) as out:
            out.write(data)

    def read_bytes(self, name: str, produced_by: str) -> bytes:
        try:
            with self.fs.open_input_stream(self._file(name)) as src:
                return src.read()
        except FileNotFoundError:
            raise DataError(f"missing input {self.where(name)}: has {produced_by} run for this date?") from None

    def write_json(self, name: str, body: Mapping[str, Any]) -> None:
        self.write_bytes(name, (json.dumps(body, indent=2, sort_keys=False) + "\n").encode())

    def read_json(self, name: str, produced_by: str) -> dict[str, Any]:
        raw = self.read_bytes(name, produced_by)
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise DataError(f"{self.where(name)} is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise DataError(f"{self.where(name)} does not hold a JSON object")
        return body

    def write_table(self, name: str, frame: pd.DataFrame) -> None:
        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer)
        self.write_bytes(name, buffer.getvalue())

    def read_table(self, name: str, produced_by: str, columns: Mapping[str, Kind]) -> pd.DataFrame:
        """A parquet file checked against the columns the step needs (bad input fails here, clearly)."""
        raw = self.read_bytes(name, produced_by)
        try:
            frame = pq.read_table(pa.BufferReader(raw)).to_pandas()
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{self.where(name)} is not a readable parquet file: {exc}") from None
        check_columns(frame, columns, self.where(name))
        return frame


def check_columns(frame: pd.DataFrame, columns: Mapping[str, Kind], where: str) -> None:
    """Refuse a table that lacks a column, has the wrong type, has nulls or has no rows."""
    from pandas.api import types

    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{where}: missing column(s) {', '.join(missing)}")
    if frame.empty:
        raise DataError(f"{where}: no rows")
    checks = {"number": lambda s: types.is_numeric_dtype(s) and not types.is_bool_dtype(s),
              "text": types.is_string_dtype, "bool": types.is_bool_dtype}
    for column, kind in columns.items():
        series = frame[column]
        if not checks[kind](series):
            raise DataError(f"{where}: column {column} should be {kind}, found {series.dtype}")
        nulls = int(series.isna().sum())
        if nulls:
            raise DataError(f"{where}: column {column} has {nulls} null value(s)")


def partition(root: str, project: str, day: date) -> Partition:
    fs, path = filesystem(root)
    uri = root.rstrip("/")
    return Partition(fs, f"{path}/{project}/{day.isoformat()}", f"{uri}/{project}/{day.isoformat()}")
