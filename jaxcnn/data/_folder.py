"""A folder of class folders: which files, which classes, which split.

Two layouts, as torchvision's ``ImageFolder`` and Keras'
``image_dataset_from_directory`` read them::

    photos/                      photos/
      cat/  a.jpg b.png ...        train/  cat/ ...  dog/ ...
      dog/  c.jpg ...              test/   cat/ ...  dog/ ...

* **One set** (left): every subfolder is a class; the test split is drawn by
  a seed (:func:`split_rows`).
* **train/ and test/** (right): each holds one subfolder per class; the test
  classes must be among the training classes.

Class names are the subfolder names, sorted (Python's string order, so
``"cat" < "dog" < "Ärger"`` by code point); class ``i`` is the ``i``-th name.
A class folder is searched recursively, in sorted order. Files whose
extension is not an image's (:data:`~jaxcnn.data.IMAGE_SUFFIXES`), and
hidden files and folders (``.DS_Store``, ``.git``), are not images: they
are listed in :attr:`FolderListing.ignored` (the command counts them), never
read. Everything else is an image file, read and hashed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from jaxcnn.data._image import IMAGE_SUFFIXES
from jaxcnn.errors import InputError

SPLIT_FOLDERS = ("train", "test")
"""The subfolders of a folder that holds its own split."""


@dataclass(frozen=True)
class FolderListing:
    """The image files of a class-folder data set, in their fixed order.

    Attributes:
      root: the data set's folder (absolute).
      classes: class names, sorted; label ``i`` is ``classes[i]``.
      files: every image file, relative to ``root`` (POSIX form), training
        files first (class by class), then test files.
      labels: ``[len(files)]`` int32, each file's class.
      n_train: how many of ``files`` are training files (all of them in the
        one-set layout, split later by a seed).
      presplit: whether the folder holds ``train/`` and ``test/``.
      ignored: files that are not images by name, relative to ``root``.
    """

    root: Path
    classes: tuple[str, ...]
    files: tuple[str, ...]
    labels: np.ndarray
    n_train: int
    presplit: bool
    ignored: tuple[str, ...]


def looks_like_class_folders(root: Path) -> bool:
    """Whether ``root`` has a visible subfolder (so it is read as class folders)."""
    return any(_visible_folders(root))


def list_folder(fn: str, root: Path) -> FolderListing:
    """List ``root``'s image files (see the module docstring for the layouts).

    Raises:
      InputError: no class folders, a class folder without images, or test
        classes that are not training classes; the message names the folder.
    """
    root = root.resolve()
    names = [path.name for path in _visible_folders(root)]
    presplit = set(SPLIT_FOLDERS) <= set(names) and any(_visible_folders(root / "train"))
    ignored: list[str] = []
    if presplit:
        classes = _class_names(fn, root / "train")
        test_classes = _class_names(fn, root / "test")
        unknown = sorted(set(test_classes) - set(classes))
        if unknown:
            raise InputError(
                f"{fn}: {root / 'test'} has class folder(s) {unknown} that {root / 'train'} "
                f"lacks; the test classes must be training classes"
            )
        ignored += [name for name in _files_at(root) if name not in SPLIT_FOLDERS]
        train = _class_files(fn, root, root / "train", classes, ignored)
        test = _class_files(fn, root, root / "test", test_classes, ignored, classes)
    else:
        classes = _class_names(fn, root)
        ignored += _files_at(root)
        train = _class_files(fn, root, root, classes, ignored)
        test = []
    files = [name for name, _ in train + test]
    labels = np.array([label for _, label in train + test], dtype=np.int32)
    return FolderListing(
        root, tuple(classes), tuple(files), labels, len(train), presplit, tuple(ignored)
    )


def _visible_folders(folder: Path) -> list[Path]:
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError:
        return []
    return [
        Path(entry.path) for entry in entries if entry.is_dir() and not entry.name.startswith(".")
    ]


def _files_at(folder: Path) -> list[str]:
    """The names of the files (not folders) directly in ``folder``, sorted."""
    return sorted(entry.name for entry in os.scandir(folder) if not entry.is_dir())


def _class_names(fn: str, folder: Path) -> list[str]:
    names = [path.name for path in _visible_folders(folder)]
    if not names:
        raise InputError(
            f"{fn}: {folder} has no class folders; put each class's images in a subfolder "
            f"named for the class (e.g. {folder}/cat/1.jpg, {folder}/dog/2.jpg)"
        )
    return names


def _class_files(
    fn: str,
    root: Path,
    folder: Path,
    names: Iterable[str],
    ignored: list[str],
    classes: list[str] | None = None,
) -> list[tuple[str, int]]:
    """``(path relative to root, label)`` of every image file under each class folder."""
    order = list(names) if classes is None else classes
    found: list[tuple[str, int]] = []
    for name in names:
        images = []
        for path in _walk(folder / name):
            relative = path.relative_to(root).as_posix()
            visible = not any(part.startswith(".") for part in path.relative_to(folder).parts)
            if visible and path.suffix.lower() in IMAGE_SUFFIXES:
                images.append(relative)
            else:
                ignored.append(relative)
        if not images:
            raise InputError(
                f"{fn}: the class folder {folder / name} holds no image files "
                f"({', '.join(sorted(set(IMAGE_SUFFIXES)))})"
            )
        found += [(relative, order.index(name)) for relative in images]
    return found


def _walk(folder: Path) -> list[Path]:
    """Every file under ``folder``, in sorted order (folders' files in sorted folder order)."""
    files: list[Path] = []
    for top, folders, names in os.walk(folder):
        folders.sort()
        files += [Path(top) / name for name in sorted(names)]
    return files


def split_rows(labels: np.ndarray, test_fraction: float, seed: int) -> np.ndarray:
    """``[N]`` bool, True for the test rows of a one-set folder: stratified by class.

    Of the ``n_c`` files of class ``c``, ``round(test_fraction * n_c)``
    (Python's ``round``) are test files: the first ones in the order of
    ``numpy.random.default_rng(seed).permutation(N)``. The split depends on
    the files, the fraction and the seed only.
    """
    order = np.random.default_rng(seed).permutation(len(labels))
    test = np.zeros(len(labels), bool)
    ordered = labels[order]
    for value in np.unique(labels):
        members = order[ordered == value]
        test[members[: round(test_fraction * len(members))]] = True
    return test


def files_sha256(files: Iterable[str], digests: Iterable[str]) -> str:
    """One SHA-256 for a data set's files: of the lines ``"<relative path>\\t<its sha256>\\n"``."""
    sha = hashlib.sha256()
    for name, digest in zip(files, digests, strict=True):
        sha.update(name.encode("utf-8", "surrogateescape") + b"\t" + digest.encode() + b"\n")
    return sha.hexdigest()


@dataclass(frozen=True)
class ImageSettings:
    """How a class-folder data set was read: what reloads it and what ``predict`` applies.

    Attributes:
      classes: the class names; label ``i`` is ``classes[i]``.
      color: the images' colour mode (one of ``COLOR_MODES``).
      size: the images' ``(H, W)``.
      resize: whether ``size`` was asked for (``image_size``): every image
        was resized to it; otherwise all already had it.
      convert: whether ``color`` was asked for; otherwise all already had it.
      test_fraction: the share of each class drawn for the test split, or
        None for a folder with ``train/`` and ``test/``.
      seed: the seed of that draw (None with ``train/`` and ``test/``).
      skipped: unreadable files left out (``skip_bad``), relative paths.
      ignored: how many files were not images by name (never read).
    """

    classes: tuple[str, ...]
    color: str
    size: tuple[int, int]
    resize: bool = False
    convert: bool = False
    test_fraction: float | None = None
    seed: int | None = None
    skipped: tuple[str, ...] = ()
    ignored: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict."""
        values = asdict(self)
        lists = {"classes": list(self.classes), "size": list(self.size)}
        return {**values, **lists, "skipped": list(self.skipped)}

    @classmethod
    def from_dict(cls, values: Any) -> ImageSettings:
        """Inverse of :meth:`to_dict`; anything else is an ``InputError``."""
        names = {field.name for field in fields(cls)}
        if not isinstance(values, Mapping) or set(values) != names:
            raise InputError(
                f"ImageSettings: expected a dict with keys {sorted(names)}, got {values!r}"
            )
        try:
            settings = cls(
                classes=tuple(str(name) for name in values["classes"]),
                color=str(values["color"]),
                size=(int(values["size"][0]), int(values["size"][1])),
                resize=bool(values["resize"]),
                convert=bool(values["convert"]),
                test_fraction=values["test_fraction"],
                seed=values["seed"],
                skipped=tuple(str(name) for name in values["skipped"]),
                ignored=int(values["ignored"]),
            )
        except (TypeError, ValueError, IndexError) as err:
            raise InputError(f"ImageSettings: bad values {values!r}: {err}") from None
        return settings
