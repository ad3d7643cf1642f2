"""Checkpoints (safetensors, no pickle) and PyTorch state-dict interop.

A checkpoint is one safetensors file: the tensors (``param/<name>``, ``buffer/<name>``,
``optim/<i>/<name>`` for the optimizer's state, ``average/<name>`` for averaged weights) plus a JSON
document in the header metadata (key ``"fastnn"``) with the architecture, loss, dtype, counters
(step, Adam's t), optimizer, trainer state and history, preprocessing and CRC32 checksums of every
tensor. Files are written atomically: a temporary file in the same folder, fsync, rename, fsync of
the folder — a crash mid-save leaves the previous file intact. Loading validates everything
(a truncated, bit-flipped or foreign file is a ``ValueError`` that says so) and never executes code.

Saving and loading need the optional ``safetensors`` package (``pip install 'fastnn[io]'``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
import zlib
from pathlib import Path
from typing import Any

import numpy as np

import fastnn
from fastnn import layers as L
from fastnn.model import Sequential

__all__ = ["save", "load", "restore_into", "to_torch_state_dict", "load_torch_state_dict", "to_torch",
           "from_torch", "FORMAT_VERSION"]

FORMAT_VERSION = 1
_LAYER_CLASSES = {c.__name__: c for c in (L.Dense, L.ReLU, L.LeakyReLU, L.PReLU, L.ELU, L.Tanh, L.Sigmoid,
                                          L.Maxout, L.BatchNorm, L.Dropout)}


def _safetensors():
    try:
        from safetensors import numpy as st
    except ImportError:
        raise ImportError("saving and loading checkpoints needs safetensors: pip install 'fastnn[io]' "
                          "(or pip install safetensors)") from None
    return st


def _crc(a: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(a).view(np.uint8).reshape(-1).data) & 0xFFFFFFFF


def _layer_to_dict(layer: L.Layer) -> dict[str, Any]:
    args = {}
    for f in dataclasses.fields(layer):
        if not f.init:
            continue
        v = getattr(layer, f.name)
        if callable(v):  # a custom initialiser: not serialisable, and not needed to restore weights
            v = None
        args[f.name] = list(v) if isinstance(v, tuple) else v
    return {"class": type(layer).__name__, "args": args}


def _layer_from_dict(d: dict[str, Any]) -> L.Layer:
    cls = _LAYER_CLASSES.get(d.get("class"))
    if cls is None:
        raise ValueError(f"checkpoint names an unknown layer {d.get('class')!r}")
    return cls(**d.get("args", {}))


def _model_meta(model: Sequential) -> dict[str, Any]:
    return {
        "layers": [_layer_to_dict(lay) for lay in model.layers],
        "input_dim": model.input_dim,
        "loss": {"class": type(model.loss).__name__, **{k: v for k, v in dataclasses.asdict(model.loss).items()
                                                        if k != "kind"}},
        "l2": model.l2, "l1": model.l1, "bias_init": model.bias_init,
        "init": model.init if isinstance(model.init, str) else None,
        "seed": model.seed, "dtype": model.dtype.name,
    }


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(model: Sequential, path: str | Path, *, trainer_state: dict | None = None,
         history: Any = None, preprocessing: dict | None = None, extra: dict | None = None,
         include_optimizer: bool = True) -> Path:
    """Write ``model`` (and optionally optimizer, trainer state, history, preprocessing) to ``path``.

    The write is atomic: readers see either the previous file or the complete new one.

    Returns
    -------
    Path
        The path written.
    """
    st = _safetensors()
    path = Path(path)
    net = model._net
    tensors: dict[str, np.ndarray] = {}
    for k, v in model.params.items():
        tensors[f"param/{k}"] = np.ascontiguousarray(v)
    for k, v in model.buffers.items():
        tensors[f"buffer/{k}"] = np.ascontiguousarray(v)
    optimizer = None
    key = getattr(model, "_optimizer_key", None)
    if include_optimizer and key is not None and key[0] != "lbfgs":
        for i in range(net.n_state):
            flat = net.state(i)
            for t in model._info:
                tensors[f"optim/{i}/{t['name']}"] = flat[t["offset"]:t["offset"] + t["size"]].reshape(t["shape"]).copy()
        optimizer = {"kind": key[0], "hyper": dict(key[1]), "config": model._optimizer.config()}
    avg = net.average
    if avg is not None:
        for t in model._info:
            tensors[f"average/{t['name']}"] = avg[t["offset"]:t["offset"] + t["size"]].reshape(t["shape"]).copy()
    if history is not None and hasattr(history, "to_dict"):
        history = history.to_dict()
    meta = {
        "format": FORMAT_VERSION, "fastnn_version": fastnn.__version__,
        "model": _model_meta(model),
        "counters": {"step": int(net.step), "opt_t": int(net.opt_t), "average_count": int(net.average_count),
                     "average_decay": float(net.average_decay)},
        "optimizer": optimizer, "trainer": trainer_state, "history": history,
        "preprocessing": preprocessing, "extra": extra,
        "checksums": {k: _crc(v) for k, v in tensors.items()},
    }
    try:
        header = json.dumps(meta, allow_nan=True)
    except TypeError as exc:
        raise TypeError(f"checkpoint metadata must be JSON-serialisable: {exc}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        st.save_file(tensors, str(tmp), metadata={"fastnn": header})
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _read(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Tensors and metadata of a checkpoint, fully validated."""
    st = _safetensors()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            raw_meta = f.metadata() or {}
        tensors = st.load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise ValueError(f"{path} is not a readable safetensors file (truncated or damaged?): {exc}") from None
    if "fastnn" not in raw_meta:
        raise ValueError(f"{path} is a safetensors file but not a fastnn checkpoint (no 'fastnn' metadata)")
    try:
        meta = json.loads(raw_meta["fastnn"])
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: the fastnn metadata is damaged ({exc})") from None
    fmt = meta.get("format") if isinstance(meta, dict) else meta
    if fmt != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported fastnn checkpoint format {fmt!r}")
    sums = meta.get("checksums", {})
    if set(sums) != set(tensors):
        raise ValueError(f"{path}: the tensors do not match the checkpoint's index (damaged file)")
    for k, v in tensors.items():
        if _crc(v) != sums[k]:
            raise ValueError(f"{path}: tensor {k!r} fails its checksum (the file is corrupted)")
    return tensors, meta


def _build(meta: dict[str, Any]) -> Sequential:
    m = meta["model"]
    loss_d = dict(m["loss"])
    from fastnn import losses

    loss_cls = getattr(losses, loss_d.pop("class"), None)
    if loss_cls is None or not isinstance(loss_cls, type):
        raise ValueError("checkpoint names an unknown loss")
    return Sequential([_layer_from_dict(d) for d in m["layers"]], input_dim=m["input_dim"], loss=loss_cls(**loss_d),
                      l2=m["l2"], l1=m["l1"], bias_init=m["bias_init"], init=m.get("init") or "auto",
                      seed=m["seed"], dtype=m["dtype"])


def _restore(model: Sequential, tensors: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    weights = {k[len("param/"):]: v for k, v in tensors.items() if k.startswith("param/")}
    weights.update({k[len("buffer/"):]: v for k, v in tensors.items() if k.startswith("buffer/")})
    model.set_weights(weights)
    net = model._net
    c = meta.get("counters", {})
    net.step = int(c.get("step", 0))
    opt = meta.get("optimizer")
    if opt is not None:
        from fastnn.optim import resolve_optimizer

        key = (opt["kind"], tuple(sorted(opt["hyper"].items())))
        if getattr(model, "_optimizer_key", None) != key:
            from fastnn import optim

            cfg = opt.get("config", {})
            cls = getattr(optim, str(cfg.get("class", "")), None)
            args = {k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg.items() if k not in ("class", "kind")}
            try:
                optimizer = cls(**args) if isinstance(cls, type) and issubclass(cls, optim.Optimizer) else None
            except (TypeError, ValueError):  # a schedule was recorded by its description
                optimizer = None
            if optimizer is None or optimizer.kind != opt["kind"]:
                optimizer = resolve_optimizer(opt["kind"])
            model.attach_optimizer(optimizer)
        for i in range(net.n_state):
            flat = net.state(i)
            for t in model._info:
                flat[t["offset"]:t["offset"] + t["size"]] = tensors[f"optim/{i}/{t['name']}"].reshape(-1)
        net.opt_t = int(c.get("opt_t", 0))
    if any(k.startswith("average/") for k in tensors):
        net.enable_average(float(c.get("average_decay", 0.0)))
        avg = net.average
        for t in model._info:
            avg[t["offset"]:t["offset"] + t["size"]] = tensors[f"average/{t['name']}"].reshape(-1)
        net.average_count = int(c.get("average_count", 0))


def load(path: str | Path) -> Sequential:
    """Load a model saved by :func:`save` (with its optimizer state, counters and averages).

    The checkpoint's metadata (history, trainer state, preprocessing, extra) is available as
    ``model.checkpoint``. A loaded model predicts bit-identically to the saved one.

    Raises
    ------
    FileNotFoundError
        No file.
    ValueError
        Truncated, corrupted (checksums) or foreign files, unsupported formats.
    """
    tensors, meta = _read(path)
    model = _build(meta)
    _restore(model, tensors, meta)
    model.checkpoint = {k: meta.get(k) for k in ("history", "trainer", "preprocessing", "extra", "optimizer")}
    return model


def restore_into(model: Sequential, path: str | Path) -> dict[str, Any]:
    """Load a checkpoint's weights, optimizer state and counters into an existing model of the same
    architecture; returns the checkpoint's metadata."""
    tensors, meta = _read(path)
    mine, theirs = _model_meta(model), meta["model"]
    for key in ("layers", "input_dim", "dtype"):
        if mine[key] != theirs[key]:
            raise ValueError(f"{path} holds a different model ({key} differs): {theirs[key]!r} vs {mine[key]!r}")
    _restore(model, tensors, meta)
    return meta


# ----------------------------------------------------------------------------------------------
# PyTorch
# ----------------------------------------------------------------------------------------------
def to_torch_state_dict(model: Sequential) -> dict[str, np.ndarray]:
    """State-dict names and shapes of the equivalent ``torch.nn.Sequential`` (Dense weights as
    PyTorch's (out, in); batch norm with ``num_batches_tracked``)."""
    out: dict[str, np.ndarray] = {}
    for i, layer in enumerate(model.layers):
        if isinstance(layer, L.Dense):
            out[f"{i}.weight"] = np.ascontiguousarray(model.params[f"{i}.weight"].T)
            if layer.bias:
                out[f"{i}.bias"] = model.params[f"{i}.bias"].copy()
        elif isinstance(layer, L.BatchNorm):
            if layer.affine:
                out[f"{i}.weight"] = model.params[f"{i}.weight"].copy()
                out[f"{i}.bias"] = model.params[f"{i}.bias"].copy()
            out[f"{i}.running_mean"] = model.buffers[f"{i}.running_mean"].copy()
            out[f"{i}.running_var"] = model.buffers[f"{i}.running_var"].copy()
            out[f"{i}.num_batches_tracked"] = np.array(model.step, dtype=np.int64)
        elif isinstance(layer, L.PReLU):
            out[f"{i}.weight"] = model.params[f"{i}.weight"].copy()
    return out


def _to_numpy(v: Any) -> np.ndarray:
    if hasattr(v, "detach"):  # a torch tensor
        v = v.detach().cpu().numpy()
    return np.asarray(v)


def load_torch_state_dict(model: Sequential, state: dict[str, Any]) -> None:
    """Load a ``torch.nn.Sequential`` state dict (tensors or arrays) into ``model``."""
    want = to_torch_state_dict(model)
    given = {k: _to_numpy(v) for k, v in state.items()}
    missing = sorted(k for k in want if k not in given and not k.endswith("num_batches_tracked"))
    unknown = sorted(k for k in given if k not in want)
    if missing or unknown:
        raise KeyError(f"state dict does not match the model: missing {missing}, unexpected {unknown}")
    weights: dict[str, np.ndarray] = {}
    for i, layer in enumerate(model.layers):
        if isinstance(layer, L.Dense):
            w = given[f"{i}.weight"]
            if w.shape != (layer.out_features, model.params[f"{i}.weight"].shape[0]):
                raise ValueError(f"{i}.weight has shape {w.shape}; PyTorch's Linear weight here is "
                                 f"{(layer.out_features, model.params[f'{i}.weight'].shape[0])}")
            weights[f"{i}.weight"] = w.T
            if layer.bias:
                weights[f"{i}.bias"] = given[f"{i}.bias"]
        elif isinstance(layer, L.BatchNorm):
            for n in ("weight", "bias") if layer.affine else ():
                weights[f"{i}.{n}"] = given[f"{i}.{n}"]
            weights[f"{i}.running_mean"] = given[f"{i}.running_mean"]
            weights[f"{i}.running_var"] = given[f"{i}.running_var"]
        elif isinstance(layer, L.PReLU):
            weights[f"{i}.weight"] = given[f"{i}.weight"]
    model.set_weights(weights)


def _torch():
    try:
        import torch
    except ImportError:
        raise ImportError("PyTorch interop needs torch (pip install torch)") from None
    return torch


def to_torch(model: Sequential):
    """The equivalent ``torch.nn.Sequential`` with the model's weights (same dtype)."""
    torch = _torch()
    nn = torch.nn
    mods, width = [], model.input_dim
    for layer in model.layers:
        if isinstance(layer, L.Dense):
            mods.append(nn.Linear(width, layer.out_features, bias=layer.bias))
        elif isinstance(layer, L.BatchNorm):
            mods.append(nn.BatchNorm1d(width, eps=layer.eps, momentum=layer.momentum, affine=layer.affine))
        elif isinstance(layer, L.ReLU):
            mods.append(nn.ReLU())
        elif isinstance(layer, L.LeakyReLU):
            mods.append(nn.LeakyReLU(layer.negative_slope))
        elif isinstance(layer, L.PReLU):
            mods.append(nn.PReLU(layer.num_parameters, init=layer.init))
        elif isinstance(layer, L.ELU):
            mods.append(nn.ELU(layer.alpha))
        elif isinstance(layer, L.Tanh):
            mods.append(nn.Tanh())
        elif isinstance(layer, L.Sigmoid):
            mods.append(nn.Sigmoid())
        elif isinstance(layer, L.Dropout):
            mods.append(nn.Dropout(layer.p))
        else:
            raise TypeError(f"{type(layer).__name__} has no PyTorch equivalent")
        width = layer.output_size(width)
    seq = nn.Sequential(*mods).to(torch.float32 if model.dtype == np.float32 else torch.float64)
    sd = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in to_torch_state_dict(model).items()}
    seq.load_state_dict(sd)
    return seq


def from_torch(module, *, loss: Any = "softmax", dtype: Any = None, **kwargs: Any) -> Sequential:
    """A fastnn model equivalent to a ``torch.nn.Sequential`` of supported modules, with its weights."""
    torch = _torch()
    nn = torch.nn
    layers: list[L.Layer] = []
    input_dim = None
    for m in module:
        if isinstance(m, nn.Linear):
            input_dim = input_dim or m.in_features
            layers.append(L.Dense(m.in_features, m.out_features, bias=m.bias is not None))
        elif isinstance(m, nn.BatchNorm1d):
            layers.append(L.BatchNorm(m.num_features, eps=m.eps, momentum=m.momentum if m.momentum is not None else 0.1,
                                      affine=m.affine))
        elif isinstance(m, nn.ReLU):
            layers.append(L.ReLU())
        elif isinstance(m, nn.LeakyReLU):
            layers.append(L.LeakyReLU(m.negative_slope))
        elif isinstance(m, nn.PReLU):
            layers.append(L.PReLU(m.num_parameters))
        elif isinstance(m, nn.ELU):
            layers.append(L.ELU(m.alpha))
        elif isinstance(m, nn.Tanh):
            layers.append(L.Tanh())
        elif isinstance(m, nn.Sigmoid):
            layers.append(L.Sigmoid())
        elif isinstance(m, nn.Dropout):
            layers.append(L.Dropout(m.p))
        else:
            raise TypeError(f"{type(m).__name__} is not supported by fastnn")
    if input_dim is None:
        raise ValueError("from_torch needs a Linear layer to know the input size")
    p = next(module.parameters(), None)
    if dtype is None:
        dtype = np.float64 if p is not None and p.dtype == torch.float64 else np.float32
    model = Sequential(layers, input_dim=input_dim, loss=loss, dtype=dtype, **kwargs)
    model.load_torch_state_dict(module.state_dict())
    return model
