"""Carry the cached training corpus to a machine that cannot fetch it (a lent GPU machine).

The corpus (``training.sources``) is Debian packages unpacked into the data cache plus a
manifest of absolute paths. ``pack`` writes the clips a data run needs, as they are (no
re-encoding), into an uncompressed tar split into parts of at most ``--part-mb`` MB, with a
manifest whose paths are relative to the data directory; ``unpack`` joins the parts on the
other machine, extracts them into its data directory (``$PERCEPNET_DATA_DIR``), writes the
manifest with that machine's absolute paths and marks the packages as unpacked, so
``training.data`` runs there unchanged and offline::

    python -m training.bundle pack --out BUNDLE --part-mb 55 --subsample ast-=2 bg=2
    # ... BUNDLE/part-000 ... travel ...
    PERCEPNET_DATA_DIR=/data python -m training.bundle unpack BUNDLE/part-*

``--skip`` drops speakers by name prefix (default: the one-speaker ``festvox-ru``, 190 MB of
WAV) and ``--subsample PREFIX=N`` keeps every N-th clip of the speakers with that prefix. The
text-to-speech voices (``training.tts``) are not carried.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tarfile
from pathlib import Path

from .sources import (BASE_PACKAGES, EXTRA_SPEECH, MANIFEST_VERSION, build_manifest,
                      cache_dir)

__all__ = ["pack", "unpack", "main"]

BUNDLE_MANIFEST = "bundle-manifest.json"
PART_PREFIX = "part-"


def _select(manifest: dict, skip: tuple[str, ...], subsample: dict[str, int]) -> dict:
    speech, seen = [], {}
    for clip in manifest["speech"]:
        spk = clip["speaker"]
        if any(spk.startswith(p) for p in skip):
            continue
        step = next((n for p, n in subsample.items() if spk.startswith(p)), 1)
        k = seen.get(spk, 0)
        seen[spk] = k + 1
        if k % step == 0:
            speech.append(clip)
    return {**manifest, "speech": speech}


def _map_paths(manifest: dict, fn) -> dict:
    """The manifest with every file path (clips, keys, music) replaced by ``fn(path)``."""
    out = dict(manifest)
    for key in ("speech", "noises"):
        out[key] = [{**c, "path": fn(c["path"])} for c in manifest[key]]
    for key in ("keys", "music"):
        out[key] = [fn(p) for p in manifest[key]]
    return out


def _relative(manifest: dict, root: Path) -> tuple[dict, list[str]]:
    """The manifest with paths relative to ``root``, and the files it names."""
    files: list[str] = []

    def rel(path: str) -> str:
        r = os.path.relpath(path, root)
        if r.startswith(".."):
            raise ValueError(f"{path}: outside the data directory {root}")
        files.append(r)
        return r

    return _map_paths(manifest, rel), files


class _PartWriter(io.RawIOBase):
    """A write-only stream cut into files of at most ``size`` bytes."""

    def __init__(self, directory: Path, size: int) -> None:
        self.directory, self.size = directory, size
        self.parts: list[Path] = []
        self._f = None
        self._left = 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        view = memoryview(b)
        done = 0
        while done < len(view):
            if self._left == 0:
                if self._f:
                    self._f.close()
                path = self.directory / f"{PART_PREFIX}{len(self.parts):03d}"
                self._f = open(path, "wb")
                self.parts.append(path)
                self._left = self.size
            n = min(self._left, len(view) - done)
            self._f.write(view[done:done + n])
            self._left -= n
            done += n
        return done

    def close(self) -> None:
        if self._f:
            self._f.close()
            self._f = None
        super().close()


def pack(out_dir: str | Path, part_mb: float = 55.0, skip: tuple[str, ...] = ("festvox",),
         subsample: dict[str, int] | None = None) -> dict:
    """Write ``out_dir/part-000``...; returns {"parts", "bytes", "clips", "speakers"}."""
    root = cache_dir()
    manifest = _select(build_manifest(), skip, subsample or {})
    rel, files = _relative(manifest, root)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob(f"{PART_PREFIX}*"):
        old.unlink()
    writer = _PartWriter(out, int(part_mb * 1e6))
    with tarfile.open(fileobj=writer, mode="w|") as tar:
        data = json.dumps(rel, indent=1).encode()
        info = tarfile.TarInfo(BUNDLE_MANIFEST)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for f in sorted(set(files)):
            tar.add(root / f, arcname=f, recursive=False)
    writer.close()
    speakers: dict[str, int] = {}
    for c in manifest["speech"]:
        speakers[c["speaker"]] = speakers.get(c["speaker"], 0) + 1
    return {"parts": [str(p) for p in writer.parts],
            "bytes": sum(p.stat().st_size for p in writer.parts),
            "clips": len(manifest["speech"]), "speakers": speakers}


class _PartReader(io.RawIOBase):
    def __init__(self, parts: list[Path]) -> None:
        self._parts = list(parts)
        self._f = None

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while True:
            if self._f is None:
                if not self._parts:
                    return 0
                self._f = open(self._parts.pop(0), "rb")
            n = self._f.readinto(b)
            if n:
                return n
            self._f.close()
            self._f = None


def unpack(parts: list[str | Path], data_dir: str | Path | None = None) -> Path:
    """Join and extract the parts into ``data_dir`` (default: ``cache_dir()``); write its
    manifest with absolute paths and the packages' "unpacked" stamps. Returns the manifest."""
    parts = sorted(Path(p) for p in parts)
    names = [p.name for p in parts]
    if names != [f"{PART_PREFIX}{i:03d}" for i in range(len(parts))]:
        raise ValueError(f"parts must be {PART_PREFIX}000 .. in full, got {names}")
    root = Path(data_dir) if data_dir else cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BufferedReader(_PartReader(parts)), mode="r|") as tar:
        tar.extractall(root, filter="data")
    manifest = _map_paths(json.loads((root / BUNDLE_MANIFEST).read_text()),
                          lambda p: str(root / p))
    if manifest.get("version") != MANIFEST_VERSION:
        raise ValueError(f"bundle manifest version {manifest.get('version')}, "
                         f"expected {MANIFEST_VERSION}")
    tree = root / "tree"
    tree.mkdir(exist_ok=True)
    for pkg in BASE_PACKAGES + tuple(EXTRA_SPEECH):
        (tree / f".{pkg}.unpacked").touch()
    path = root / f"manifest-v{MANIFEST_VERSION}.json"
    path.write_text(json.dumps(manifest, indent=1))
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.bundle",
                                description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    pk = sub.add_parser("pack", help="write the corpus parts")
    pk.add_argument("--out", required=True)
    pk.add_argument("--part-mb", type=float, default=55.0)
    pk.add_argument("--skip", nargs="*", default=["festvox"], metavar="PREFIX")
    pk.add_argument("--subsample", nargs="*", default=[], metavar="PREFIX=N")
    up = sub.add_parser("unpack", help="join, extract and register the parts")
    up.add_argument("parts", nargs="+")
    up.add_argument("--data-dir", default=None, help="default: $PERCEPNET_DATA_DIR or the cache")
    a = p.parse_args(argv)
    if a.cmd == "pack":
        try:
            sub_n = {k: int(v) for k, v in (s.split("=", 1) for s in a.subsample)}
        except ValueError:
            p.error("--subsample takes PREFIX=N pairs")
        info = pack(a.out, a.part_mb, tuple(a.skip), sub_n)
        print(json.dumps(info, indent=1))
    else:
        print(unpack(a.parts, a.data_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
