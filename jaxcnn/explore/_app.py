"""What the page asks for, answered: one method per API call, returning JSON-ready dicts.

:class:`Explorer` holds the page's state (the built-in images, the uploads,
the run being watched and its compiled views) and serialises every JAX call
under one lock, so the threaded server never runs two at once. It knows
nothing of HTTP; :mod:`._server` does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxcnn import __version__, kernels
from jaxcnn.errors import InputError
from jaxcnn.explore import _kernel_views as views
from jaxcnn.explore import _requests as check
from jaxcnn.explore._arrays import encode, numbers
from jaxcnn.explore._images import BUILTIN_SIZE, UploadStore, builtin_images, to_gray
from jaxcnn.explore._model_views import FORMULAS, ModelViews, describe
from jaxcnn.explore._plain import params_at
from jaxcnn.explore._run import NO_RUN_HINT, RunWatcher, Snapshot, TestImages, test_image

TEST_PAGE = 64
"""The most test images one ``/api/test-images`` call returns."""
GRADIENT_VALUES = 65_536
"""A parameter gradient with more values is summarised (largest size, difference), not sent."""


class NoRunError(InputError):
    """A model view was asked for without a run (the server answers ``409``)."""


class Explorer:
    """The page's state and computations.

    Args:
      run: a run directory or checkpoint file, or None for the kernel views only.
      note: called with one line per step of the start (loading, compiling).
    """

    def __init__(self, run: Path | None = None, note: Callable[[str], None] = print) -> None:
        self.note = note
        self.builtins = builtin_images()
        self.uploads = UploadStore()
        self.watcher = None if run is None else RunWatcher(run)
        self.model_views: ModelViews | None = None
        self.lock = threading.Lock()

    # ---- start ---------------------------------------------------------------------------

    def warm_up(self) -> float:
        """Compile every function the page needs; returns the seconds it took."""
        start = time.perf_counter()
        with self.lock:
            views.warm_up({BUILTIN_SIZE, self.gray_size()})
            self._model_views()
        return time.perf_counter() - start

    def gray_size(self) -> tuple[int, int]:
        """``(H, W)`` of the grey page images: the run's image size, else 28x28."""
        snapshot = self._snapshot()
        return BUILTIN_SIZE if snapshot is None else snapshot.preprocessing.size

    def _test(self) -> TestImages | None:
        return None if self.watcher is None else self.watcher.test

    def _snapshot(self) -> Snapshot | None:
        return None if self.watcher is None else self.watcher.snapshot

    def _model_views(self) -> ModelViews | None:
        """The compiled model views of the current checkpoint (built again for a new model)."""
        snapshot = self._snapshot()
        if snapshot is None:
            return None
        model = snapshot.checkpoint.model
        if self.model_views is None or self.model_views.model != model:
            shape = (
                *snapshot.preprocessing.size,
                1 if snapshot.preprocessing.color == "grayscale" else 3,
            )
            self.note(f"compiling the model views of {model.kind} ...")
            self.model_views = ModelViews(model, shape)
            self.model_views.warm_up(snapshot.checkpoint.params)
        return self.model_views

    # ---- page state ----------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """``GET /api/info``: what the page offers, and the run."""
        return {
            "jaxcnn": __version__,
            "kernels": {name: numbers(kernel) for name, kernel in kernels.CLASSICAL.items()},
            "strides": list(views.STRIDES),
            "paddings": list(views.PADDINGS),
            "images": list(self.builtins),
            "image_size": list(self.gray_size()),
            "run": self._run_info(),
            "no_run_hint": NO_RUN_HINT,
            "limits": {"kernel_abs_max": check.KERNEL_LIMIT, "test_page": TEST_PAGE},
        }

    def _run_info(self) -> dict[str, Any] | None:
        if self.watcher is None:
            return None
        snapshot, test = self.watcher.snapshot, self.watcher.test
        info: dict[str, Any] = {"path": str(self.watcher.run), "status": self.watcher.status()}
        if snapshot is None or self.model_views is None:
            return info | {"ready": False}
        checkpoint, how = snapshot.checkpoint, snapshot.preprocessing
        shapes = self.model_views.output_shapes(checkpoint.params)
        layers = [
            {
                "name": leaf.name,
                "kind": leaf.layer.kind,
                "summary": describe(leaf.layer),
                "output_shape": list(shape),
            }
            for leaf, shape in zip(self.model_views.leaves, shapes, strict=True)
        ]
        return info | {
            "ready": True,
            "model": checkpoint.model.kind,
            "classes": list(how.classes),
            "input_shape": list(self.model_views.input_shape),
            "loss": checkpoint.model.config.get("loss"),
            "layers": layers,
            "epoch": checkpoint.epoch,
            "version": snapshot.version,
            "test_count": 0 if test is None else test.count,
            "test_note": None if test is None else test.note,
        }

    def run_state(self, since: str | None) -> dict[str, Any]:
        """``GET /api/run``: the run's version, and when it changed its history and filters."""
        if self.watcher is None:
            raise NoRunError(NO_RUN_HINT)
        self.watcher.refresh()  # file I/O under the watcher's own lock, not the JAX one
        with self.lock:
            self._model_views()  # compiles only when the run's model itself changed
        snapshot = self.watcher.snapshot
        version = None if snapshot is None else snapshot.version
        answer: dict[str, Any] = {"version": version, "status": self.watcher.status()}
        if snapshot is None or (since is not None and since == version):
            return answer | {"changed": False}
        ready, model_views = self._ready()
        checkpoint = ready.checkpoint
        filters = [
            {"layer": leaf.name, "w": encode(params_at(checkpoint.params, leaf.path)["w"])}
            for leaf in model_views.leaves
            if leaf.layer.kind == "conv"
        ]
        return answer | {
            "changed": True,
            "epoch": checkpoint.epoch,
            "history": checkpoint.history or {},
            "filters": filters,
            "run": self._run_info(),
        }

    def test_images(self, start: int, count: int) -> dict[str, Any]:
        """``GET /api/test-images``: a page of the run's test images and labels."""
        test = None if self.watcher is None else self.watcher.test
        total = 0 if test is None else test.count
        if test is None or test.images is None:
            raise NoRunError(NO_RUN_HINT if test is None else f"no test images: {test.note}")
        start = check.integer(start, "start", 0, max(0, total - 1))
        count = check.integer(count, "count", 1, TEST_PAGE)
        stop = min(total, start + count)
        images = np.asarray(test.images[start:stop], np.float32)
        return {
            "start": start,
            "images": encode(images),
            "labels": test.labels[start:stop].tolist(),
        }

    def upload(self, raw: bytes) -> dict[str, Any]:
        """``POST /api/upload``: decode an image file (or a drawn PNG) once, keep it."""
        snapshot = self._snapshot()
        how = None if snapshot is None else snapshot.preprocessing
        key = self.uploads.add(raw, self.gray_size(), how)
        stored = self.uploads.get(key)
        model = None if stored.model is None else encode(stored.model)
        return {"id": key, "gray": encode(stored.gray), "model": model}

    # ---- views 1 and 2 -------------------------------------------------------------------

    def gray_image(self, ref: check.ImageRef) -> np.ndarray:
        """The grey ``[H, W]`` image ``ref`` names."""
        if ref.source == "builtin":
            check.choice(ref.key, "image.builtin", list(self.builtins))
            return self.builtins[ref.key]
        if ref.source == "test":
            return to_gray(test_image(self._test(), ref.key)[0])
        return self.uploads.get(ref.key).gray

    def _settings(self, body: dict[str, Any], image: np.ndarray) -> tuple[int, int]:
        stride = check.choice(check.field(body, "stride"), "stride", views.STRIDES)
        padding = check.choice(check.field(body, "padding"), "padding", views.PADDINGS)
        if not views.fits(image.shape, stride, padding):
            raise InputError(
                f"padding: a 3x3 kernel does not fit a {image.shape[0]}x{image.shape[1]} image "
                f"with padding {padding}"
            )
        return stride, padding

    def kernel(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /api/kernel``: one kernel slid over the image, and the output-size formula."""
        image = self.gray_image(check.image_ref(check.field(body, "image")))
        weights = check.kernel(check.field(body, "kernel"))
        stride, padding = self._settings(body, image)
        with self.lock:
            output = views.kernel_output(image, weights, stride=stride, padding=padding)
            output = np.asarray(output)
        size = views.output_size(image.shape, stride, padding)
        return {
            "image": encode(image),
            "kernel": encode(weights),
            "output": encode(output),
            "size": size._asdict(),
        }

    def match(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /api/match``: the patch at a pixel, and where it appears."""
        image = self.gray_image(check.image_ref(check.field(body, "image")))
        row = check.integer(check.field(body, "row"), "row", 0, image.shape[0] - 1)
        col = check.integer(check.field(body, "col"), "col", 0, image.shape[1] - 1)
        with self.lock:
            patch, dot, cosine = jax.device_get(
                views.match_maps(image, np.int32(row), np.int32(col))
            )
        return {
            "image": encode(image),
            "patch": encode(patch),
            "dot": encode(dot),
            "cosine": encode(cosine),
            "best": list(kernels.best_match(cosine)),
        }

    def slide(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /api/slide``: every window position, its 9 products and their sum (Play)."""
        image = self.gray_image(check.image_ref(check.field(body, "image")))
        weights = check.kernel(check.field(body, "kernel"))
        stride, padding = self._settings(body, image)
        with self.lock:
            windows, products, sums = jax.device_get(
                views.slide(image, weights, stride=stride, padding=padding)
            )
        return {
            "out": list(sums.shape),
            "windows": encode(windows),
            "products": encode(products),
            "sums": encode(sums),
        }

    # ---- views 3 and 4 -------------------------------------------------------------------

    def model_input(self, body: dict[str, Any]) -> tuple[np.ndarray, int | None]:
        """The ``[H, W, C]`` image ``body["input"]`` names, in the run's form, and its label."""
        ref = check.image_ref(check.field(body, "input"), "input", ("test", "upload"))
        if ref.source == "test":
            image, label = test_image(self._test(), ref.key)
            return image, label
        stored = self.uploads.get(ref.key)
        if stored.model is None:
            raise NoRunError(NO_RUN_HINT)
        return stored.model, None

    def _ready(self) -> tuple[Snapshot, ModelViews]:
        snapshot = self._snapshot()
        if snapshot is None or self.model_views is None:
            status = "" if self.watcher is None else f" ({self.watcher.status()})"
            raise NoRunError(f"{NO_RUN_HINT}{status}")
        return snapshot, self.model_views

    def forward(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /api/forward``: every layer's output, the probabilities and the saliency."""
        snapshot, model_views = self._ready()
        classes = len(snapshot.preprocessing.classes)
        image, label = self.model_input(body)
        target = body.get("target")
        target = -1 if target is None else check.integer(target, "target", 0, classes - 1)
        with self.lock:
            result = jax.device_get(
                model_views.forward(snapshot.checkpoint.params, image[None], np.int32(target))
            )
        return {
            "input": encode(image),
            "label": label,
            "layers": [
                {"name": leaf.name, "kind": leaf.layer.kind, "output": encode(output[0])}
                for leaf, output in zip(model_views.leaves, result.outputs, strict=True)
            ],
            "logits": numbers(result.logits[0]),
            "probabilities": numbers(result.probabilities[0]),
            "predicted": int(np.argmax(result.probabilities[0])),
            "target": int(result.target),
            "saliency": encode(result.saliency[0]),
        }

    def backward(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /api/backward``: each layer's gradient by the formulas, beside ``jax.grad``.

        The label is ``body["label"]``, else the test image's, else (a drawn or
        uploaded image) the class the model predicts.
        """
        snapshot, model_views = self._ready()
        classes = len(snapshot.preprocessing.classes)
        image, known = self.model_input(body)
        params = snapshot.checkpoint.params
        given = body.get("label", known)
        with self.lock:
            if given is None:
                given = int(
                    np.argmax(
                        model_views.forward(params, image[None], np.int32(-1)).probabilities[0]
                    )
                )
            label = check.integer(given, "label", 0, classes - 1)
            result = jax.device_get(
                model_views.backward(params, image[None], np.array([label], np.int32))
            )
        loss_name = str(snapshot.checkpoint.model.config.get("loss"))
        steps: list[dict[str, Any]] = [
            {
                "name": "loss",
                "kind": "loss",
                "formula": FORMULAS.get(loss_name, ""),
                "grad": encode(result.dlogits[0]),
                "grad_shape": list(result.dlogits.shape[1:]),
                "diff": float(result.dlogits_diff),
                "params": [],
            }
        ]
        for leaf, step in reversed(list(zip(model_views.leaves, result.steps, strict=True))):
            steps.append(_step(leaf.name, leaf.layer.kind, step))
        diffs = [entry["diff"] for entry in steps] + [
            param["diff"] for entry in steps for param in entry["params"]
        ]
        return {"loss": float(result.loss), "label": label, "steps": steps, "max_diff": max(diffs)}


def _step(name: str, kind: str, step: Any) -> dict[str, Any]:
    params = []
    for param in sorted(step.params):
        grad = np.asarray(step.params[param])
        params.append(
            {
                "name": param,
                "shape": list(grad.shape),
                "grad": encode(grad) if grad.size <= GRADIENT_VALUES else None,
                "max_abs": float(np.max(np.abs(grad))) if grad.size else 0.0,
                "diff": float(step.param_diffs[param]),
            }
        )
    return {
        "name": name,
        "kind": kind,
        "formula": FORMULAS.get(kind, ""),
        "grad": encode(step.grad[0]),
        "grad_shape": list(step.grad.shape[1:]),
        "diff": float(step.diff),
        "params": params,
    }
