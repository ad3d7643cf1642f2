"""Move weights between fastnn and PyTorch, and the conventions that differ (needs torch).

    python examples/torch_interop.py            # needs: pip install torch (the 'torch' extra)

1. train in fastnn, export to a ``torch.nn.Sequential`` (``model.to_torch()``), predictions agree;
2. a PyTorch model's weights into fastnn (``fastnn.io.from_torch``), and a state dict into an
   existing model (``model.load_torch_state_dict``);
3. the conventions: Dense weight layout, dropout's p, batch-norm momentum, label smoothing.
"""

from __future__ import annotations

import argparse

import fastnn
import fastnn.io
import numpy as np
import torch
from fastnn import datasets, losses, optim
from fastnn.preprocessing import StandardScaler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="2 epochs: a smoke test")
    args = parser.parse_args()
    torch.manual_seed(0)

    X, y = datasets.load_digits()
    X_train, y_train = datasets.train_val_test_split(X, y, seed=0)["train"]
    X_train = StandardScaler().fit(X_train).transform(X_train).astype(np.float32)

    # 1. fastnn -> PyTorch
    model = fastnn.MLP(64, [128], 10, batchnorm=True, dropout=0.2, seed=0)
    model.fit(X_train, y_train, optimizer=optim.Adam(lr=3e-3), epochs=2 if args.small else 20)
    net = model.to_torch().eval()                       # Linear, BatchNorm1d, ReLU, Dropout, Linear
    with torch.no_grad():
        torch_proba = torch.softmax(net(torch.from_numpy(X_train)), dim=1).numpy()
    diff = np.abs(torch_proba - model.predict_proba(X_train)).max()
    print(f"exported: {net}\nmax |p_torch - p_fastnn| = {diff:.1e}")
    assert diff < 1e-5

    # 2. PyTorch -> fastnn
    tnet = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(), torch.nn.Linear(32, 10))
    back = fastnn.io.from_torch(tnet, loss="softmax")   # float32 like the module; pass l2=, seed=, ...
    with torch.no_grad():
        expected = tnet(torch.from_numpy(X_train)).numpy()
    print(f"imported: {[type(layer).__name__ for layer in back.layers]}, "
          f"max |scores difference| = {np.abs(back.forward(X_train) - expected).max():.1e}")
    same_shape = fastnn.Sequential([fastnn.Dense(64, 32), fastnn.Tanh(), fastnn.Dense(32, 10)], seed=1)
    same_shape.load_torch_state_dict(tnet.state_dict())  # into an existing model
    assert np.array_equal(same_shape.params["0.weight"], tnet[0].weight.detach().numpy().T)

    # 3. conventions
    print("fastnn Dense weight", model.params["0.weight"].shape, "= torch Linear weight transposed",
          tuple(net[0].weight.shape))
    print("fastnn Dropout(p) and torch Dropout(p): p is the probability of DROPPING a unit:",
          model.layers[3].p, net[3].p)
    print("fastnn BatchNorm(momentum) and torch BatchNorm1d(momentum): running = (1 - m) running + m batch:",
          model.layers[1].momentum, net[1].momentum)
    C, e = 10, 0.1
    print(f"torch CrossEntropyLoss(label_smoothing={e}) = fastnn "
          f"{losses.SoftmaxCrossEntropy(label_smoothing=e * (C - 1) / C)}")


if __name__ == "__main__":
    main()
