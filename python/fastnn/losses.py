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

import math
from dataclasses import dataclass, field

__all__ = ["Loss", "SoftmaxCrossEntropy", "MulticlassSVM", "MSE", "resolve_loss"]


@dataclass(frozen=True)
class Loss:
    """Base class of the data losses; ``kind`` names the C++ loss (``"softmax"``, ``"svm"``, ``"mse"``)."""

    kind: str = ""

    @property
    def classification(self) -> bool:
        """True for losses on integer class labels (softmax, SVM), False for regression (MSE)."""
        return self.kind != "mse"

    def spec(self) -> dict:
        """The description handed to the C++ runtime (``{"kind": ..., <hyperparameters>}``)."""
        return {"kind": self.kind}


@dataclass(frozen=True)
class SoftmaxCrossEntropy(Loss):
    """Softmax cross-entropy on integer labels, averaged over the batch (``loss="softmax"``).

    ``L_i = -sum_j t_ij log p_ij`` with ``p_i = softmax(s_i)`` (computed stably: the row maximum
    is subtracted first) and targets ``t_ij = 1 - eps`` on the true class, ``eps / (C - 1)`` on
    the others.

    Parameters
    ----------
    label_smoothing : float
        ``eps`` in [0, 1); 0 (default) is the plain one-hot loss. PyTorch's
        ``CrossEntropyLoss(label_smoothing=e)`` spreads ``e / C`` over every class including the true
        one, so it equals ``SoftmaxCrossEntropy(label_smoothing=e * (C - 1) / C)``.

    Raises
    ------
    ValueError
        ``label_smoothing`` outside [0, 1).
    """

    label_smoothing: float = 0.0
    # not an __init__ argument: SoftmaxCrossEntropy(0.1) is label smoothing, never a kind
    kind: str = field(default="softmax", init=False)

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.label_smoothing) < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")

    def spec(self) -> dict:
        """The description handed to the C++ runtime."""
        return {"kind": "softmax", "label_smoothing": float(self.label_smoothing)}


@dataclass(frozen=True)
class MulticlassSVM(Loss):
    """Multiclass SVM (Weston-Watkins hinge) on integer labels, averaged over the batch (``loss="svm"``).

    ``L_i = sum_{j != y_i} max(0, s_j - s_{y_i} + margin)``: the CS231n loss.
    ``torch.nn.MultiMarginLoss(p=1, margin)`` divides the same sum by the number of classes ``C``.

    Parameters
    ----------
    margin : float
        The margin (>= 0, default 1).

    Raises
    ------
    ValueError
        A negative margin.
    """

    margin: float = 1.0
    kind: str = field(default="svm", init=False)

    def __post_init__(self) -> None:
        if not (math.isfinite(float(self.margin)) and float(self.margin) >= 0.0):
            raise ValueError(f"margin must be a finite number >= 0, got {self.margin!r}")

    def spec(self) -> dict:
        """The description handed to the C++ runtime."""
        return {"kind": "svm", "margin": float(self.margin)}


@dataclass(frozen=True)
class MSE(Loss):
    """Mean squared error over every element, ``mean((pred - target)**2)`` (``loss="mse"``), as
    ``torch.nn.MSELoss()``; targets have shape (N, outputs) (or (N,) for one output), float."""

    kind: str = field(default="mse", init=False)


def resolve_loss(loss: str | Loss) -> Loss:
    """A loss object from a name or a :class:`Loss`.

    Parameters
    ----------
    loss : str or Loss
        ``"softmax"`` (alias ``"cross_entropy"``), ``"svm"`` (alias ``"hinge"``), ``"mse"``
        (case-insensitive; default hyperparameters), or a Loss (returned unchanged).

    Returns
    -------
    Loss

    Raises
    ------
    ValueError
        An unknown name.
    """
    if isinstance(loss, Loss):
        return loss
    names = {"softmax": SoftmaxCrossEntropy, "cross_entropy": SoftmaxCrossEntropy,
             "svm": MulticlassSVM, "hinge": MulticlassSVM, "mse": MSE}
    if not isinstance(loss, str) or loss.lower() not in names:
        raise ValueError(f"unknown loss {loss!r}; use 'softmax', 'svm', 'mse' or a fastnn.losses object")
    return names[loss.lower()]()
