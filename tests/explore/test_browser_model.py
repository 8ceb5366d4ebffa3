"""The explore page in headless Chromium: the model, backward and training views of a run.

The page's numbers are compared exactly with ``Explorer.forward`` / ``Explorer.backward``
run here (the same jitted functions the server calls: bit-identical on one machine), and
with exact independent computations on the page's own data: ReLU is ``max(z, 0)``, max
pooling picks a value, flatten and un-flatten only move values (the float64 oracle), and
ReLU's backward is a select.
"""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from playwright.sync_api import Browser, Page

from jaxcnn import train
from jaxcnn.data import decode_image
from jaxcnn.explore import Explorer, decode
from tests import oracle
from tests.explore.browser import (
    READY_TIMEOUT_MS,
    act,
    attrs,
    choose,
    click,
    f32,
    last,
    page_at,
    wait_ready,
)
from tests.explore.serving import serving

SIZE = (28, 28)
STRIP_CELL = 32
"""Pixels per thumbnail of the test-image strip (app.js)."""


def check_forward(page: Page, explorer: Explorer, ref: dict[str, Any]) -> dict[str, Any]:
    """The model view shows ``explorer.forward`` of the input ``ref``; returns the page's answer."""
    shown = last(page, "forward")
    expected = explorer.forward({"input": ref, "target": None})
    np.testing.assert_array_equal(f32(shown["input"]), decode(expected["input"]))
    np.testing.assert_array_equal(f32(shown["saliency"]), decode(expected["saliency"]))
    assert [layer["name"] for layer in shown["layers"]] == [
        layer["name"] for layer in expected["layers"]
    ]
    for layer, want in zip(shown["layers"], expected["layers"], strict=True):
        np.testing.assert_array_equal(f32(layer["output"]), decode(want["output"]))
    for key in ("logits", "probabilities", "predicted", "target", "label"):
        assert shown[key] == expected[key], key
    classes = explorer.info()["run"]["classes"]
    items = "#probabilities li"
    assert attrs(page, items, "data-class") == classes
    np.testing.assert_array_equal(f32(attrs(page, items, "data-prob")), expected["probabilities"])
    assert attrs(page, "#probabilities", "data-predicted") == [str(expected["predicted"])]
    shapes = [",".join(map(str, decode(layer["output"]).shape)) for layer in expected["layers"]]
    assert attrs(page, "#model-layers .layer", "data-shape") == shapes
    check_layers_exactly(shown)
    return dict(shown)


def check_layers_exactly(shown: dict[str, Any]) -> None:
    """The shapes CNN's outputs on the page agree with each other where no rounding happens."""
    out = {layer["name"]: f32(layer["output"]) for layer in shown["layers"]}
    conv, relu, pool, flat = out["conv0"], out["relu1"], out["max_pool2"], out["flatten3"]
    np.testing.assert_array_equal(relu, np.maximum(conv, 0))
    np.testing.assert_array_equal(pool, oracle.max_pool2d(relu[None], 2, 2, "valid")[0])
    np.testing.assert_array_equal(flat, oracle.flatten(pool[None])[0])


def click_thumbnail(page: Page, k: int) -> str:
    """Click the ``k``-th thumbnail of the test-image strip."""
    return click(page, "#test-strip", position={"x": STRIP_CELL * k + 16, "y": 16})


def test_test_images_go_through_every_layer(
    browser: Browser, shapes_url: str, shapes_explorer: Explorer, shapes_run: Path
) -> None:
    with page_at(browser, f"{shapes_url}#view=model") as page:
        check_forward(page, shapes_explorer, {"test": 0})
        for k in (3, 10):
            assert click_thumbnail(page, k) == "ready"
            check_forward(page, shapes_explorer, {"test": k})
            assert f"input=test%3A{k}" in page.evaluate("location.hash")
        page.fill("#test-index", "25")
        assert act(page, lambda: page.press("#test-index", "Enter")) == "ready"
        check_forward(page, shapes_explorer, {"test": 25})
        assert attrs(page, "#test-strip", "data-start") == ["16"]
        filters = last(page, "run")["filters"]
        params = train.load_checkpoint(shapes_run / "checkpoint.npz").params
        assert [f["layer"] for f in filters] == ["conv0"]
        np.testing.assert_array_equal(f32(filters[0]["w"]), params["conv0"]["w"])


def test_a_drawn_digit_is_uploaded_as_png_and_classified(
    browser: Browser, shapes_url: str, shapes_explorer: Explorer
) -> None:
    with page_at(browser, f"{shapes_url}#view=model") as page:
        box = page.locator("#draw").bounding_box()
        assert box is not None
        x, y, w, h = box["x"], box["y"], box["width"], box["height"]
        page.mouse.move(x + 0.3 * w, y + 0.2 * h)
        page.mouse.down()
        page.mouse.move(x + 0.7 * w, y + 0.5 * h, steps=6)
        page.mouse.move(x + 0.35 * w, y + 0.8 * h, steps=6)
        assert act(page, page.mouse.up) == "ready"
        upload = last(page, "upload")
        shown = check_forward(page, shapes_explorer, {"upload": upload["id"]})
        png = page.evaluate("() => document.getElementById('draw').toDataURL('image/png')")
        raw = base64.b64decode(png.split(",", 1)[1])
        drawn = decode_image(raw, color="grayscale", size=SIZE, name="drawn")
        np.testing.assert_array_equal(f32(shown["input"]), drawn)
        assert drawn.max() > 0.5  # the stroke is there, white on black
        assert f"input=upload%3A{upload['id']}" in page.evaluate("location.hash")
        page.click("#draw-clear")  # clears the canvas, sends nothing
        assert page.evaluate(
            "() => document.getElementById('draw').getContext('2d')"
            ".getImageData(0, 0, 140, 140).data.every((v, i) => i % 4 === 3 || v === 0)"
        )


def test_an_uploaded_png_file_is_classified(
    browser: Browser, shapes_url: str, shapes_explorer: Explorer, tmp_path: Path
) -> None:
    path = tmp_path / "ring.png"
    picture = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(picture).ellipse((12, 12, 52, 52), outline=255, width=6)
    picture.save(path)
    with page_at(browser, f"{shapes_url}#view=model") as page:
        assert act(page, lambda: page.set_input_files("#model-file", path)) == "ready"
        shown = check_forward(page, shapes_explorer, {"upload": last(page, "upload")["id"]})
        ring = decode_image(path.read_bytes(), color="grayscale", size=SIZE, name="ring")
        np.testing.assert_array_equal(f32(shown["input"]), ring)


def check_backward(page: Page, explorer: Explorer, body: dict[str, Any]) -> dict[str, Any]:
    """The backward view shows ``explorer.backward(body)``, step by step."""
    shown = last(page, "backward")
    expected = explorer.backward(body)
    for key in ("loss", "label", "max_diff"):
        assert shown[key] == expected[key], key
    view = "#view-backward"
    assert attrs(page, view, "data-label") == [str(expected["label"])]
    assert f32(attrs(page, view, "data-loss"))[0] == np.float32(expected["loss"])
    assert attrs(page, ".step", "data-name") == [step["name"] for step in expected["steps"]]
    np.testing.assert_array_equal(
        np.asarray([float(v) for v in attrs(page, ".step", "data-diff")]),  # type: ignore[arg-type]
        [step["diff"] for step in expected["steps"]],
    )
    for step, want in zip(shown["steps"], expected["steps"], strict=True):
        assert step["formula"] == want["formula"]
        assert page.text_content(f'.step[data-name="{want["name"]}"] .formula') == want["formula"]
        np.testing.assert_array_equal(f32(step["grad"]), decode(want["grad"]))
        card = f'.step[data-name="{want["name"]}"] .param'
        assert attrs(page, card, "data-name") == [p["name"] for p in want["params"]]
        for attr, key in (("data-diff", "diff"), ("data-max-abs", "max_abs")):
            values = [float(v) for v in attrs(page, card, attr)]  # type: ignore[arg-type]
            assert values == [p[key] for p in want["params"]], attr
        for param, want_param in zip(step["params"], want["params"], strict=True):
            np.testing.assert_array_equal(f32(param["grad"]), decode(want_param["grad"]))
    return dict(shown)


def test_the_backward_view_shows_each_formulas_gradient_beside_jax_grad(
    browser: Browser, shapes_url: str, shapes_explorer: Explorer
) -> None:
    with page_at(browser, f"{shapes_url}#view=model&input=test:4") as page:
        forward = last(page, "forward")
        assert click(page, '#tabs button[data-view="backward"]') == "ready"
        shown = check_backward(page, shapes_explorer, {"input": {"test": 4}})
        assert shown["label"] == forward["label"]  # the test label, by default
        grads = {step["name"]: f32(step["grad"]) for step in shown["steps"]}
        conv = next(f32(layer["output"]) for layer in forward["layers"] if layer["name"] == "conv0")
        # exact on the page's own numbers: ReLU's backward selects, un-flatten moves values
        np.testing.assert_array_equal(
            grads["relu1"], oracle.relu_backward(conv, grads["max_pool2"])
        )
        np.testing.assert_array_equal(
            grads["flatten3"], oracle.flatten_backward(grads["dense4"][None], (1, 14, 14, 2))[0]
        )
        other = 1 - int(shown["label"])
        assert choose(page, "#label-select", str(other)) == "ready"
        check_backward(page, shapes_explorer, {"input": {"test": 4}, "label": other})
        assert f"label={other}" in page.evaluate("location.hash")


def test_the_training_view_follows_a_run_that_saves_a_new_checkpoint(
    browser: Browser, shapes_run: Path, shapes_explorer: Explorer, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(shapes_run, run)
    final = train.load_checkpoint(run / "checkpoint.npz")
    assert final.history is not None
    assert final.config is not None
    epochs = final.epoch

    def save(epoch: int, scale: float) -> dict[str, Any]:
        """The run's checkpoint after ``epoch`` epochs (parameters scaled to tell them apart)."""
        params = {
            name: {key: value * scale for key, value in layer.items()}
            for name, layer in final.params.items()
        }
        history = {key: values[:epoch] for key, values in (final.history or {}).items()}
        train.save_checkpoint(
            run / "checkpoint.npz",
            params=params,
            model=final.model,
            epoch=epoch,
            config=final.config,
            history=history,
            data=final.data,
        )
        return {"params": params, "history": history}

    before = save(epochs - 1, 0.5)  # the run, one epoch before its end
    explorer = Explorer(run, note=lambda _: None)
    # the same model: its compiled views (parameters are arguments) serve this run too
    explorer.model_views = shapes_explorer.model_views
    explorer.warm_up()
    with serving(explorer) as url, page_at(browser, f"{url}#view=training") as page:
        status = f"epoch {epochs - 1} of {final.config.epochs}"
        assert page.get_attribute("#training", "data-status") == status
        assert last(page, "run")["history"] == before["history"]
        version = str(page.get_attribute("#training", "data-version"))
        after = save(epochs, 1.0)  # the last epoch ends: new filters, a point more per curve
        page.wait_for_function(
            "(old) => document.getElementById('training').dataset.version !== old",
            arg=version,
            timeout=READY_TIMEOUT_MS,
        )
        wait_ready(page)
        assert page.get_attribute("#training", "data-epoch") == str(epochs)
        status = f"epoch {epochs} of {final.config.epochs}"
        assert page.get_attribute("#training", "data-status") == status
        answer = last(page, "run")
        assert answer["history"] == after["history"]
        np.testing.assert_array_equal(f32(answer["filters"][0]["w"]), after["params"]["conv0"]["w"])
        # and the model view now runs the new parameters
        assert click(page, '#tabs button[data-view="model"]') == "ready"
        check_forward(page, explorer, {"test": 0})
