"""The errors jaxcnn raises for mistakes a user can fix.

Every one derives from :class:`JaxcnnError`, so a program (and the ``jaxcnn``
command) can tell "you passed something wrong" from a bug: the command prints
a ``JaxcnnError`` as one line and exits 2, and lets anything else show its
traceback. Each also derives from the built-in exception a Python user would
expect (``ValueError``, ``TypeError``, ``OSError``), so ``except ValueError``
keeps working.

Messages name the function, the argument, what was expected and what was
given, e.g. ``conv2d: x must be 4-D (N, H, W, C), got shape (28, 28)``.
"""

from __future__ import annotations


class JaxcnnError(Exception):
    """Base class of every error jaxcnn raises on purpose."""


class InputError(JaxcnnError, ValueError):
    """An argument has the right type but a wrong value or shape."""


class InputTypeError(JaxcnnError, TypeError):
    """An argument has the wrong type (or dtype)."""


class StorageError(JaxcnnError, OSError):
    """A file could not be read or written; the message names the file."""


class MissingFileError(StorageError, FileNotFoundError):
    """A file or folder jaxcnn needs does not exist; the message says how to get it."""


class ImageFileError(InputError):
    """An image file that cannot be used: missing, unreadable, hostile, truncated or corrupt.

    The message names the file and the cause (raised by ``jaxcnn.data.decode_image``).
    """


class DataChangedError(InputError):
    """Data whose SHA-256 is not the one a run recorded (the message says both).

    Attributes:
      found: the data's SHA-256; expected: the one it should have.
    """

    def __init__(self, message: str, found: str, expected: str) -> None:
        super().__init__(message)
        self.found = found
        self.expected = expected
