"""Where Ray Tune keeps a search's experiment: the run folder's ``tune/``, or a URI.

``minsearch search --storage URI`` puts Ray Tune's experiment (its state, every trial's
checkpoints) at ``URI/<run folder name>`` on any file system pyarrow opens from a URI
(``s3://``, ``gs://``, ``hdfs://``; options in the query, e.g.
``s3://bucket/runs?endpoint_override=host:9000&scheme=http``), for clusters without a shared
disk. Credentials come from each node's environment (``AWS_ACCESS_KEY_ID``, ...), never from
the URI: the experiment's own URI (``URI/<run name>``, :func:`experiment_uri`) is kept in the
run folder's ``search.json``, so ``resume`` finds it even when the folder was renamed. The
rest of the run folder (SQLite stores, results, front weights) stays local to the driver.

Ray gets the file system pyarrow resolved (``RunConfig(storage_path=..., storage_filesystem=
...)``, ``Tuner.restore(..., storage_filesystem=...)``); it pickles it to the trial workers, so
the options of the URI reach every node. Everything minsearch reads from Ray's experiment
(its snapshot files, a checkpoint's weights) goes through :class:`TuneStore`, on either kind.
"""

from __future__ import annotations

import contextlib
import fnmatch
import tempfile
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from minsearch.errors import UserError

if TYPE_CHECKING:
    import pyarrow.fs

    from minsearch.search.run_dir import RunDir

SNAPSHOTS = {"experiment": "experiment_state-*.json", "searcher": "searcher-state-*.pkl",
             "generator": "search_gen_state-*.json"}
TUNER = "tuner.pkl"


def open_uri(uri: str) -> tuple[pyarrow.fs.FileSystem, str]:
    """pyarrow's file system and path for ``uri``; a UserError naming the URI when pyarrow
    cannot open it, or when it holds credentials."""
    import pyarrow.fs

    parts = urlsplit(uri)
    if not parts.scheme or parts.scheme == "file" or len(parts.scheme) == 1:
        raise UserError(f"--storage {uri!r} is not a URI (e.g. s3://bucket/runs); for storage "
                        f"on a disk, leave --storage out and give --out on that disk.")
    if parts.username or parts.password:
        raise UserError(f"--storage {parts.scheme}://…@{parts.hostname}{parts.path} holds "
                        f"credentials, which would be written to the run folder; give them in "
                        f"each node's environment instead (e.g. AWS_ACCESS_KEY_ID).")
    try:
        return pyarrow.fs.FileSystem.from_uri(uri)
    except (pyarrow.ArrowException, ValueError, OSError) as err:
        raise UserError(f"--storage {uri!r} cannot be opened ({' '.join(str(err).split())}); "
                        f"give a URI pyarrow supports (s3://, gs://, hdfs://).") from None


def experiment_uri(uri: str, name: str) -> str:
    """``uri`` with ``name`` appended to its path, its query kept: where one search's
    experiment goes (``s3://bucket/runs?q`` and ``vit``: ``s3://bucket/runs/vit?q``)."""
    parts = urlsplit(uri)
    return urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}/{name}"))


class TuneStore:
    """One search's Ray Tune experiment: ``RUN_DIR/tune`` (``uri`` None) or the experiment
    folder at ``uri`` (from :func:`experiment_uri`). Building one touches nothing; the file
    system is opened on first use."""

    def __init__(self, run: RunDir, uri: str | None = None) -> None:
        self.run, self.uri = run, uri

    @cached_property
    def _fs(self) -> tuple[pyarrow.fs.FileSystem, str]:
        """(file system, folder that holds the experiment folder)."""
        import pyarrow.fs

        if self.uri is None:
            return pyarrow.fs.LocalFileSystem(), str(self.run.tune_dir.parent.resolve())
        fs, path = open_uri(self.uri)
        return fs, path.rstrip("/").rpartition("/")[0]

    @property
    def name(self) -> str:
        """The experiment's folder name: ``tune`` in the run folder, the last part of the
        URI's path (the run's name when the search started)."""
        if self.uri is None:
            return self.run.tune_dir.name
        return urlsplit(self.uri).path.rstrip("/").rpartition("/")[2]

    @property
    def path(self) -> str:
        """The experiment folder on the file system (a local path, or ``bucket/prefix/name``)."""
        return f"{self._fs[1]}/{self.name}"

    def shown(self, name: str) -> Path:
        """File ``name`` of the experiment for messages (``RUN_DIR/tune/NAME`` as the run
        folder was given, or ``bucket/prefix/name/NAME``)."""
        return self.run.tune_dir / name if self.uri is None else Path(self.path, name)

    @property
    def where(self) -> str:
        """The experiment folder for messages: a local path or ``scheme://bucket/.../name``."""
        if self.uri is None:
            return str(self.run.tune_dir)
        return f"{urlsplit(self.uri).scheme}://{self.path}"

    def run_config(self) -> dict[str, Any]:
        """``RunConfig`` keywords: where Ray Tune writes the experiment."""
        if self.uri is None:  # exactly as before URIs: Ray resolves the local path itself
            return {"name": self.name, "storage_path": self._fs[1]}
        return {"name": self.name, "storage_path": self._fs[1], "storage_filesystem": self._fs[0]}

    def restore_args(self) -> tuple[str, dict[str, Any]]:
        """``Tuner.restore`` (and ``ExperimentAnalysis``) path and keywords."""
        if self.uri is None:
            return self.path, {}
        return self.path, {"storage_filesystem": self._fs[0]}

    # -- reading what Ray wrote ----------------------------------------------------------------

    def names(self) -> list[str]:
        """File and folder names in the experiment folder (none before Ray wrote one); a
        UserError when the storage cannot be read."""
        import pyarrow.fs

        selector = pyarrow.fs.FileSelector(self.path, allow_not_found=True)
        try:
            return sorted(info.base_name for info in self._fs[0].get_file_info(selector))
        except OSError as err:  # a URI: unreachable, no such bucket, no credentials
            raise UserError(f"Ray Tune's storage {self.where} cannot be read "
                            f"({' '.join(str(err).split())}); check the URI, that its bucket "
                            f"exists, and the credentials in the environment.") from None

    def read(self, name: str) -> bytes:
        """The bytes of file ``name`` of the experiment folder (OSError when unreadable)."""
        with self._fs[0].open_input_stream(f"{self.path}/{name}") as stream:
            return stream.read()

    @property
    def has_tuner(self) -> bool:
        """Whether Ray has saved the tuner (``tuner.pkl``: resume needs it)."""
        return TUNER in self.names()

    def snapshots(self) -> dict[str, str]:
        """Ray's experiment snapshot as ``Tuner.restore`` reads it: the newest file name (names
        sort by time) of each kind present: ``experiment`` (JSON), ``searcher`` and
        ``generator`` (pickles, whatever the generator's file name says)."""
        names = self.names()
        newest = {kind: [n for n in names if fnmatch.fnmatch(n, pattern)]
                  for kind, pattern in SNAPSHOTS.items()}
        return {kind: found[-1] for kind, found in newest.items() if found}

    @property
    def saved(self) -> bool:
        """Whether Ray has snapshotted the experiment's trials (``tuner.pkl`` comes before
        it: a driver stopped in between leaves no trial)."""
        return "experiment" in self.snapshots()

    def check_new(self) -> None:
        """A UserError when a new search's experiment folder already holds something (another
        run folder of the same name used this storage)."""
        if self.uri is not None and self.names():
            raise UserError(f"--storage: {self.where} already holds a Ray Tune experiment (a "
                            f"run folder named {self.name!r} used this storage before); choose "
                            f"another --out name or another --storage.")

    # -- checkpoints ---------------------------------------------------------------------------

    def checkpoint_location(self, checkpoint_path: str) -> str:
        """What a trial record keeps of a checkpoint (``Checkpoint.path``): the local path, or
        ``scheme://bucket/...`` at a URI."""
        if self.uri is None or not checkpoint_path:
            return checkpoint_path
        return f"{urlsplit(self.uri).scheme}://{checkpoint_path.lstrip('/')}"

    @contextlib.contextmanager
    def checkpoint_file(self, location: str, name: str) -> Iterator[Path]:
        """File ``name`` of the checkpoint at ``location`` (from :meth:`checkpoint_location`)
        as a local file: itself, or a temporary copy of the one at the URI.
        FileNotFoundError when it is gone."""
        if "://" not in location:
            path = Path(location, name)
            if not path.is_file():
                raise FileNotFoundError(path)
            yield path
            return
        import pyarrow.fs

        source = f"{location.split('://', 1)[1]}/{name}"
        if self._fs[0].get_file_info(source).type != pyarrow.fs.FileType.File:
            raise FileNotFoundError(source)
        with tempfile.TemporaryDirectory(prefix="minsearch-checkpoint-") as tmp:
            pyarrow.fs.copy_files(source, str(Path(tmp, name)), source_filesystem=self._fs[0],
                                  destination_filesystem=pyarrow.fs.LocalFileSystem())
            yield Path(tmp, name)
