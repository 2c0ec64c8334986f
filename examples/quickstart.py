"""lucid in one page: the seed example, then define-then-run with a look inside.

Run: python examples/quickstart.py
"""
import numpy as np

import lucid
import lucid.nn as nn
from lucid import Tensor

# 1. The seed page's first example, as written (with the correct numbers).
input_tensor = Tensor([[[1.0, 2.0, 3.0],
                        [4.0, 5.0, 6.0]]], requires_grad=True)  # shape (1, 2, 3)
batch_norm = nn.BatchNorm1d(num_features=2)
output = batch_norm(input_tensor)
print(output)
output.backward(Tensor([[[1.0, 1.0, 1.0],
                         [1.0, 1.0, 1.0]]]))
print("input grad:", input_tensor.grad.tolist())  # exactly 0: see the README's errata
print("weight grad:", batch_norm.weight.grad, "bias grad:", batch_norm.bias.grad)
print("running_mean:", batch_norm.running_mean.data, "running_var:", batch_norm.running_var.data)

# 2. Define-then-run: a model, a symbolic input, a compiled train step.
model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
x = lucid.placeholder((None, 3), name="x")  # None: any batch size
step = lucid.compile(model, x, mode="train")
print("\ninputs of the train step:", step.user_inputs())
rng = np.random.default_rng(0)
result = step(rng.standard_normal((8, 3), dtype=np.float32),
              rng.standard_normal((8, 2), dtype=np.float32))
print("outputs:", sorted(result))
print("grad of the Linear weight:\n", result["grad:0.weight"])

# 3. What it computes: the graph, its derived gradient rules, the generated code.
graph = step.graph
print(f"\nthe train graph has {len(graph)} nodes; its listing starts:")
print("\n".join(str(graph).splitlines()[:14]))
print("\nderived gradient rules of a few nodes (d out / d input, from sympy):")
for node in [n for n in graph.nodes() if n.op in ("div", "rsqrt", "mul")][:4]:
    print(f"  {node.name} = {node.op}{node.inputs}: {node.rule}")
print("\nthe generated backward function:")
source = step.source
print(source[source.index("def backward"):])
