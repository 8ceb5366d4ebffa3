"""Data sets: the article's generated shapes and MNIST-format IDX files."""
