"""Layer descriptions for :class:`fastnn.Sequential`.

Layers are descriptions only; the network they form is compiled onto fastnn's C++ runtime by
``Sequential``. Names and arguments follow PyTorch where the two overlap:

* ``Dense(in_features, out_features)`` is ``torch.nn.Linear``; fastnn stores the weight as
  ``(in_features, out_features)`` (the CS231n layout, ``x @ W``) and exports it transposed as
  PyTorch's ``(out, in)`` ``Linear.weight``.
* ``Dropout(p)`` takes PyTorch's ``p``: the probability of **dropping** a unit (the CS231n
  functional API's ``dropout_param['p']`` is the probability of keeping one).
* ``BatchNorm(num_features, eps, momentum)`` takes PyTorch's ``momentum`` (``running = (1 -
  momentum) * running + momentum * batch``, default 0.1, running variance unbiased), which is
  CS231n's ``1 - momentum``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from fastnn.init import Initializer, resolve

__all__ = [
    "Layer",
    "Dense",
    "ReLU",
    "LeakyReLU",
    "PReLU",
    "ELU",
    "Tanh",
    "Sigmoid",
    "Maxout",
    "BatchNorm",
    "Dropout",
]


def _positive_int(value: Any, what: str) -> int:
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or (isinstance(value, float) and not math.isfinite(value)) or value != int(value) or value < 1):
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    if value >= 2**62:  # no machine holds such a layer; the runtime's 64-bit sizes must not overflow
        raise ValueError(f"{what} = {value!r} is too large (more memory than any machine has)")
    return int(value)


def _number(value: Any, what: str, lo: float = -math.inf, hi: float = math.inf,
            lo_open: bool = False, hi_open: bool = False) -> float:
    if isinstance(value, str | bytes | bool):  # float("0.1") and float(True) work, but are not meant
        raise TypeError(f"{what} must be a number, got {type(value).__name__}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a number, got {type(value).__name__}") from None
    ok = math.isfinite(v) and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not ok:
        rng = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ValueError(f"{what} must be in {rng}, got {value!r}")
    return v


@dataclass
class Layer:
    """Base class: ``kind`` names the C++ layer; ``spec`` describes it to the runtime.

    Every layer maps a batch of shape (N, in_features) to (N, output_size(in_features)) in the
    model's dtype. Constructors validate their arguments and raise ``ValueError`` (``TypeError``
    for non-numbers) naming the layer and the argument; sizes that do not chain are refused when
    the :class:`~fastnn.model.Sequential` is built.
    """

    kind: str = field(init=False, default="", repr=False)

    def spec(self, in_features: int) -> dict[str, Any]:
        """The description handed to the C++ runtime for an input of ``in_features`` features.

        Raises
        ------
        ValueError
            The layer cannot take ``in_features`` inputs (e.g. a Dense with another
            ``in_features``, a Maxout whose ``k`` does not divide it).
        """
        return {"kind": self.kind, "in": in_features}

    def output_size(self, in_features: int) -> int:
        """Features this layer outputs for ``in_features`` inputs."""
        return in_features

    def torch_module(self) -> str:
        """The PyTorch module this layer corresponds to (for export/import)."""
        return f"torch.nn.{type(self).__name__}"


@dataclass
class Dense(Layer):
    """Fully connected layer ``y = x @ W + b`` with ``W`` of shape (in_features, out_features).

    Parameters
    ----------
    in_features : int or None
        Input size; None infers it from the previous layer (or the model's ``input_dim``).
    out_features : int
        Output size.
    bias : bool
        Whether to add a bias (initialised to ``bias_init``).
    init : str or callable, optional
        Weight initialisation (see :mod:`fastnn.init`); defaults to the model's.
    bias_init : float, optional
        Constant initial bias (e.g. 0.01 for ReLU units); defaults to the model's (0).
    decay : bool
        Whether the weight takes the model's L2/L1 penalty and AdamW decay (biases never do).
    """

    in_features: int | None = None
    out_features: int = 0
    bias: bool = True
    init: str | Initializer | None = None
    bias_init: float | None = None
    decay: bool = True

    def __post_init__(self) -> None:
        self.kind = "dense"
        if self.in_features is not None:
            self.in_features = _positive_int(self.in_features, "Dense: in_features")
        self.out_features = _positive_int(self.out_features, "Dense: out_features")
        if self.init is not None:
            resolve(self.init)
        if self.bias_init is not None:
            self.bias_init = _number(self.bias_init, "Dense: bias_init")

    def spec(self, in_features: int) -> dict[str, Any]:
        if self.in_features is not None and self.in_features != in_features:
            raise ValueError(f"Dense({self.in_features}, {self.out_features}) receives {in_features} "
                             "features from the layer before it")
        return {"kind": "dense", "in": in_features, "out": self.out_features, "bias": self.bias,
                "decay": self.decay}

    def output_size(self, in_features: int) -> int:
        return self.out_features

    def torch_module(self) -> str:
        return "torch.nn.Linear"


@dataclass
class ReLU(Layer):
    """Rectified linear unit ``max(x, 0)``."""

    def __post_init__(self) -> None:
        self.kind = "relu"


@dataclass
class LeakyReLU(Layer):
    """Leaky ReLU ``x if x > 0 else negative_slope * x`` (``torch.nn.LeakyReLU``).

    Parameters
    ----------
    negative_slope : float
        The slope for negative inputs (default 0.01).
    """

    negative_slope: float = 0.01

    def __post_init__(self) -> None:
        self.kind = "leaky_relu"
        self.negative_slope = _number(self.negative_slope, "LeakyReLU: negative_slope")

    def spec(self, in_features: int) -> dict[str, Any]:
        return {"kind": self.kind, "in": in_features, "param": self.negative_slope}


@dataclass
class PReLU(Layer):
    """Parametric ReLU ``x if x > 0 else a * x`` with learned slopes ``a`` (``torch.nn.PReLU``).

    Parameters
    ----------
    num_parameters : int
        1 (one slope shared by every feature) or the input size (one slope per feature); the
        parameter ``"<i>.weight"`` has shape (num_parameters,).
    init : float
        Initial slope (PyTorch's default 0.25). Slopes take no L2/L1 penalty.
    """

    num_parameters: int = 1
    init: float = 0.25

    def __post_init__(self) -> None:
        self.kind = "prelu"
        self.num_parameters = _positive_int(self.num_parameters, "PReLU: num_parameters")
        self.init = _number(self.init, "PReLU: init")

    def spec(self, in_features: int) -> dict[str, Any]:
        if self.num_parameters not in (1, in_features):
            raise ValueError(f"PReLU: num_parameters must be 1 or {in_features} (its input size), "
                             f"got {self.num_parameters}")
        return {"kind": self.kind, "in": in_features, "k": self.num_parameters}


@dataclass
class ELU(Layer):
    """Exponential linear unit ``x if x > 0 else alpha * (exp(x) - 1)`` (``torch.nn.ELU``).

    Parameters
    ----------
    alpha : float
        Saturation value for negative inputs, >= 0 (default 1).
    """

    alpha: float = 1.0

    def __post_init__(self) -> None:
        self.kind = "elu"
        self.alpha = _number(self.alpha, "ELU: alpha", lo=0.0)

    def spec(self, in_features: int) -> dict[str, Any]:
        return {"kind": self.kind, "in": in_features, "param": self.alpha}


@dataclass
class Tanh(Layer):
    """Hyperbolic tangent."""

    def __post_init__(self) -> None:
        self.kind = "tanh"


@dataclass
class Sigmoid(Layer):
    """Logistic sigmoid ``1 / (1 + exp(-x))``."""

    def __post_init__(self) -> None:
        self.kind = "sigmoid"


@dataclass
class Maxout(Layer):
    """Maxout: the maximum over groups of ``k`` consecutive features (in = k * out).

    Put a ``Dense(in, k * units)`` before it for a maxout unit layer of ``units`` outputs
    (:func:`fastnn.MLP` with ``activation="maxout"`` does this). PyTorch has no equivalent module,
    so a model with Maxout cannot be exported with :func:`fastnn.io.to_torch`.

    Parameters
    ----------
    k : int
        Pieces per unit (>= 1); must divide the input size.
    """

    k: int = 2

    def __post_init__(self) -> None:
        self.kind = "maxout"
        self.k = _positive_int(self.k, "Maxout: k")

    def spec(self, in_features: int) -> dict[str, Any]:
        if in_features % self.k:
            raise ValueError(f"Maxout(k={self.k}) receives {in_features} features, not a multiple of k")
        return {"kind": self.kind, "in": in_features, "k": self.k}

    def output_size(self, in_features: int) -> int:
        return in_features // self.k

    def torch_module(self) -> str:
        return "(no PyTorch equivalent)"


@dataclass
class BatchNorm(Layer):
    """Batch normalisation over the batch, per feature (``torch.nn.BatchNorm1d``).

    Parameters
    ----------
    num_features : int or None
        Features; None infers them.
    eps : float
        Added to the variance (> 0).
    momentum : float
        PyTorch's convention: ``running = (1 - momentum) * running + momentum * batch``.
    affine : bool
        Learn a scale (``weight``, init 1) and shift (``bias``, init 0).
    """

    num_features: int | None = None
    eps: float = 1e-5
    momentum: float = 0.1
    affine: bool = True

    def __post_init__(self) -> None:
        self.kind = "batchnorm"
        if self.num_features is not None:
            self.num_features = _positive_int(self.num_features, "BatchNorm: num_features")
        self.eps = _number(self.eps, "BatchNorm: eps", lo=0.0, lo_open=True)
        self.momentum = _number(self.momentum, "BatchNorm: momentum", 0.0, 1.0)

    def spec(self, in_features: int) -> dict[str, Any]:
        if self.num_features is not None and self.num_features != in_features:
            raise ValueError(f"BatchNorm({self.num_features}) receives {in_features} features")
        return {"kind": self.kind, "in": in_features, "param": self.eps,
                "momentum": 1.0 - self.momentum, "bias": self.affine, "unbiased_var": True}

    def torch_module(self) -> str:
        return "torch.nn.BatchNorm1d"


@dataclass
class Dropout(Layer):
    """Inverted dropout; ``p`` is the probability of **dropping** a unit (PyTorch's convention).

    In training the kept units are scaled by ``1 / (1 - p)``; in evaluation the layer is the
    identity. Masks are counter-based (Philox): a pure function of the model's seed, the training
    step and the layer, so training is reproducible and independent of the thread count.

    Parameters
    ----------
    p : float
        Probability of dropping a unit, in [0, 1) (0 is the identity). The CS231n functional API's
        ``dropout_param['p']`` is the probability of *keeping* one: ``Dropout(p=0.2)`` there is
        ``{'p': 0.8}``.
    """

    p: float = 0.5

    def __post_init__(self) -> None:
        self.kind = "dropout"
        self.p = _number(self.p, "Dropout: p (probability of dropping a unit)", 0.0, 1.0, hi_open=True)

    def spec(self, in_features: int) -> dict[str, Any]:
        return {"kind": self.kind, "in": in_features, "param": 1.0 - self.p}
