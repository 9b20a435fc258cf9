"""Read a file without writing to it, and say what is wrong with it.

Each function returns a problem in words that complete "X is damaged: ..." ("it is empty (0
bytes)", "it is cut short (...)"), or None when the file is sound, and changes nothing on disk:
SQLite databases are opened read-only (``mode=ro``; one with a hot journal beside it is checked
on a temporary copy, since rolling the journal back is a write), pickles are walked opcode by
opcode (:mod:`pickletools`), never loaded, and PyTorch files are read as the zip archives they
are. :mod:`minsearch.search.integrity` decides which files a command needs and what to do.
"""

from __future__ import annotations

import csv
import io
import pickletools
import shutil
import sqlite3
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

from minsearch.errors import UserError

SQLITE_HEADER = b"SQLite format 3\x00"


def text_problem(path: Path) -> tuple[str, str | None]:
    """The text of the file at ``path``, and what is wrong with it (missing, empty, binary)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return "", "it is missing"
    except (OSError, UnicodeDecodeError) as err:
        return "", f"it cannot be read as text ({err})"
    return text, None if text else "it is empty (0 bytes)"


def yaml_problem(path: Path, written_keys: Callable[[dict], list[str]]) -> str | None:
    """What is wrong with a YAML file minsearch wrote; ``written_keys(data)`` validates the
    content and lists the keys minsearch writes for it, in order."""
    text, problem = text_problem(path)
    if problem:
        return problem
    if not text.endswith("\n"):  # whatever else is wrong: minsearch ends every line
        return "it is cut short (its last line has no line break)"
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return f"it is not valid YAML ({err.problem or err.context}{where})"
    except yaml.YAMLError as err:
        return f"it is not valid YAML ({err})"
    if not isinstance(data, dict):
        return f"it holds {type(data).__name__}, not a mapping"
    try:
        order = written_keys(data)
    except UserError as err:
        return f"it does not validate ({err})"
    present = [k for k in order if k in data]
    if len(present) < len(order) and order[:len(present)] == present:  # the tail is gone
        return f"it is cut short (it ends before `{order[len(present)]}`)"
    return None


def sqlite_problem(path: Path, tables: Sequence[str],
                   rows: Sequence[tuple[str, tuple, str]] = ()) -> str | None:
    """What is wrong with the SQLite database at ``path`` (None: nothing), found without
    writing: it must hold ``tables`` and, for each ``(query, args, problem)`` of ``rows``, a row
    (else ``problem`` is the answer)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "it is missing"
    if size == 0:
        return "it is empty (0 bytes)"
    with path.open("rb") as file:
        if file.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
            return f"it is not an SQLite database ({size} bytes)"
    journals = [path.with_name(path.name + suffix) for suffix in ("-journal", "-wal")]
    if not any(j.is_file() and j.stat().st_size for j in journals):
        return _sqlite_content(path, "ro", tables, rows)
    with tempfile.TemporaryDirectory() as tmp:  # rolling the journal back is a write: a copy
        for source in (path, *journals):
            if source.is_file():
                shutil.copyfile(source, Path(tmp, source.name))
        return _sqlite_content(Path(tmp, path.name), "rw", tables, rows)


def _sqlite_content(path: Path, mode: str, tables: Sequence[str],
                    rows: Sequence[tuple[str, tuple, str]]) -> str | None:
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode={mode}", uri=True)
        try:
            verdict = db.execute("PRAGMA quick_check").fetchone()[0]
            if verdict != "ok":
                return f"it fails SQLite's integrity check ({verdict})"
            have = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            missing = [t for t in tables if t not in have]
            if missing:
                return f"it holds no table {', '.join(missing)} (not the database expected)"
            for query, args, problem in rows:
                if db.execute(query, args).fetchone() is None:
                    return problem
        finally:
            db.close()
    except sqlite3.DatabaseError as err:
        return f"SQLite cannot read it ({err})"
    return None


def pickle_problem(source: Path | bytes) -> str | None:
    """What is wrong with a pickle (a file, or its bytes): cut short before its ``STOP``, or
    garbled."""
    try:
        data = source if isinstance(source, bytes) else source.read_bytes()
    except OSError as err:
        return f"it cannot be read ({err})"
    if not data:
        return "it is empty (0 bytes)"
    try:
        for _ in pickletools.genops(io.BytesIO(data)):  # opcodes only: nothing is loaded
            pass
    except ValueError as err:  # genops' word for a pickle cut short or garbled
        return f"it is not a complete pickle ({err})"
    return None


def torch_file_problem(path: Path, *, read_all: bool = False) -> str | None:
    """What is wrong with a file ``torch.save`` wrote (a zip archive): cut short (its
    directory, at the end, is gone) or, with ``read_all``, any member failing its CRC."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip() if read_all else None
            if not archive.namelist() or bad:
                return f"it is not a complete PyTorch file (bad member {bad!r})"
    except FileNotFoundError:
        return "it is missing"
    except (OSError, zipfile.BadZipFile) as err:
        return f"it is not a complete PyTorch file ({err})"
    return None


def csv_problem(path: Path) -> tuple[int, str | None]:
    """Data rows of a CSV file minsearch wrote, and what is wrong with it."""
    text, problem = text_problem(path)
    if problem:
        return 0, problem
    if not text.endswith("\n"):
        return 0, "it is cut short (its last row has no line break)"
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as err:
        return 0, f"it is not a valid table ({err})"
    width = len(rows[0])
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != width:
            return 0, f"it is cut short or garbled (row {number} has {len(row)} of {width} fields)"
    return len(rows) - 1, None
