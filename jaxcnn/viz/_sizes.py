"""The output-size formula on the article's examples, as a table figure."""

from __future__ import annotations

from typing import NamedTuple

from matplotlib.figure import Figure

from jaxcnn import _checks, ops
from jaxcnn.viz._common import PathLike, finish, new_figure

COLUMNS = ("case", "input n", "kernel k", "stride s", "padding p", "(n + 2p - k) // s + 1")


class SizeCase(NamedTuple):
    """One row of the table: a window of side ``k`` sliding over ``n`` pixels."""

    case: str
    n: int
    k: int
    stride: int
    padding: str | int

    def pad(self) -> int:
        """Zeros added on each side (``"same"`` resolved for odd ``k``)."""
        return _checks.padding_pairs("plot_output_sizes", self.padding, (self.k, self.k))[0][0]

    def output(self) -> int:
        """``ops.conv_output_size`` for this case."""
        return ops.conv_output_size(self.n, self.k, self.stride, self.padding)


def output_size_cases() -> list[SizeCase]:
    """The article's examples; the MNIST chain feeds each output to the next step."""
    cases = [
        SizeCase("5x5 input, 3x3 kernel", 5, 3, 1, "valid"),
        SizeCase("5x5 input, 3x3 kernel, stride 2", 5, 3, 2, "valid"),
        SizeCase("28x28 image, no padding", 28, 3, 1, "valid"),
        SizeCase('28x28, padding "same"', 28, 3, 1, "same"),
        SizeCase("5x5 kernel, padding 2", 28, 5, 1, 2),
    ]
    size = 28
    for label, k, stride in (("conv 3x3", 3, 1), ("max-pool 2", 2, 2)) * 2:
        step = SizeCase(f"MNIST CNN: {label}", size, k, stride, "valid")
        cases.append(step)
        size = step.output()
    return cases


def plot_output_sizes(*, path: PathLike | None = None) -> Figure:
    """A table of output sizes computed with :func:`jaxcnn.ops.conv_output_size`.

    Rows: a 5x5 input under a 3x3 kernel with stride 1 and 2; a 28x28 image
    without padding and with ``"same"`` padding; a 5x5 kernel with padding 2;
    and the MNIST CNN's chain conv -> pool -> conv -> pool (28 -> 26 -> 13 ->
    11 -> 5). Pooling windows follow the same formula.

    Args:
      path: if given, save a PNG there: 1000 x 380 pixels (``DPI`` = 100).

    Returns:
      The figure: one axes holding one table (``ax.tables``), no images.
    """
    fig = new_figure(10.0, 3.8)
    ax = fig.add_subplot()
    ax.axis("off")
    rows = [_row(case) for case in output_size_cases()]
    table = ax.table(cellText=rows, colLabels=COLUMNS, loc="center", cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(11)
    table.scale(1.0, 1.5)
    table.auto_set_column_width(list(range(len(COLUMNS))))
    for (row, _), cell in table.get_celld().items():
        if row == 0:
            cell.set_text_props(weight="bold")
            cell.set_facecolor("#dde6f0")
    ax.set_title("Output size per axis: out = (n + 2p - k) // s + 1")
    return finish(fig, path)


def _row(case: SizeCase) -> list[str]:
    n, k, s, p = case.n, case.k, case.stride, case.pad()
    padding = f'{p} ("same")' if case.padding == "same" else str(p)
    formula = f"({n} + {2 * p} - {k}) // {s} + 1 = {case.output()}"
    return [case.case, str(n), str(k), str(s), padding, formula]
