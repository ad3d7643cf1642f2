"""Data losses for :class:`fastnn.Sequential` (computed in C++, averaged over the batch).

* :class:`SoftmaxCrossEntropy` (``"softmax"``): stable softmax cross-entropy on integer labels,
  optional label smoothing ``eps`` (target ``1 - eps`` on the true class, ``eps / (C - 1)``
  elsewhere; PyTorch spreads ``eps / C`` over every class including the true one).
* :class:`MulticlassSVM` (``"svm"``): Weston-Watkins hinge ``sum_{j != y} max(0, s_j - s_y +
  margin)``.
* :class:`MSE` (``"mse"``): mean squared error over every element (``torch.nn.MSELoss``), for
  regression targets of shape (N, outputs).

Regularisation (L2 ``0.5 * l2 * |W|^2``, L1 ``l1 * |W|_1``) is set on the model and applies to
Dense weights, not to biases or batch-norm parameters (``Dense(..., decay=False)`` opts a layer out).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Loss", "SoftmaxCrossEntropy", "MulticlassSVM", "MSE", "resolve_loss"]


@dataclass(frozen=True)
class Loss:
    kind: str = ""

    @property
    def classification(self) -> bool:
        return self.kind != "mse"

    def spec(self) -> dict:
        return {"kind": self.kind}


@dataclass(frozen=True)
class SoftmaxCrossEntropy(Loss):
    label_smoothing: float = 0.0
    kind: str = "softmax"

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.label_smoothing) < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")

    def spec(self) -> dict:
        return {"kind": "softmax", "label_smoothing": float(self.label_smoothing)}


@dataclass(frozen=True)
class MulticlassSVM(Loss):
    margin: float = 1.0
    kind: str = "svm"

    def __post_init__(self) -> None:
        if not float(self.margin) >= 0.0:
            raise ValueError(f"margin must be >= 0, got {self.margin!r}")

    def spec(self) -> dict:
        return {"kind": "svm", "margin": float(self.margin)}


@dataclass(frozen=True)
class MSE(Loss):
    kind: str = "mse"


def resolve_loss(loss: str | Loss) -> Loss:
    """A loss object from a name (``"softmax"``, ``"svm"``, ``"mse"``) or a Loss."""
    if isinstance(loss, Loss):
        return loss
    names = {"softmax": SoftmaxCrossEntropy, "cross_entropy": SoftmaxCrossEntropy,
             "svm": MulticlassSVM, "hinge": MulticlassSVM, "mse": MSE}
    if not isinstance(loss, str) or loss.lower() not in names:
        raise ValueError(f"unknown loss {loss!r}; use 'softmax', 'svm', 'mse' or a fastnn.losses object")
    return names[loss.lower()]()
