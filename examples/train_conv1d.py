"""Train Conv1d -> BatchNorm1d -> ReLU blocks on scikit-learn's digits, written as in PyTorch.

Run: pip install ".[examples]" && python examples/train_conv1d.py

Each 8x8 digit image is read as a sequence of length 8 with 8 channels (its
rows): ``x.reshape(N, 8, 8)``. Two ``Conv1d -> BatchNorm1d -> ReLU`` blocks
(kernel 3, 'same' padding), then ``Flatten`` and a ``Linear`` classifier,
trained with Adam on cross-entropy over int64 labels. Each epoch prints the
mean training loss, the test accuracy and the time it took. Only the imports
differ from the PyTorch script.
"""
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import lucid
import lucid.nn as nn
import lucid.nn.functional as F
from lucid import Tensor

lucid.manual_seed(0)
digits = load_digits()
x_train, x_test, y_train, y_test = train_test_split(
    digits.data.astype(np.float32).reshape(-1, 8, 8) / 16.0, digits.target.astype(np.int64),
    test_size=0.25, random_state=0, stratify=digits.target)

model = nn.Sequential(
    nn.Conv1d(8, 32, 3, padding=1), nn.BatchNorm1d(32), nn.ReLU(),
    nn.Conv1d(32, 32, 3, padding=1), nn.BatchNorm1d(32), nn.ReLU(),
    nn.Flatten(), nn.Linear(32 * 8, 10))
optimizer = lucid.optim.Adam(model.parameters(), lr=3e-3)
batch_size, epochs = 32, 10
rng = np.random.default_rng(0)

for epoch in range(1, epochs + 1):
    start = time.perf_counter()
    model.train()
    order = rng.permutation(len(x_train))
    losses = []
    for i in range(0, len(order) - 1, batch_size):
        batch = order[i:i + batch_size]
        if len(batch) < 2:  # BatchNorm needs two values per channel in train mode
            continue
        logits = model(Tensor(x_train[batch]))
        loss = F.cross_entropy(logits, Tensor(y_train[batch]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    with lucid.no_grad():
        predicted = model(Tensor(x_test)).argmax(1)
    accuracy = float((predicted.numpy() == y_test).mean())
    seconds = time.perf_counter() - start
    print(f"epoch {epoch:2d}  loss {np.mean(losses):.4f}  test accuracy {accuracy:.2%}  "
          f"{seconds:.2f} s")
