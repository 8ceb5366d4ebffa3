"""The benchmark harness of jaxcnn, run from a checkout: ``python -m benchmarks --help``.

Not installed with the package (``pip install .`` ships only ``jaxcnn``).
"""
