"""Train an MLP with BatchNorm1d and Dropout on scikit-learn's digits with a compiled step.

Run: pip install ".[examples]" && python examples/train_digits.py

The 8x8 digit images (1797 of them, 10 classes) are split 75/25; the model is
64-128-BN-ReLU-Dropout-64-BN-ReLU-10, trained with Adam on cross-entropy over
int64 labels. The model, loss and optimizer are written as in PyTorch; the
training step (forward, loss, backward, running statistics, Adam's update) is
compiled once into one program with ``lucid.compile(..., optimizer=optimizer)``,
which takes a batch, returns the loss and updates the model and the optimizer
in place. Each epoch prints the mean training loss, the test accuracy and the
time it took. ``print(train_step.source)`` shows the generated code.
"""
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import lucid
import lucid.nn as nn
import lucid.nn.functional as F
from lucid import Tensor
from lucid.data import DataLoader, TensorDataset

lucid.manual_seed(0)
digits = load_digits()
x_train, x_test, y_train, y_test = train_test_split(
    digits.data.astype(np.float32) / 16.0, digits.target.astype(np.int64),
    test_size=0.25, random_state=0, stratify=digits.target)

model = nn.Sequential(
    nn.Linear(64, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Dropout(0.1),
    nn.Linear(128, 64), nn.BatchNorm1d(64), nn.ReLU(),
    nn.Linear(64, 10))
optimizer = lucid.optim.Adam(model.parameters(), lr=3e-3)
epochs = 12
scheduler = lucid.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
# drop_last: BatchNorm needs two values per channel in train mode, and a last batch of one
# would not have them
loader = DataLoader(TensorDataset(Tensor(x_train), Tensor(y_train)), batch_size=32,
                    shuffle=True, drop_last=True)

# the whole step as one program: the eager loop it replaces is
#     optimizer.zero_grad(); loss = F.cross_entropy(model(x), y); loss.backward(); optimizer.step()
x = lucid.placeholder((None, 64), name="x")
y = lucid.placeholder((None,), "int64", name="y")
train_step = lucid.compile(lambda xb, yb: F.cross_entropy(model(xb), yb), x, y,
                           optimizer=optimizer)

for epoch in range(1, epochs + 1):
    start = time.perf_counter()
    losses = []
    for xb, yb in loader:
        losses.append(train_step(xb, yb).item())
    scheduler.step()  # the next epoch's learning rate: read by the program, no recompile
    model.eval()
    with lucid.no_grad():
        predicted = model(Tensor(x_test)).argmax(1)
    model.train()
    accuracy = float((predicted.numpy() == y_test).mean())
    seconds = time.perf_counter() - start
    print(f"epoch {epoch:2d}  loss {np.mean(losses):.4f}  test accuracy {accuracy:.2%}  "
          f"{seconds:.2f} s")
