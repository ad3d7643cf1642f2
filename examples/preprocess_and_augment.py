"""Preprocessing and data augmentation on scikit-learn's digits, as images: the script behind two
chapters of the user guide (docs/guide/preprocessing.rst and docs/guide/augmentation.rst).

    python examples/preprocess_and_augment.py              # the full run (a few seconds)
    python examples/preprocess_and_augment.py --small      # tiny settings (the test suite runs this)
    python examples/preprocess_and_augment.py --out DIR    # keep the printed outputs and figures in DIR

Each step of those chapters quotes the code between a ``# [name]`` and a ``# [/name]`` marker below
and shows what it printed (``DIR/name.txt``) and drew (``DIR/*.png``); the docs build runs this
script to produce them.
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import fastnn
import numpy as np
from _guide_output import guide_sections  # examples/_guide_output.py

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--small", action="store_true", help="a few epochs: a smoke test")
parser.add_argument("--out", help="folder for the printed outputs, figures and checkpoints (default: a temporary one)")
args = parser.parse_args()
OUT = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="fastnn-prep-"))
OUT.mkdir(parents=True, exist_ok=True)
EPOCHS = 3 if args.small else 10        # the preprocessing comparison
AUG_EPOCHS = 4 if args.small else 60    # the augmentation runs
fastnn.set_num_threads(1)  # results are identical for any thread count; digits is too small to need more


sections = guide_sections(OUT)  # what each step prints also goes to OUT/<step>.txt (for the guide)


def _figure(width: float, height: float):
    """A matplotlib figure without pyplot's global state (the Agg canvas draws it)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _mosaic(images: np.ndarray, cols: int) -> np.ndarray:
    """Images (n, h, w) tiled ``cols`` wide with a one-pixel NaN border (drawn blank)."""
    n, h, w = images.shape
    rows = -(-n // cols)
    canvas = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), np.nan)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        canvas[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = img
    return canvas


# =============================================================================================
# Preprocessing
# =============================================================================================
sections.start("split")
# [split]
from fastnn import datasets

X, y = datasets.load_digits(images=True)           # (1797, 8, 8, 1): images, channels last, values 0..16
splits = datasets.train_val_test_split(X, y, val=0.2, test=0.2, seed=0)   # stratified, shuffled
(X_train, y_train), (X_val, y_val), (X_test, y_test) = splits["train"], splits["val"], splits["test"]
print(f"train {X_train.shape}, val {X_val.shape}, test {X_test.shape}, pixel values {X.min():g}..{X.max():g}")
# [/split]

sections.start("mean")
# [mean]
from fastnn.preprocessing import MeanSubtraction

for mode in ("feature", "channel", "global"):
    centre = MeanSubtraction(mode).fit(X_train)    # statistics of the training split only
    Z = centre.transform(X_val)                    # the same numbers subtracted from every split
    print(f"{mode:>7}: mean_ of shape {str(centre.mean_.shape):5}  output {Z.shape}  "
          f"val mean {Z.mean():+.3f}  (train mean {centre.transform(X_train).mean():+.1e})")
# [/mean]

sections.start("scale")
# [scale]
from fastnn.preprocessing import MinMaxScaler, StandardScaler

flat_train, flat_val = X_train.reshape(len(X_train), -1), X_val.reshape(len(X_val), -1)
scaler = StandardScaler().fit(flat_train)          # per feature: (x - mean_) / scale_
Z = scaler.transform(flat_val)
print(f"standardised: train std per feature {scaler.transform(flat_train).std(axis=0).max():.3f} (max), "
      f"val mean {Z.mean():+.3f}, val std {Z.std():.3f}")
print(f"constant features (always-blank pixels) kept finite: {int(np.sum(scaler.var_ == 0))} with scale_ = 1")

to_pm1 = MinMaxScaler().fit(flat_train)            # feature_range=(-1, 1) by default
Z = to_pm1.transform(flat_val)
print(f"[-1, 1] scaling: train range [{to_pm1.transform(flat_train).min():g}, "
      f"{to_pm1.transform(flat_train).max():g}], val range [{Z.min():g}, {Z.max():g}]")
clipped = MinMaxScaler(clip=True).fit(flat_train).transform(flat_val)
print(f"with clip=True: val range [{clipped.min():g}, {clipped.max():g}]")
# [/scale]

sections.start("pca")
# [pca]
from fastnn.preprocessing import PCA

pca = PCA(n_components=0.95).fit(flat_train)       # the fewest components keeping 95 % of the variance
print(f"{pca.n_components_} of {pca.n_features_in_} components keep "
      f"{pca.explained_variance_ratio_.sum():.1%} of the variance; the first five: "
      + " ".join(f"{r:.1%}" for r in pca.explained_variance_ratio_[:5]))

white = PCA(n_components=0.95, whiten=True).fit(flat_train)
Z = white.transform(flat_train)                    # (N, 28): decorrelated, unit variance
cov = np.cov(Z, rowvar=False)
print(f"whitened training data {Z.shape}: covariance diagonal {cov.diagonal().min():.4f}..{cov.diagonal().max():.4f}, "
      f"largest off-diagonal |c| {np.abs(cov - np.diag(cov.diagonal())).max():.1e}")
back = pca.inverse_transform(pca.transform(flat_val))
print(f"reconstruction of the val images from {pca.n_components_} components: "
      f"RMS error {np.sqrt(np.mean((back - flat_val) ** 2)):.2f} (pixel values 0..16)")
# [/pca]

fig = _figure(9.0, 3.4)
full = PCA().fit(flat_train)
ax1, ax2 = fig.subplots(1, 2, width_ratios=[1.3, 1])
ax1.plot(np.arange(1, full.n_components_ + 1), np.cumsum(full.explained_variance_ratio_), marker=".")
ax1.axhline(0.95, color="gray", lw=0.8, ls="--")
ax1.axvline(pca.n_components_, color="gray", lw=0.8, ls="--")
ax1.set(xlabel="components", ylabel="fraction of the variance", title="PCA of the training digits")
comps = full.components_[:16].reshape(16, 8, 8)
lim = np.abs(comps).max()
ax2.imshow(_mosaic(comps, 4), cmap="RdBu_r", vmin=-lim, vmax=lim)
ax2.set_title("the first 16 components, as 8x8 images")
ax2.axis("off")
fig.savefig(OUT / "pca.png", dpi=100)

sections.start("compare")
# [compare]
from fastnn import optim

candidates = {                                     # a fresh, unfitted transformer per run
    "none (raw 0..16)": lambda: None,
    "mean, per feature": lambda: MeanSubtraction("feature"),
    "mean, per channel": lambda: MeanSubtraction("channel"),
    "standardise": StandardScaler,
    "[-1, 1]": MinMaxScaler,
    "PCA 95 %, whitened": lambda: PCA(0.95, whiten=True).fit(flat_train),   # fitted first: it sets the width
}
rates = (0.003, 0.03, 0.1, 0.3)
print(f"val accuracy after {EPOCHS} epochs of SGD + momentum 0.9, by learning rate:")
print(f"{'preprocessing':>20}  " + "  ".join(f"{f'lr {lr:g}':>8}" for lr in rates))
for name, make in candidates.items():
    row = []
    for lr in rates:
        prep = make()
        width = prep.n_components_ if isinstance(prep, PCA) else 64
        model = fastnn.MLP(width, [128], 10, seed=0, preprocessing=prep)   # fit() fits prep on X_train
        try:
            model.fit(X_train, y_train, epochs=EPOCHS, optimizer=optim.SGD(lr=lr, momentum=0.9))
            row.append(f"{model.score(X_val, y_val):8.3f}")
        except fastnn.NonFiniteLossError:
            row.append(f"{'diverged':>8}")
    print(f"{name:>20}  " + "  ".join(row))
# [/compare]

sections.start("leak")
# [leak]
from fastnn.preprocessing import LeakageWarning, check_leakage

leaky = StandardScaler().fit(X.reshape(len(X), -1))      # WRONG: fitted on all the data, val and test included
print("val rows the scaler was fitted on:", check_leakage(leaky, X_val, "validation", warn=False))
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", LeakageWarning)
    model = fastnn.MLP(64, [128], 10, seed=0, preprocessing=leaky)
    model.fit(X_train, y_train, epochs=1, validation_data=(X_val, y_val))
for w in caught:
    print(f"{w.category.__name__}: {w.message}")
right = StandardScaler().fit(X_train.reshape(len(X_train), -1))  # right: the training split only
print("after refitting on the training split:", check_leakage(right, X_val, "validation"))
# [/leak]

sections.start("attach")
# [attach]
from fastnn.preprocessing import Chain

model = fastnn.MLP(64, [128], 10, batchnorm=True, seed=0,
                   preprocessing=[MeanSubtraction("channel"), StandardScaler()])   # a list becomes a Chain
model.fit(X_train, y_train, epochs=2 * EPOCHS, optimizer=optim.Adam(lr=3e-3),
          validation_data=(X_val, y_val))         # fits the preprocessing on X_train, then trains
print(model.preprocessing, "fitted on", model.preprocessing.steps[0].n_samples_seen_, "rows")
print("predict on raw images:", model.predict(X_test[:8]), "labels:", y_test[:8])

model.save(OUT / "digits.safetensors")                 # the fitted preprocessing goes into the checkpoint
loaded = fastnn.load(OUT / "digits.safetensors")
assert isinstance(loaded.preprocessing, Chain)
same = np.array_equal(loaded.predict_proba(X_test), model.predict_proba(X_test))
print(f"loaded: {loaded.preprocessing}; test accuracy {loaded.score(X_test, y_test):.3f}; "
      f"identical probabilities: {same}")
# [/attach]

# =============================================================================================
# Augmentation
# =============================================================================================
sections.start("augment")
# [augment]
from fastnn.augment import Augment

aug = Augment(crop_padding=1, contrast=0.3, noise_std=1.0, seed=0)   # for images (N, H, W, C)
print(aug)
batch = aug(X_train[:6], step=0)                      # what one training step sees: a new draw per step
print("batch", batch.shape, batch.dtype, "| draws at step 0:",
      {k: v.round(2).tolist() for k, v in aug.draws(3, step=0).items() if k in ("dy", "dx", "factor")})
assert np.array_equal(batch, aug(X_train[:6], step=0))    # same (seed, step): same batch, any thread count
# [/augment]

views = [X_train[:6, ..., 0]] + [aug(X_train[:6], step=s)[..., 0] for s in range(7)]
fig = _figure(6.4, 5.2)
ax = fig.subplots()
ax.imshow(_mosaic(np.stack(views, axis=1).reshape(-1, 8, 8), 8), cmap="gray_r", vmin=0, vmax=16)
ax.set_title("six training digits (left) and seven augmented copies of each")
ax.axis("off")
fig.savefig(OUT / "augmented.png", dpi=100)

sections.start("train_aug")
# [train_aug]
from fastnn import schedules

shifted_val = Augment(crop_padding=1, seed=123)(X_val)   # the val digits moved by up to a pixel each way


def train(augment, preprocessing):
    model = fastnn.MLP(64, [256], 10, batchnorm=True, dropout=0.2, seed=0, preprocessing=preprocessing)
    model.fit(X_train, y_train, epochs=AUG_EPOCHS, optimizer=optim.Adam(lr=schedules.cosine(3e-3, AUG_EPOCHS)),
              validation_data=(X_val, y_val), augment=augment)
    return model


runs = {
    "no augmentation": train(None, MeanSubtraction("channel")),
    "shifts": train(Augment(crop_padding=1), MeanSubtraction("channel")),
    "shifts + contrast + noise": train(Augment(crop_padding=1, contrast=0.3, noise_std=1.0),
                                       MeanSubtraction("channel")),
    "shifts, per-pixel scaler": train(Augment(crop_padding=1), StandardScaler()),
}
print(f"{AUG_EPOCHS} epochs, Adam + cosine; accuracy on the val digits as they are / shifted by up to 1 pixel:")
for name, model in runs.items():
    print(f"{name:>26}: {model.score(X_val, y_val):.3f} / {model.score(shifted_val, y_val):.3f}")
# [/train_aug]

sections.start("tta")
# [tta]
from fastnn.augment import tta_predict

for name in ("no augmentation", "shifts"):
    model = runs[name]
    plain = np.mean(model.predict(X_val) == y_val)
    tta = np.mean(tta_predict(model, X_val, flips=False, crops=1) == y_val)   # centre + 4 corner shifts
    print(f"{name:>16}: val accuracy {plain:.3f}, with test-time augmentation {tta:.3f}")
# [/tta]

sections.start("done")
print(f"outputs in {OUT}")
