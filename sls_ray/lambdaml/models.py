"""The models LambdaML trains, behind one flat-vector interface (LambdaML, SIGMOD 2021, §3-4).

LambdaML's communication moves flat float vectors (gradients or whole models) through a
storage channel, and its cost depends on their byte size.  So every model here exposes
the same few functions: ``get_flat`` / ``set_flat`` / ``grad_flat`` / ``nbytes`` plus
``loss_and_grad``, ``loss``, ``accuracy`` and ``flops_per_sample``, and the distributed
half of LambdaML never needs to know which model it is moving.

Two families:

* :class:`LinearModel` — logistic regression and linear SVM (hinge loss), numpy-only,
  on dense (Higgs) or ``scipy.sparse`` CSR (RCV1) features.  Weights are float64 with no
  bias, as in the paper: LR on Higgs is 28 float64 weights = 224 bytes (§5, Table 4).
  Labels are {0, 1}; the losses use the signed label s = 2y - 1.
* torch CNNs for 32x32x3 inputs and 10 classes: MobileNet v1 (width 1.0, ≈3.2M
  parameters ≈ 12.9 MB of float32, the paper's "12 MB") and ResNet-50 with bottleneck
  blocks [3, 4, 6, 3] (≈23.5M parameters ≈ 89.7 MiB, the paper's "89 MB").  Only the
  trainable parameters travel in the flat vector; BatchNorm running statistics stay local
  to each worker, as in LambdaML's PyTorch executors.

FLOP convention (what the simulator charges compute from): a multiply-add counts 2 FLOPs
and elementwise ops (activations, BatchNorm, the loss) are not counted — the same
convention as ``torch.utils.flop_counter.FlopCounterMode``, which measures the CNNs.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from scipy.special import expit
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

Features = npt.NDArray[np.floating] | sp.sparray | sp.spmatrix
Labels = npt.NDArray[np.integer]
FlatVector = npt.NDArray[np.floating]

CIFAR_INPUT_SHAPE: tuple[int, int, int] = (3, 32, 32)
EVAL_CHUNK_ROWS = 512  # bounds activation memory when evaluating a CNN on a whole shard


# --------------------------------------------------------------------------- linear models


@dataclass
class LinearModel:
    """A bias-free linear classifier: logistic regression (``"lr"``) or hinge-loss SVM (``"svm"``).

    Kept numpy-only because the linear models of the paper (LR/SVM on Higgs and RCV1)
    are a matrix-vector product each way; ``grad`` holds the last gradient computed by
    :func:`loss_and_grad`, mirroring ``param.grad`` of a torch module.
    """

    kind: Literal["lr", "svm"]
    weights: npt.NDArray[np.float64]
    grad: npt.NDArray[np.float64] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in ("lr", "svm"):
            raise ValueError(f"LinearModel.kind={self.kind!r}; allowed: 'lr', 'svm'")
        self.weights = np.ascontiguousarray(self.weights, dtype=np.float64).ravel()

    @property
    def n_features(self) -> int:
        return int(self.weights.size)


def logistic_regression(n_features: int = 28) -> LinearModel:
    """Logistic regression with zero-initialised float64 weights (28 for Higgs, 47,236 for RCV1)."""
    _check_positive("n_features", n_features)
    return LinearModel("lr", np.zeros(n_features, dtype=np.float64))


def linear_svm(n_features: int = 28) -> LinearModel:
    """Linear SVM with hinge loss and zero-initialised float64 weights."""
    _check_positive("n_features", n_features)
    return LinearModel("svm", np.zeros(n_features, dtype=np.float64))


def _margins(model: LinearModel, X: Features, y: Labels) -> tuple[np.ndarray, np.ndarray]:
    """Return (signed labels s in {-1, +1}, s * <w, x>) for each row."""
    if X.shape[1] != model.n_features:
        raise ValueError(f"X has {X.shape[1]} features; the model expects {model.n_features}")
    y = np.asarray(y).ravel()
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"y has {y.shape[0]} rows; X has {X.shape[0]}")
    s = 2.0 * y.astype(np.float64) - 1.0
    return s, s * np.asarray(X @ model.weights, dtype=np.float64).ravel()


def _linear_loss_and_grad(model: LinearModel, X: Features, y: Labels) -> tuple[float, np.ndarray]:
    s, z = _margins(model, X, y)
    n = z.size
    if model.kind == "lr":
        value = float(np.mean(np.logaddexp(0.0, -z)))
        coef = -s * expit(-z)  # d/dm log(1 + exp(-s m))
    else:
        value = float(np.mean(np.maximum(0.0, 1.0 - z)))
        coef = -s * (z < 1.0)  # a subgradient of the hinge: 0 at the kink
    grad = np.asarray(X.T @ coef, dtype=np.float64).ravel() / n
    return value, grad


# --------------------------------------------------------------------------- CNNs


class _DepthwiseSeparable(nn.Module):
    """MobileNet v1 block: 3x3 depthwise conv then 1x1 pointwise conv, each with BN + ReLU."""

    def __init__(self, in_planes: int, out_planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, in_planes, 3, stride, 1, groups=in_planes, bias=False)
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv2 = nn.Conv2d(in_planes, out_planes, 1, 1, 0, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(x)))


class MobileNetV1(nn.Module):
    """MobileNet v1 (width 1.0) adapted to 32x32 inputs, the CIFAR variant LambdaML trains.

    The stem is stride 1 (not 2) because the inputs are 32x32; with a 10-class head this
    has 3,217,226 parameters = 12.87 MB of float32, the paper's "≈12 MB" model.
    """

    # (output channels, stride) of the 13 depthwise-separable blocks
    CFG: tuple[tuple[int, int], ...] = (
        (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
        (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
    )

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.arch = ("mobilenet", num_classes)
        self.input_shape = CIFAR_INPUT_SHAPE
        self.conv1 = nn.Conv2d(3, 32, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        blocks, in_planes = [], 32
        for out_planes, stride in self.CFG:
            blocks.append(_DepthwiseSeparable(in_planes, out_planes, stride))
            in_planes = out_planes
        self.layers = nn.Sequential(*blocks)
        self.linear = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(F.relu(self.bn1(self.conv1(x))))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.linear(x)


class _Bottleneck(nn.Module):
    """ResNet bottleneck: 1x1 reduce, 3x3, 1x1 expand (x4), with a projection shortcut when needed."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        out = self.expansion * planes
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, out, 1, stride, bias=False), nn.BatchNorm2d(out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        h = F.relu(self.bn2(self.conv2(h)))
        h = self.bn3(self.conv3(h))
        return F.relu(h + self.shortcut(x))


class ResNet50(nn.Module):
    """ResNet-50 (bottleneck blocks [3, 4, 6, 3]) for 32x32 inputs, as in LambdaML's Cifar10 runs.

    A 3x3 stride-1 stem replaces the ImageNet 7x7/2 stem + max-pool because the inputs
    are 32x32; with a 10-class head this has 23,520,842 parameters = 89.7 MiB of float32,
    the paper's "≈89 MB" model.
    """

    BLOCKS: tuple[int, int, int, int] = (3, 4, 6, 3)

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.arch = ("resnet50", num_classes)
        self.input_shape = CIFAR_INPUT_SHAPE
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        stages, in_planes = [], 64
        for planes, n_blocks, stride in zip((64, 128, 256, 512), self.BLOCKS, (1, 2, 2, 2)):
            blocks = []
            for s in [stride] + [1] * (n_blocks - 1):
                blocks.append(_Bottleneck(in_planes, planes, s))
                in_planes = planes * _Bottleneck.expansion
            stages.append(nn.Sequential(*blocks))
        self.layers = nn.Sequential(*stages)
        self.linear = nn.Linear(512 * _Bottleneck.expansion, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(F.relu(self.bn1(self.conv1(x))))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.linear(x)


_INIT_LOCK = threading.Lock()


def _seeded_torch_model(cls: type[nn.Module], num_classes: int, seed: int) -> nn.Module:
    # One thread: each simulated worker is its own process and compute time is charged
    # from FLOPs, so intra-op threads only add nondeterminism and oversubscription.
    torch.set_num_threads(1)
    # torch's CPU generator is one per process: simulated functions are threads of one
    # process, so two building a model at once would interleave their draws.
    with _INIT_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(num_classes)


def mobilenet(num_classes: int = 10, seed: int = 0) -> MobileNetV1:
    """MobileNet v1 with parameters drawn deterministically from ``seed``."""
    return _seeded_torch_model(MobileNetV1, num_classes, seed)  # type: ignore[return-value]


def resnet50(num_classes: int = 10, seed: int = 0) -> ResNet50:
    """ResNet-50 with parameters drawn deterministically from ``seed``."""
    return _seeded_torch_model(ResNet50, num_classes, seed)  # type: ignore[return-value]


Model = LinearModel | nn.Module

# Explicit registry: a new model is one factory plus one line here.
MODELS: dict[str, Callable[..., Model]] = {
    "lr": logistic_regression,
    "svm": linear_svm,
    "mobilenet": mobilenet,
    "resnet50": resnet50,
}


def build_model(name: str, **kwargs: Any) -> Model:
    """Build a registered model by name; an unknown name fails with the known names."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; known models: {sorted(MODELS)}")
    return MODELS[name](**kwargs)


# --------------------------------------------------------------------------- flat interface


def num_params(model: Model) -> int:
    """Number of scalars in the flat vector."""
    if isinstance(model, LinearModel):
        return model.n_features
    return sum(p.numel() for p in model.parameters())


def nbytes(model: Model) -> int:
    """Bytes of the flat vector — what one gradient or model costs to communicate."""
    if isinstance(model, LinearModel):
        return int(model.weights.nbytes)
    return sum(p.numel() * p.element_size() for p in model.parameters())


def get_flat(model: Model) -> FlatVector:
    """A copy of the parameters as one 1-D vector (float64 for linear, float32 for CNNs)."""
    if isinstance(model, LinearModel):
        return model.weights.copy()
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy().copy()


def set_flat(model: Model, vec: npt.ArrayLike) -> None:
    """Overwrite the parameters from a flat vector produced by :func:`get_flat`."""
    vec = np.asarray(vec).ravel()
    expected = num_params(model)
    if vec.size != expected:
        raise ValueError(f"flat vector has {vec.size} values; the model has {expected}")
    if isinstance(model, LinearModel):
        model.weights = vec.astype(np.float64, copy=True)
        return
    src = torch.from_numpy(np.ascontiguousarray(vec, dtype=np.float32))
    offset = 0
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(src[offset : offset + p.numel()].view_as(p))
            offset += p.numel()


def add_flat(model: Model, vec: npt.ArrayLike, alpha: float) -> None:
    """``params += alpha * vec`` in place: the SGD step, without a round trip through numpy."""
    vec = np.asarray(vec).ravel()
    expected = num_params(model)
    if vec.size != expected:
        raise ValueError(f"flat vector has {vec.size} values; the model has {expected}")
    if isinstance(model, LinearModel):
        model.weights = model.weights + alpha * vec.astype(np.float64)
        return
    src = torch.from_numpy(np.ascontiguousarray(vec, dtype=np.float32))
    offset = 0
    with torch.no_grad():
        for p in model.parameters():
            p.add_(src[offset : offset + p.numel()].view_as(p), alpha=alpha)
            offset += p.numel()


def grad_flat(model: Model) -> FlatVector:
    """The gradient left by the last :func:`loss_and_grad`, flattened like :func:`get_flat`."""
    if isinstance(model, LinearModel):
        if model.grad is None:
            raise ValueError("no gradient yet: call loss_and_grad(model, X, y) first")
        return model.grad.copy()
    parts = [
        (p.grad if p.grad is not None else torch.zeros_like(p)).detach().reshape(-1)
        for p in model.parameters()
    ]
    return torch.cat(parts).numpy().copy()


# --------------------------------------------------------------------------- training math


def _as_images(model: nn.Module, X: Any) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(X, dtype=np.float32))
    if tuple(x.shape[1:]) != tuple(model.input_shape):
        raise ValueError(f"X rows have shape {tuple(x.shape[1:])}; the model expects {model.input_shape}")
    return x


def loss_and_grad(model: Model, X: Features, y: Labels) -> tuple[float, FlatVector]:
    """Mean training loss on (X, y) and its flat gradient; also leaves the gradient on the model.

    CNNs run in train mode (BatchNorm uses batch statistics and updates its running
    averages), as one LambdaML mini-batch step does.
    """
    if isinstance(model, LinearModel):
        value, grad = _linear_loss_and_grad(model, X, y)
        model.grad = grad
        return value, grad.copy()
    model.train()
    model.zero_grad(set_to_none=True)
    out = model(_as_images(model, X))
    value = F.cross_entropy(out, torch.as_tensor(np.asarray(y), dtype=torch.long))
    value.backward()
    return float(value.detach()), grad_flat(model)


def _cnn_logits(model: nn.Module, X: Any) -> torch.Tensor:
    model.eval()
    x = _as_images(model, X)
    with torch.no_grad():
        return torch.cat([model(x[i : i + EVAL_CHUNK_ROWS]) for i in range(0, len(x), EVAL_CHUNK_ROWS)])


def loss(model: Model, X: Features, y: Labels) -> float:
    """Mean loss on (X, y) without touching gradients (CNNs in eval mode, as LambdaML's test step)."""
    if isinstance(model, LinearModel):
        s, z = _margins(model, X, y)
        if model.kind == "lr":
            return float(np.mean(np.logaddexp(0.0, -z)))
        return float(np.mean(np.maximum(0.0, 1.0 - z)))
    logits = _cnn_logits(model, X)
    return float(F.cross_entropy(logits, torch.as_tensor(np.asarray(y), dtype=torch.long)))


def predict(model: Model, X: Features) -> Labels:
    """Predicted labels: {0, 1} for linear models (sign of <w, x>), argmax class for CNNs."""
    if isinstance(model, LinearModel):
        return (np.asarray(X @ model.weights).ravel() > 0).astype(np.int64)
    return _cnn_logits(model, X).argmax(dim=1).numpy().astype(np.int64)


def accuracy(model: Model, X: Features, y: Labels) -> float:
    """Fraction of rows whose predicted label equals y."""
    return float(np.mean(predict(model, X) == np.asarray(y).ravel()))


# --------------------------------------------------------------------------- FLOPs

_FLOPS_CACHE: dict[tuple[Any, ...], float] = {}


def flops_per_sample(model: Model, nnz_per_row: float | None = None) -> float:
    """Forward + backward FLOPs of one training sample (multiply-add = 2, elementwise ignored).

    Linear models are analytic: forward <w, x> is 2·nnz and the backward gradient
    accumulation ``grad += coef · x`` is another 2·nnz, where nnz is the number of stored
    features per row (``nnz_per_row``; defaults to all features, i.e. dense rows such as
    Higgs; pass the mean row nnz for RCV1).  CNNs are measured once per architecture with
    ``FlopCounterMode`` on a deep copy (so BatchNorm statistics and gradients of the
    caller's model are untouched) and cached.
    """
    if isinstance(model, LinearModel):
        nnz = float(model.n_features if nnz_per_row is None else nnz_per_row)
        if not 0 < nnz <= model.n_features:
            raise ValueError(f"nnz_per_row={nnz_per_row}; must be in (0, {model.n_features}]")
        return 4.0 * nnz
    key = getattr(model, "arch", None) or (type(model).__qualname__, repr(model))
    if key not in _FLOPS_CACHE:
        _FLOPS_CACHE[key] = _measure_cnn_flops(model)
    return _FLOPS_CACHE[key]


def _conv_backward_flops(
    grad_out_shape: Any, x_shape: Any, w_shape: Any, _bias: Any, _stride: Any, _padding: Any,
    _dilation: Any, transposed: bool, _output_padding: Any, _groups: int, output_mask: Any,
    out_shape: Any = None, **_: Any,
) -> int:
    """Conv backward FLOPs, correct for grouped (depthwise) convs.

    torch 2.13's built-in formula counts the weight gradient of a grouped conv as if it
    were dense (``groups`` times too many: 9.5x forward for MobileNet instead of ~2x).
    Each backward product has exactly the multiply-adds of the forward conv, which is
    what ``conv_flop_count`` on the forward shapes gives (it reads c_in/groups off w).
    """
    forward = conv_flop_count(list(x_shape), list(w_shape), list(grad_out_shape), transposed=transposed)
    return forward * int(bool(output_mask[0])) + forward * int(bool(output_mask[1]))


def _measure_cnn_flops(model: nn.Module) -> float:
    batch = 2  # BatchNorm in train mode needs more than one value per channel
    probe = copy.deepcopy(model)
    probe.train()
    x = torch.zeros((batch, *probe.input_shape), dtype=torch.float32)
    y = torch.zeros(batch, dtype=torch.long)
    counter = FlopCounterMode(
        display=False, custom_mapping={torch.ops.aten.convolution_backward: _conv_backward_flops}
    )
    with counter:
        F.cross_entropy(probe(x), y).backward()
    return counter.get_total_flops() / batch


def _check_positive(name: str, value: int) -> None:
    if value <= 0:
        raise ValueError(f"{name}={value}; must be a positive integer")
