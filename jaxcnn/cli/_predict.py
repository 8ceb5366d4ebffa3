"""``jaxcnn predict RUN IMAGE...``: classify image files with a trained run.

Each ``IMAGE`` is a file, a folder (searched recursively for image files by
extension, in sorted order) or a glob (``'photos/*.jpg'``, expanded here when
the shell did not). Every image is decoded as the run's training images were
(:func:`jaxcnn.train.preprocessing`): converted to the run's colour mode and resized to its
size with the same bilinear filter, by :func:`jaxcnn.data.decode_image`.

Output: one line per image, ``PATH: LABEL P% (LABEL2 P2%, ...)``, the top
classes by name; with ``--json`` one JSON object per line, ``{"path",
"label", "probability", "top": [[name, probability], ...]}``. An unreadable
file stops the command with one line naming it (exit 2), unless
``--skip-bad-images``, which prints the count of files left out.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from jaxcnn import train
from jaxcnn.cli._common import CHECKPOINT, UsageError, positive
from jaxcnn.data import IMAGE_SUFFIXES, ImageFileError, decode_image
from jaxcnn.errors import MissingFileError

BATCH = 256
"""Images decoded and classified at a time (memory, not results)."""


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``predict`` subcommand."""
    parser = subparsers.add_parser(
        "predict",
        help="classify image files with a trained run",
        description=(
            "Classify image files (PNG, JPEG, BMP, GIF, WebP) with a trained run: each is "
            "converted to the run's colour mode and resized to its image size as training "
            "did, and its top classes are printed by name."
        ),
    )
    parser.add_argument("run", type=Path, help="run directory (or its checkpoint file)")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files, folders or globs")
    parser.add_argument("--top", type=positive(int), default=3, help="classes shown (default 3)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line per image")
    parser.add_argument(
        "--skip-bad-images",
        dest="skip_bad",
        action="store_true",
        help="leave out unreadable files (their count is printed) instead of stopping",
    )
    parser.set_defaults(handler=run_predict)


def image_files(patterns: list[str]) -> list[Path]:
    """The files named by ``patterns`` (files, folders searched recursively, globs), in order.

    Raises:
      MissingFileError: a pattern that names nothing.
      UsageError: no image file at all.
    """
    files: list[Path] = []
    for pattern in patterns:
        path = Path(pattern).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if _is_image_name(p))
        elif path.exists():
            found = [path]
        else:
            found = sorted(Path(p) for p in glob.glob(str(path), recursive=True))
            found = [p for p in found if p.is_file() and _is_image_name(p)]
            if not found:
                raise MissingFileError(f"predict: {pattern} matches no file")
        files += found
    if not files:
        raise UsageError(f"predict: no image files ({', '.join(IMAGE_SUFFIXES)}) in {patterns}")
    return files


def _is_image_name(path: Path) -> bool:
    visible = not any(part.startswith(".") for part in path.parts if part not in (".", ".."))
    return path.is_file() and visible and path.suffix.lower() in IMAGE_SUFFIXES


def run_predict(args: argparse.Namespace) -> int:
    """Classify every image; print its top classes (or JSON lines)."""
    path = args.run / CHECKPOINT if args.run.is_dir() else args.run
    checkpoint = train.load_checkpoint(path)
    how = train.preprocessing(checkpoint)
    skipped = 0
    for batch in _batches(image_files(args.images), how, args.skip_bad):
        if batch.skipped:
            skipped += batch.skipped
        if not batch.paths:
            continue
        probs = np.asarray(train.predict(checkpoint.model, checkpoint.params, batch.pixels))
        for file, row in zip(batch.paths, probs, strict=True):
            print(_line(file, row, how.classes, args.top, as_json=args.json), flush=True)
    if skipped:
        print(f"jaxcnn predict: skipped {skipped} unreadable image file(s)", file=sys.stderr)
    return 0


class _Batch(NamedTuple):
    paths: list[Path]
    pixels: np.ndarray  # [N, H, W, C]
    skipped: int


def _batches(files: list[Path], how: train.Preprocessing, skip_bad: bool) -> Iterator[_Batch]:
    for start in range(0, len(files), BATCH):
        paths, images, skipped = [], [], 0
        for file in files[start : start + BATCH]:
            try:
                images.append(decode_image(file, color=how.color, size=how.size))
            except ImageFileError as err:
                if not skip_bad:
                    raise ImageFileError(
                        f"{err} (--skip-bad-images leaves such files out)"
                    ) from None
                print(f"jaxcnn predict: skipping {err}", file=sys.stderr)
                skipped += 1
                continue
            paths.append(file)
        pixels = np.stack(images) if images else np.zeros((0,), np.float32)
        yield _Batch(paths, pixels, skipped)


def _line(file: Path, row: np.ndarray, classes: tuple[str, ...], top: int, *, as_json: bool) -> str:
    order = np.argsort(-row, kind="stable")[:top]
    best = [(classes[i], float(row[i])) for i in order]
    if as_json:
        record = {
            "path": str(file),
            "label": best[0][0],
            "probability": best[0][1],
            "top": [[name, p] for name, p in best],
        }
        return json.dumps(record, ensure_ascii=False)
    rest = ", ".join(f"{name} {100 * p:.1f}%" for name, p in best[1:])
    return f"{file}: {best[0][0]} {100 * best[0][1]:.1f}%" + (f" ({rest})" if rest else "")
