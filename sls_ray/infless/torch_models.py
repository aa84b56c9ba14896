"""Plain-torch modules built from the operator graphs of ``models.py`` (torchvision does not work here).

One ``OpModule`` per operator (what COP times) and one ``GraphModule`` per model (what COP's
prediction is checked against); parallel branches run one after another, as eager torch does.
"""
from __future__ import annotations

import torch
from torch import nn

from sls_ray.infless.models import ModelSpec, Node, Op, Seq


class OpModule(nn.Module):
    def __init__(self, op: Op) -> None:
        super().__init__()
        self.op = op
        k, p = op.kind, op.params
        if k == "conv":
            self.m = nn.Sequential(nn.Conv2d(p[0], p[1], p[2], p[3], p[2] // 2, groups=p[4], bias=False), nn.ReLU())
        elif k == "conv1d":
            self.m = nn.Sequential(nn.Conv1d(p[0], p[1], p[2]), nn.ReLU())
        elif k == "linear":
            self.m = nn.Linear(p[0], p[1])
        elif k == "lstm":
            self.m = nn.LSTM(p[0], p[1], batch_first=True)
        elif k == "embed":
            self.m = nn.Embedding(p[0], p[1])
        elif k == "pool":
            self.m = nn.MaxPool2d(p[0])
        else:
            self.m = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.op.kind
        if k == "lstm":                    # (B, D, T) -> last hidden state (B, H)
            return self.m(x.transpose(1, 2))[1][0][0]
        if k == "embed":                   # (B, T) token ids -> (B, D, T)
            return self.m(x).transpose(1, 2)
        if k == "gap":
            return x.mean(dim=(2, 3))
        if k == "tmax":
            return x.amax(dim=2)
        return self.m(x)


class GraphModule(nn.Module):
    """A plain-torch model built from a graph (eager: parallel branches run in turn)."""

    def __init__(self, node: Node) -> None:
        super().__init__()
        self.node = node
        if isinstance(node, Op):
            self.op = OpModule(node)
        else:
            kids = node.items if isinstance(node, Seq) else node.branches
            self.kids = nn.ModuleList([GraphModule(k) for k in kids])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.node, Op):
            return self.op(x)
        if isinstance(self.node, Seq):
            for k in self.kids:
                x = k(x)
            return x
        outs = [k(x) for k in self.kids]
        if self.node.merge == "add":
            return torch.stack(outs).sum(0)
        return torch.cat([o.flatten(1) for o in outs], dim=1)


def example_input(spec: ModelSpec, batch: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    if spec.tokens:
        return torch.randint(0, 10000, (batch,) + spec.input_shape, generator=g)
    return torch.randn((batch,) + spec.input_shape, generator=g)


def op_input(op: Op, shape: tuple[int, ...], batch: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    if op.kind == "embed":
        return torch.randint(0, op.params[0], (batch,) + shape, generator=g)
    return torch.randn((batch,) + shape, generator=g)
