"""The run folder's numeric CSV files (metrics.csv, eval.csv): read strictly, append, cut back atomically.

A file is only ever appended to (one row per write, flushed) or replaced whole by
`rewrite_rows` (temp file, fsync, rename), so a kill at any moment leaves either the old file or
the new one, at worst with a torn last line. `read_rows` drops a torn last line (no trailing
newline: the row a killed append was writing) and refuses any other damage with a `DataError`
naming the file, the line and the fix.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from vidgen.errors import DataError

INTEGER_COLUMNS = ("step", "epoch")  # written as `3`, never `3.0`, also when a resume rewrites the file


def _damaged(path: Path, line: int, what: str) -> DataError:
    return DataError(
        f"{path}: line {line} {what}; the file is damaged. Move it aside (mv {path} {path}.bad) to start it "
        "afresh: the checkpoints are not affected, only the rows before the resumed step are lost"
    )


def read_header(path: Path) -> list[str] | None:
    """The column names of an existing file, None if there is no file or no complete header."""
    if not path.is_file():
        return None
    with path.open(newline="") as f:
        first = f.readline()
    if not first.endswith("\n"):
        return None
    return next(csv.reader([first]), None) or None


def read_rows(path: Path) -> list[dict[str, float]]:
    """Rows as {column: float}, empty cells left out; [] for a missing or empty file."""
    if not path.is_file():
        return []
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines.pop()  # torn by a kill during an append
    if not lines:
        return []
    header = next(csv.reader([lines[0]]))
    if not header or header[0] != "step":
        raise _damaged(path, 1, f"is not a header starting with 'step' ({lines[0].strip()[:80]!r})")
    rows = []
    for number, fields in enumerate(csv.reader(io.StringIO("".join(lines[1:]))), start=2):
        if len(fields) != len(header):
            raise _damaged(
                path,
                number,
                f"has {len(fields)} fields but the header has {len(header)} ({', '.join(header)})",
            )
        try:
            rows.append({k: float(v) for k, v in zip(header, fields) if v != ""})
        except ValueError:
            raise _damaged(
                path, number, f"holds a value that is not a number ({','.join(fields)[:80]!r})"
            ) from None
    return rows


def _format(header: list[str], row: dict[str, float]) -> dict[str, str]:
    return {k: (str(int(row[k])) if k in INTEGER_COLUMNS else repr(float(row[k]))) for k in header if k in row}


def rewrite_rows(path: Path, header: list[str], rows: list[dict[str, float]]) -> None:
    """Replace the file whole: temp file, fsync, rename (the old file survives a kill)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(_format(header, r) for r in rows)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def append_row(path: Path, row: dict[str, float]) -> None:
    """Append one row under the file's own header (a new file gets the row's keys as header).

    Keys the header lacks are dropped, so a row never shifts the columns of the rows before it.
    """
    header = read_header(path)
    if header is None:
        rewrite_rows(path, list(row), [row])
        return
    with path.open("a", newline="") as f:
        csv.DictWriter(f, fieldnames=header, extrasaction="ignore").writerow(_format(header, row))
        f.flush()


def cut_after(path: Path, step: int) -> None:
    """Keep rows with step <= `step` (a resumed run repeats the later steps); rewrite only if needed."""
    if not path.is_file():
        return
    header = read_header(path)
    rows = read_rows(path)
    kept = [r for r in rows if r.get("step", 0) <= step]
    torn = not path.read_bytes().endswith(b"\n")
    if header is None:
        path.unlink()  # not even a complete header: nothing to keep
    elif len(kept) != len(rows) or torn:
        rewrite_rows(path, header, kept)
