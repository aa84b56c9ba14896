"""The five INFless models (ResNet-50, MobileNet, SSD, LSTM, TextCNN) as operator graphs.

INFless §4.2 (COP) predicts a model's latency from its operators, so a model here *is* its
operator graph: ``Seq`` (a chain: latencies add) and ``Par`` (branches from one input: on a
GPU they overlap, latency is the slowest branch; in eager torch on a CPU they run one after
another). The same graph builds a plain-torch ``nn.Module`` (torchvision does not work here),
so measured and predicted latency come from one definition (``torch_models.py`` builds the
torch modules; this module stays torch-free so planning never pays torch's import). Inputs are small (64x64 images,
32-token texts) so profiling takes seconds; ``paper_flops_scale`` says how much bigger the
paper's inputs are (224x224 / 64x64 = 12.25 for the CNNs), and the serving experiments scale
operator times by it (compute is linear in pixels for convolutions).
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Op:
    """One operator: kind and parameters; ``sig`` (with the input shape) keys the profile database."""

    kind: str            # conv, conv1d, linear, lstm, embed, pool, gap, tmax, relu
    params: tuple[int, ...] = ()


@dataclass(frozen=True)
class Seq:
    items: tuple["Node", ...]


@dataclass(frozen=True)
class Par:
    branches: tuple["Node", ...]
    merge: str = "add"   # add (residual) or flatcat (detector heads, TextCNN filters)


Node = Op | Seq | Par


def out_shape(op: Op, shape: tuple[int, ...]) -> tuple[int, ...]:
    k = op.kind
    if k == "conv":
        cin, cout, ks, stride, groups = op.params
        _, h, w = shape
        pad = ks // 2
        return (cout, (h + 2 * pad - ks) // stride + 1, (w + 2 * pad - ks) // stride + 1)
    if k == "conv1d":
        cin, cout, ks = op.params
        return (cout, shape[1] - ks + 1)
    if k == "linear":
        return (op.params[1],)
    if k == "lstm":
        return (op.params[1],)
    if k == "embed":
        return (op.params[1], shape[0])
    if k == "pool":
        c, h, w = shape
        return (c, h // op.params[0], w // op.params[0])
    if k in ("gap", "tmax"):
        return (shape[0],)
    raise ValueError(f"operator kind {k!r} unknown; known: conv conv1d linear lstm embed pool gap tmax")


def signature(op: Op, shape: tuple[int, ...]) -> str:
    return f"{op.kind}:{','.join(map(str, op.params))}@{'x'.join(map(str, shape))}"


def flat_ops(node: Node, shape: tuple[int, ...]) -> tuple[list[tuple[Op, tuple[int, ...]]], tuple[int, ...]]:
    """Every operator with its input shape, in execution order, and the graph's output shape."""
    if isinstance(node, Op):
        return [(node, shape)], out_shape(node, shape)
    if isinstance(node, Seq):
        ops: list = []
        for k in node.items:
            sub, shape = flat_ops(k, shape)
            ops += sub
        return ops, shape
    ops, outs = [], []
    for b in node.branches:
        sub, o = flat_ops(b, shape)
        ops += sub
        outs.append(o)
    if node.merge == "add":
        return ops, outs[0]
    return ops, (sum(math.prod(o) for o in outs),)


# ---------------------------------------------------------------------------- the five models
def conv(cin: int, cout: int, k: int = 3, s: int = 1, g: int = 1) -> Op:
    return Op("conv", (cin, cout, k, s, g))


def _bottleneck(cin: int, width: int, stride: int) -> Par:
    cout = width * 4
    main = Seq((conv(cin, width, 1), conv(width, width, 3, stride), conv(width, cout, 1)))
    short: Node = conv(cin, cout, 1, stride) if (stride != 1 or cin != cout) else Seq(())
    return Par((main, short), "add")


def resnet50() -> Seq:
    items: list[Node] = [conv(3, 64, 7, 2), Op("pool", (2,))]
    cin = 64
    for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for i in range(blocks):
            items.append(_bottleneck(cin, width, stride if i == 0 else 1))
            cin = width * 4
    return Seq(tuple(items) + (Op("gap"), Op("linear", (2048, 1000))))


def mobilenet() -> Seq:
    items: list[Node] = [conv(3, 32, 3, 2)]
    cin = 32
    for cout, s in ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1),
                    (512, 1), (512, 1), (1024, 2), (1024, 1)):
        items += [conv(cin, cin, 3, s, cin), conv(cin, cout, 1)]
        cin = cout
    return Seq(tuple(items) + (Op("gap"), Op("linear", (1024, 1000))))


def ssd() -> Seq:
    """SSD-like: a VGG-style backbone and class/box heads on three feature maps (21 classes, 4 anchors)."""
    def heads(c: int) -> tuple[Node, Node]:
        return conv(c, 4 * 21, 3), conv(c, 4 * 4, 3)
    deep = Seq((conv(512, 256, 3, 2), Par(heads(256), "flatcat")))
    mid = Seq((conv(256, 512, 3, 2), Par(heads(512) + (deep,), "flatcat")))
    backbone = (conv(3, 32, 3, 2), conv(32, 64, 3), conv(64, 128, 3, 2), conv(128, 128, 3), conv(128, 256, 3, 2),
                conv(256, 256, 3))
    return Seq(backbone + (Par(heads(256) + (mid,), "flatcat"),))


def lstm() -> Seq:
    return Seq((Op("embed", (10000, 128)), Op("lstm", (128, 256)), Op("linear", (256, 2))))


def textcnn() -> Seq:
    filters = tuple(Seq((Op("conv1d", (128, 100, k)), Op("tmax"))) for k in (3, 4, 5))
    return Seq((Op("embed", (10000, 128)), Par(filters, "flatcat"), Op("linear", (300, 2))))


@dataclass(frozen=True)
class ModelSpec:
    name: str
    graph: Node
    input_shape: tuple[int, ...]
    tokens: bool                 # integer token ids instead of float pixels
    paper_flops_scale: float     # paper input FLOPs / profiled input FLOPs [est]: (224/64)^2 for CNNs


MODELS: dict[str, ModelSpec] = {
    "resnet50": ModelSpec("resnet50", resnet50(), (3, 64, 64), False, (224 / 64) ** 2),
    "mobilenet": ModelSpec("mobilenet", mobilenet(), (3, 64, 64), False, (224 / 64) ** 2),
    "ssd": ModelSpec("ssd", ssd(), (3, 96, 96), False, (300 / 96) ** 2),
    "lstm": ModelSpec("lstm", lstm(), (32,), True, 4.0),       # paper sequences ~128 tokens [est]
    "textcnn": ModelSpec("textcnn", textcnn(), (32,), True, 4.0),
}
