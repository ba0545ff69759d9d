"""Writing results: one JSON and one CSV per experiment, a summary per run.

Every file is written atomically (a temporary file in the same directory, then
``os.replace``), so a reader never sees half a file and an interrupted run
keeps every file it finished.
"""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import fields
from pathlib import Path

from ..driving import ExperimentResult
from ..sampling import Sample

SAMPLE_COLUMNS = [f.name for f in fields(Sample)]


def process_umask() -> int:
    """This process's umask, read without changing it (Linux: /proc/self/status); elsewhere
    set and put back at once."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def shareable(fd: int) -> None:
    """Give a file made by ``mkstemp`` (0600) the mode a plain ``open`` would: 0666 less the
    umask (0644 by default), so a CI job run as another user can upload it."""
    os.fchmod(fd, 0o666 & ~process_umask())


def atomic_write(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename:
    a reader sees the old file or the new one, never a part. Mode as ``open`` would give."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        shareable(fd)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def samples_csv(samples: Iterable[Sample], hosts: Sequence[str] = ()) -> str:
    """One row per sample; with several servers, ``held_by_host`` becomes one
    ``held@HOST:PORT`` column per server."""
    columns = [c for c in SAMPLE_COLUMNS if c != "held_by_host"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns + [f"held@{host}" for host in hosts])
    for sample in samples:
        per_host = list(sample.held_by_host) if hosts else []
        writer.writerow([getattr(sample, c) for c in columns] + per_host)
    return out.getvalue()


def write_result(result: ExperimentResult, results_dir: Path) -> tuple[Path, Path]:
    """Write ``NAME.json`` and ``NAME.csv``; returns their paths."""
    base = Path(results_dir)
    json_path = atomic_write(base / f"{result.name}.json", json.dumps(result.as_dict(), indent=1) + "\n")
    csv_path = atomic_write(base / f"{result.name}.csv", samples_csv(result.samples, result.hosts))
    return json_path, csv_path


def write_json(path: Path, data: dict) -> Path:
    return atomic_write(Path(path), json.dumps(data, indent=1) + "\n")
