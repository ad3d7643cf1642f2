"""Checkpoints (safetensors, no pickle) and PyTorch state-dict interop.

A checkpoint is one safetensors file: the tensors (``param/<name>``, ``buffer/<name>``,
``optim/<i>/<name>`` for the optimizer's state, ``average/<name>`` for averaged weights) plus a JSON
document in the header metadata (key ``"fastnn"``) with the architecture, loss, dtype, counters
(step, Adam's t), optimizer, trainer state and history, preprocessing and CRC32 checksums of every
tensor; the metadata's own CRC32 sits beside it (key ``"fastnn_crc32"``, format 2), so a flipped
bit anywhere in the file is detected. Files are written atomically: a temporary file in the same
folder, fsync, rename, fsync of the folder — a crash mid-save leaves the previous file intact, and
the next save to the same path removes the temporary file a killed writer left behind.
Loading validates everything (a truncated, bit-flipped or foreign file, or one whose contents do
not describe a valid model, is a ``ValueError`` naming the file) and never executes code.

Saving and loading need the optional ``safetensors`` package (``pip install 'fastnn[io]'``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

import fastnn
from fastnn import layers as L
from fastnn._atomic import atomic_path
from fastnn.model import Sequential

__all__ = ["save", "load", "restore_into", "to_torch_state_dict", "load_torch_state_dict", "to_torch",
           "from_torch", "FORMAT_VERSION"]

# 2: the JSON metadata carries its own CRC32 (header key "fastnn_crc32"), so a flipped bit anywhere in
# the file is detected; 1 (no metadata checksum) is still read.
FORMAT_VERSION = 2
_READABLE_FORMATS = (1, 2)
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


def save(model: Sequential, path: str | Path, *, trainer_state: dict | None = None,
         history: Any = None, preprocessing: dict | None = None, extra: dict | None = None,
         include_optimizer: bool = True) -> Path:
    """Write ``model`` (and optionally optimizer, trainer state, history, preprocessing) to ``path``.

    The write is atomic: readers see either the previous file or the complete new one.

    Parameters
    ----------
    model : Sequential
    path : str or Path
        The file (its folder is created); ``.safetensors`` by convention.
    trainer_state : dict, optional
        :meth:`Trainer.state() <fastnn.trainer.Trainer.state>` (what resuming needs).
    history : History or dict, optional
        Stored as JSON (``History.to_dict()``).
    preprocessing : dict or transformer, optional
        Free-form metadata on how inputs were transformed (a transformer is stored with its
        ``to_dict()``), returned as ``model.checkpoint["preprocessing"]``. The model's own
        attached ``model.preprocessing`` is always saved with the model (arrays as tensors under
        ``prep/``) and re-attached by :func:`load`, so the loaded model predicts on raw inputs.
    extra : dict, optional
        Anything else JSON-serialisable.
    include_optimizer : bool
        Store the optimizer's state buffers (moments, velocities) and its hyperparameters.

    Returns
    -------
    Path
        The path written.

    Raises
    ------
    TypeError
        Metadata that is not JSON-serialisable.
    ImportError
        safetensors is not installed (``pip install 'fastnn[io]'``).
    OSError
        The file cannot be written (the previous file, if any, is left intact).
    """
    _safetensors()  # a checkpoint this installation could not read back is refused up front
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
    model_prep = getattr(model, "preprocessing", None)
    if model_prep is not None:
        if not hasattr(model_prep, "to_dict"):
            raise TypeError(f"the model's preprocessing ({type(model_prep).__name__}) cannot be saved: it has no "
                            "to_dict(); use fastnn.preprocessing transformers")
        try:
            d = model_prep.to_dict(arrays=True)  # fastnn's transformers: arrays become tensors
        except TypeError:
            d = model_prep.to_dict()
        model_prep = _arrays_out(d, tensors, "prep/model")
    if preprocessing is not None and hasattr(preprocessing, "to_dict"):
        preprocessing = preprocessing.to_dict()
    preprocessing = _arrays_out(preprocessing, tensors, "prep/meta")
    meta = {
        "format": FORMAT_VERSION, "fastnn_version": fastnn.__version__,
        "model": {**_model_meta(model), "preprocessing": model_prep},
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
    with atomic_path(path) as tmp:  # also removes the temporary files of writers killed mid-save
        _write_safetensors(tmp, tensors, {"fastnn": header, "fastnn_crc32": _text_crc(header)})
    return path


# numpy dtype -> safetensors dtype code (https://github.com/huggingface/safetensors#format)
_ST_DTYPES = {np.dtype(t): code for t, code in (
    (np.float64, "F64"), (np.float32, "F32"), (np.float16, "F16"), (np.int64, "I64"), (np.int32, "I32"),
    (np.int16, "I16"), (np.int8, "I8"), (np.uint64, "U64"), (np.uint32, "U32"), (np.uint16, "U16"),
    (np.uint8, "U8"), (np.bool_, "BOOL"))}


def _write_safetensors(path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """Write ``tensors`` and ``metadata`` to ``path`` in the safetensors format, streamed from the
    arrays (no copy of the data).

    ``safetensors.numpy.save_file`` would copy every tensor into bytes first, and it writes through
    an anonymous temporary file (``.tmpXXXXXX``) of its own, which a process killed mid-save leaves
    behind where nothing can tell which target or writer it belonged to; here the only temporary
    file is the one :func:`fastnn._atomic.atomic_path` names. The layout is safetensors': an 8-byte
    little-endian header length, the JSON header (padded with spaces so the data start 8-byte
    aligned), then the tensors back to back, largest item size first (each one aligned), C order.
    """
    header: dict[str, Any] = {"__metadata__": metadata}
    arrays, offset = [], 0
    for name in sorted(tensors, key=lambda k: (-tensors[k].dtype.itemsize, k)):
        a = np.ascontiguousarray(tensors[name])
        if a.dtype.byteorder == ">":  # safetensors is little-endian
            a = a.astype(a.dtype.newbyteorder("<"))
        code = _ST_DTYPES.get(a.dtype.newbyteorder("="))
        if code is None:
            raise TypeError(f"tensor {name!r} has dtype {a.dtype}, which a checkpoint cannot hold")
        header[name] = {"dtype": code, "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        arrays.append(a)
        offset += a.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for a in arrays:
            if a.size:
                f.write(a.reshape(-1).view(np.uint8))


def _text_crc(text: str) -> str:
    return f"{zlib.crc32(text.encode('utf-8')) & 0xFFFFFFFF:08x}"


@contextlib.contextmanager
def _invalid_checkpoint(path: str | Path) -> Iterator[None]:
    """Any error while rebuilding a model from (checksummed, hence deliberately written) metadata is
    a ValueError naming the file: a foreign or hand-made file never surfaces as a KeyError deep inside."""
    try:
        yield
    except ValueError as exc:
        if str(path) in str(exc):
            raise
        raise ValueError(f"{path}: not a valid fastnn checkpoint: {exc}") from None
    except (KeyError, TypeError, AttributeError, IndexError, OverflowError) as exc:
        raise ValueError(f"{path}: not a valid fastnn checkpoint ({type(exc).__name__}: {exc})") from None


def _arrays_out(obj: Any, tensors: dict[str, np.ndarray], prefix: str) -> Any:
    """``obj`` (dicts/lists of JSON values and arrays) with each array moved into ``tensors`` under
    a key from its path, replaced by ``{"__tensor__": key}``; 0-d arrays and NumPy scalars become
    Python numbers."""
    if isinstance(obj, np.ndarray):
        if obj.ndim == 0:
            return obj.item()
        tensors[prefix] = np.ascontiguousarray(obj)
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        return {k: _arrays_out(v, tensors, f"{prefix}/{k}") for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_arrays_out(v, tensors, f"{prefix}/{i}") for i, v in enumerate(obj)]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _arrays_in(obj: Any, tensors: dict[str, np.ndarray]) -> Any:
    """The inverse of :func:`_arrays_out`."""
    if isinstance(obj, dict):
        if set(obj) == {"__tensor__"}:
            return tensors[obj["__tensor__"]]
        return {k: _arrays_in(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_arrays_in(v, tensors) for v in obj]
    return obj


def _attach_preprocessing(model: Sequential, meta: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
    """Re-attach the model's saved preprocessing; restore the arrays of the free-form one."""
    d = meta.get("model", {}).get("preprocessing")
    if d is not None:
        from fastnn.preprocessing import from_dict

        model.preprocessing = from_dict(_arrays_in(d, tensors))
    meta["preprocessing"] = _arrays_in(meta.get("preprocessing"), tensors)


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
    text = raw_meta["fastnn"]
    crc = raw_meta.get("fastnn_crc32")
    if crc is not None and crc != _text_crc(text):
        raise ValueError(f"{path}: the fastnn metadata fails its checksum (the file is corrupted)")
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: the fastnn metadata is damaged ({exc})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: the fastnn metadata is damaged (not a JSON object)")
    fmt = meta.get("format")
    if type(fmt) is not int or fmt not in _READABLE_FORMATS:
        raise ValueError(f"{path}: unsupported fastnn checkpoint format {fmt!r}")
    if fmt >= 2 and crc is None:
        raise ValueError(f"{path}: the fastnn metadata has lost its checksum (the file is corrupted)")
    sums = meta.get("checksums", {})
    if not isinstance(sums, dict) or set(sums) != set(tensors):
        raise ValueError(f"{path}: the tensors do not match the checkpoint's index (damaged file)")
    for k, v in tensors.items():
        if _crc(v) != sums[k]:
            raise ValueError(f"{path}: tensor {k!r} fails its checksum (the file is corrupted)")
    return tensors, meta


def _build(meta: dict[str, Any]) -> Sequential:
    m = meta["model"]
    loss_d = dict(m["loss"])
    from fastnn import losses

    known = {c.__name__: c for c in (losses.SoftmaxCrossEntropy, losses.MulticlassSVM, losses.MSE)}
    loss_cls = known.get(loss_d.pop("class", None))
    if loss_cls is None:
        raise ValueError("checkpoint names an unknown loss")
    return Sequential([_layer_from_dict(d) for d in m["layers"]], input_dim=m["input_dim"], loss=loss_cls(**loss_d),
                      l2=m["l2"], l1=m["l1"], bias_init=m["bias_init"], init=m.get("init") or "auto",
                      seed=m["seed"], dtype=m["dtype"])


def _restore(model: Sequential, tensors: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    weights = {k[len("param/"):]: v for k, v in tensors.items() if k.startswith("param/")}
    weights.update({k[len("buffer/"):]: v for k, v in tensors.items() if k.startswith("buffer/")})
    for k, v in tensors.items():  # never a silent conversion of what the file holds
        if k.startswith("prep/"):  # preprocessing state keeps its own dtypes (float64, uint64 hashes)
            continue
        if v.dtype != model.dtype:
            raise ValueError(f"tensor {k!r} has dtype {v.dtype}, the model's dtype is {model.dtype}")
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

    Parameters
    ----------
    path : str or Path
        A file written by :func:`save` (or :meth:`Sequential.save <fastnn.model.Sequential.save>`,
        ``ModelCheckpoint``).

    Returns
    -------
    Sequential
        In the dtype it was saved in, with ``model.checkpoint`` (dict with keys ``history``,
        ``trainer``, ``preprocessing``, ``extra``, ``optimizer``).

    Raises
    ------
    FileNotFoundError
        No file.
    ValueError
        Truncated, corrupted (checksums) or foreign files, unsupported formats.
    """
    tensors, meta = _read(path)
    with _invalid_checkpoint(path):
        model = _build(meta)
        _restore(model, tensors, meta)
        _attach_preprocessing(model, meta, tensors)
    model.checkpoint = {k: meta.get(k) for k in ("history", "trainer", "preprocessing", "extra", "optimizer")}
    return model


def restore_into(model: Sequential, path: str | Path) -> dict[str, Any]:
    """Load a checkpoint's weights, optimizer state and counters into an existing model of the same
    architecture; returns the checkpoint's metadata.

    Parameters
    ----------
    model : Sequential
        Same layers, input size and dtype as the saved one.
    path : str or Path

    Returns
    -------
    dict
        The checkpoint's metadata (``model``, ``counters``, ``optimizer``, ``trainer``, ``history``,
        ``preprocessing``, ``extra``, ...).

    Raises
    ------
    ValueError
        A different architecture or dtype, or a damaged file.
    FileNotFoundError
        No file.
    """
    tensors, meta = _read(path)
    with _invalid_checkpoint(path):
        mine, theirs = _model_meta(model), meta["model"]
        for key in ("layers", "input_dim", "dtype"):
            if mine[key] != theirs[key]:
                raise ValueError(f"{path} holds a different model ({key} differs): {theirs[key]!r} vs {mine[key]!r}")
        _restore(model, tensors, meta)
        _attach_preprocessing(model, meta, tensors)
    return meta


# ----------------------------------------------------------------------------------------------
# PyTorch
# ----------------------------------------------------------------------------------------------
def to_torch_state_dict(model: Sequential) -> dict[str, np.ndarray]:
    """State-dict names and shapes of the equivalent ``torch.nn.Sequential`` (Dense weights as
    PyTorch's (out, in); batch norm with ``num_batches_tracked``).

    Needs no PyTorch: the values are NumPy arrays (copies) in the model's dtype.

    Parameters
    ----------
    model : Sequential

    Returns
    -------
    dict of str to ndarray
        ``"<i>.weight"`` (out, in) and ``"<i>.bias"`` (out,) per Dense; ``"<i>.weight"``,
        ``"<i>.bias"``, ``"<i>.running_mean"``, ``"<i>.running_var"`` (features,) and
        ``"<i>.num_batches_tracked"`` (int64 scalar, the model's step count) per batch norm;
        ``"<i>.weight"`` per PReLU.
    """
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
    """Load a ``torch.nn.Sequential`` state dict (tensors or arrays) into ``model``.

    Linear weights (out, in) are transposed into fastnn's (in, out); ``num_batches_tracked`` is
    optional and ignored.

    Parameters
    ----------
    model : Sequential
        Its layers must match the module's, index for index.
    state : dict of str to tensor or array

    Raises
    ------
    KeyError
        Missing or unexpected names (the message lists them).
    ValueError
        Wrong shapes or non-finite values.
    """
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
    """The equivalent ``torch.nn.Sequential`` with the model's weights (same dtype).

    Dense -> ``Linear``, BatchNorm -> ``BatchNorm1d`` (same ``eps`` and PyTorch-convention
    ``momentum``), Dropout -> ``Dropout`` (same ``p``), activations -> their modules. The module
    is returned in training mode (PyTorch's default); call ``.eval()`` to compare predictions.

    Parameters
    ----------
    model : Sequential

    Returns
    -------
    torch.nn.Sequential

    Raises
    ------
    ImportError
        PyTorch is not installed.
    TypeError
        A layer without a PyTorch equivalent (Maxout).
    """
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
    """A fastnn model equivalent to a ``torch.nn.Sequential`` of supported modules, with its weights.

    Supported modules: ``Linear``, ``BatchNorm1d``, ``ReLU``, ``LeakyReLU``, ``PReLU``, ``ELU``,
    ``Tanh``, ``Sigmoid``, ``Dropout``. The loss is not part of a torch module: pass it.

    Parameters
    ----------
    module : torch.nn.Sequential
        Its first ``Linear`` gives the input size.
    loss : str or Loss
        The fastnn loss to train with (default softmax cross-entropy).
    dtype : float32 or float64, optional
        Default: float64 if the module's parameters are, else float32.
    **kwargs
        Passed to :class:`~fastnn.model.Sequential` (``l2``, ``seed``, ...).

    Returns
    -------
    Sequential
        Predicting what ``module.eval()`` predicts.

    Raises
    ------
    ImportError
        PyTorch is not installed.
    TypeError
        An unsupported module.
    ValueError
        No ``Linear`` layer.
    """
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
