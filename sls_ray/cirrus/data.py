"""Cirrus's datasets and the workflow's data side: synthetic Criteo and Netflix, libsvm, hashing.

Criteo (45M rows, 13 integer + 26 categorical columns, ~25% positives) and Netflix (480,189
users x 17,770 items, ~100M ratings) are not reachable offline (cirrus.md, "Datasets"), so
both are generated from a seed with the same shape, sparsity and skew and a learnable signal:

- **Criteo-shaped**: integer columns are log-normal counts; each categorical column draws its
  values from a Zipf law over its own cardinality; a hidden logistic model over log-counts
  and category effects labels the rows, its intercept solved for the 25% positive rate.
- **Netflix-shaped**: user and item activity follow Zipf laws; ratings come from a hidden
  rank-10 model with user and item biases around the global mean, clipped to 1..5.

**Scale.** The datasets are scaled down in *rows* (hundreds of thousands instead of 45M /
100M), never in the shape of a row: an object still holds the paper's ~50,000 rows of 39
columns plus a bias, so every object's bytes, every minibatch's bytes and every sparse
update's compute are charged at the paper's scale; only the number of objects is smaller.

Rows are kept as fixed-width sparse blocks (``SparseRows``): ``idx`` (n, d) int32 feature
indices, ``val`` (n, d) float32 values and ``y`` (n,) labels, which is exactly libsvm with the
same number of entries per row (Criteo after Cirrus's hashing has one entry per column).
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CRITEO_INT_COLUMNS = 13
CRITEO_CAT_COLUMNS = 26
CRITEO_COLUMNS = CRITEO_INT_COLUMNS + CRITEO_CAT_COLUMNS
CRITEO_POSITIVE_RATE = 0.25       # [paper] ~25% clicks
MODEL_BITS = 19                    # [src] Cirrus hashes Criteo into 2^19 buckets
OBJECT_ROWS = 50_000               # [src] load_libsvm splits into ~50,000-row objects
WORLD_SEED = 20191120              # fixes the hidden models (SoCC'19, November 20)


@dataclass
class SparseRows:
    """Fixed-width sparse rows (libsvm with d entries per row) and their labels."""

    idx: np.ndarray  # (n, d) int32
    val: np.ndarray  # (n, d) float32
    y: np.ndarray    # (n,) float32: 0/1 for LR, the rating for MF

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def nbytes(self) -> int:
        return int(self.idx.nbytes + self.val.nbytes + self.y.nbytes)

    def rows(self, lo: int, hi: int) -> SparseRows:
        return SparseRows(self.idx[lo:hi], self.val[lo:hi], self.y[lo:hi])

    def take(self, order: np.ndarray) -> SparseRows:
        return SparseRows(self.idx[order], self.val[order], self.y[order])

    def copy(self) -> SparseRows:
        return SparseRows(self.idx.copy(), self.val.copy(), self.y.copy())


def concat(parts: list[SparseRows]) -> SparseRows:
    return SparseRows(np.concatenate([p.idx for p in parts]), np.concatenate([p.val for p in parts]),
                      np.concatenate([p.y for p in parts]))


# ---------------------------------------------------------------- feature hashing
def hash_features(column: np.ndarray, value: np.ndarray, bits: int) -> np.ndarray:
    """Bucket of each (column, value) pair in 2^bits (splitmix64 mix of both, vectorised).

    Cirrus hashes every Criteo column into the 2^19-bucket model; integer columns hash the
    column alone (their value is the count), categorical ones the (column, category) pair.
    """
    if not 1 <= bits <= 31:
        raise ValueError(f"hash bits must be in 1..31, got {bits}")
    with np.errstate(over="ignore"):
        z = (np.asarray(column, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
             + np.asarray(value, dtype=np.uint64) + np.uint64(0x632BE59BD9B4E019))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z & np.uint64((1 << bits) - 1)).astype(np.int32)


# ---------------------------------------------------------------- Criteo-shaped LR data
@dataclass
class CriteoRaw:
    """Raw Criteo-shaped columns before hashing: integer counts and category ids."""

    ints: np.ndarray   # (n, 13) float32 counts
    cats: np.ndarray   # (n, 26) int64 category ids
    y: np.ndarray      # (n,) float32 labels


def _zipf_draw(rng: np.random.Generator, n: int, cardinality: int, s: float) -> np.ndarray:
    """n draws from a Zipf law with exponent s over `cardinality` values (rank 0 most frequent)."""
    p = 1.0 / np.arange(1, cardinality + 1, dtype=np.float64) ** s
    return rng.choice(cardinality, size=n, p=p / p.sum())


def criteo_raw(rows: int, seed: int = 0, scale_signal: float = 1.0) -> CriteoRaw:
    """`rows` Criteo-shaped rows; the hidden model is fixed by WORLD_SEED, the rows by `seed`."""
    world = np.random.default_rng([WORLD_SEED, 1])
    cards = np.exp(world.uniform(np.log(8), np.log(20_000), size=CRITEO_CAT_COLUMNS)).astype(int)
    zipf_s = world.uniform(1.05, 1.4, size=CRITEO_CAT_COLUMNS)
    mu = world.uniform(0.0, 3.0, size=CRITEO_INT_COLUMNS)
    w_int = world.normal(0.0, 0.35, size=CRITEO_INT_COLUMNS) * scale_signal
    effects = [world.normal(0.0, 0.8, size=c) * scale_signal for c in cards]
    rng = np.random.default_rng([WORLD_SEED, 2, seed])
    ints = np.floor(rng.lognormal(mu, 1.0, size=(rows, CRITEO_INT_COLUMNS))).astype(np.float32)
    cats = np.empty((rows, CRITEO_CAT_COLUMNS), dtype=np.int64)
    logit = np.log1p(ints) @ w_int
    for j, c in enumerate(cards):
        cats[:, j] = _zipf_draw(rng, rows, int(c), float(zipf_s[j]))
        logit += effects[j][cats[:, j]]
    bias = _solve_intercept(logit, CRITEO_POSITIVE_RATE)
    y = (rng.random(rows) < 1.0 / (1.0 + np.exp(-(logit + bias)))).astype(np.float32)
    return CriteoRaw(ints, cats, y)


def _solve_intercept(logit: np.ndarray, rate: float) -> float:
    lo, hi = -30.0, 30.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if np.mean(1.0 / (1.0 + np.exp(-(logit + mid)))) < rate:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def featurize_criteo(raw: CriteoRaw, bits: int = MODEL_BITS) -> SparseRows:
    """Cirrus's Criteo featurisation: every column hashed into 2^bits, values are counts, a bias.

    Integer column j -> bucket hash(j) with its (log) count; categorical column j with value v
    -> bucket hash(13 + j, v) with value 1; the last entry is the bias bucket with value 1.
    """
    n = len(raw.y)
    idx = np.empty((n, CRITEO_COLUMNS + 1), dtype=np.int32)
    val = np.empty((n, CRITEO_COLUMNS + 1), dtype=np.float32)
    for j in range(CRITEO_INT_COLUMNS):
        idx[:, j] = hash_features(np.full(1, j), np.zeros(1), bits)[0]
        val[:, j] = np.log1p(raw.ints[:, j])
    for j in range(CRITEO_CAT_COLUMNS):
        idx[:, CRITEO_INT_COLUMNS + j] = hash_features(np.full(n, CRITEO_INT_COLUMNS + j), raw.cats[:, j] + 1, bits)
        val[:, CRITEO_INT_COLUMNS + j] = 1.0
    idx[:, -1] = hash_features(np.full(1, CRITEO_COLUMNS), np.zeros(1), bits)[0]
    val[:, -1] = 1.0
    return SparseRows(idx, val, raw.y.astype(np.float32))


def criteo(rows: int, seed: int = 0, bits: int = MODEL_BITS) -> SparseRows:
    return featurize_criteo(criteo_raw(rows, seed), bits)


# ---------------------------------------------------------------- Netflix-shaped MF data
NETFLIX_USERS, NETFLIX_ITEMS, NETFLIX_RATINGS = 480_189, 17_770, 100_480_507  # [paper]
MF_FACTORS = 10  # [src] Cirrus's Netflix model: 10 factors with biases


@dataclass
class Ratings:
    """(user, item, rating) triples, sorted by user (Cirrus partitions users across workers)."""

    user: np.ndarray    # (n,) int32
    item: np.ndarray    # (n,) int32
    rating: np.ndarray  # (n,) float32
    n_users: int
    n_items: int

    def __len__(self) -> int:
        return int(self.rating.shape[0])

    def subset(self, mask: np.ndarray) -> Ratings:
        return Ratings(self.user[mask], self.item[mask], self.rating[mask], self.n_users, self.n_items)


def netflix(n_users: int, n_items: int, n_ratings: int, seed: int = 0) -> Ratings:
    """Netflix-shaped ratings: Zipf-skewed user and item activity, a hidden rank-10 model."""
    world = np.random.default_rng([WORLD_SEED, 3, n_users, n_items])
    U = world.normal(0, 0.45, size=(n_users, MF_FACTORS))
    V = world.normal(0, 0.45, size=(n_items, MF_FACTORS))
    bu = world.normal(0, 0.4, size=n_users)
    bi = world.normal(0, 0.5, size=n_items)
    rng = np.random.default_rng([WORLD_SEED, 4, seed])
    users = _zipf_draw(rng, n_ratings, n_users, 0.8)
    items = _zipf_draw(rng, n_ratings, n_items, 1.0)
    pairs = np.unique(users.astype(np.int64) * n_items + items)
    users, items = (pairs // n_items).astype(np.int32), (pairs % n_items).astype(np.int32)
    r = 3.6 + bu[users] + bi[items] + np.einsum("ij,ij->i", U[users], V[items]) + rng.normal(0, 0.5, users.size)
    return Ratings(users, items, np.clip(np.round(r), 1, 5).astype(np.float32), n_users, n_items)


def split_ratings(r: Ratings, test_fraction: float, seed: int = 0) -> tuple[Ratings, Ratings]:
    mask = np.random.default_rng([WORLD_SEED, 5, seed]).random(len(r)) < test_fraction
    return r.subset(~mask), r.subset(mask)


def ratings_rows(r: Ratings) -> SparseRows:
    """Ratings as 2-entry sparse rows (user, n_users + item), the rating as the label."""
    idx = np.stack([r.user, r.item + r.n_users], axis=1).astype(np.int32)
    return SparseRows(idx, np.ones_like(idx, dtype=np.float32), r.rating.astype(np.float32))


# ---------------------------------------------------------------- libsvm and objects
def write_libsvm(rows: SparseRows, path: str | Path) -> None:
    """Write rows as libsvm text: ``label idx:val ...`` (indices as stored)."""
    with open(path, "w") as f:
        f.writelines(f"{rows.y[i]:g} " + " ".join(f"{a}:{b:g}" for a, b in zip(rows.idx[i], rows.val[i])) + "\n"
                     for i in range(len(rows)))


def read_libsvm(path_or_text: str | Path) -> SparseRows:
    """Parse libsvm text with the same number of entries on every row (Cirrus's hashed rows)."""
    text = Path(path_or_text).read_text() if isinstance(path_or_text, Path) else str(path_or_text)
    labels: list[float] = []
    idx: list[list[int]] = []
    val: list[list[float]] = []
    for k, line in enumerate(io.StringIO(text)):
        parts = line.split()
        if not parts:
            continue
        labels.append(float(parts[0]))
        pairs = [p.split(":") for p in parts[1:]]
        if idx and len(pairs) != len(idx[0]):
            raise ValueError(f"libsvm line {k + 1}: {len(pairs)} entries, expected {len(idx[0])} like the first row")
        idx.append([int(a) for a, _ in pairs])
        val.append([float(b) for _, b in pairs])
    return SparseRows(
        np.asarray(idx, dtype=np.int32), np.asarray(val, dtype=np.float32), np.asarray(labels, dtype=np.float32)
    )


def to_objects(rows: SparseRows, rows_per_object: int = OBJECT_ROWS) -> list[SparseRows]:
    """Split rows into consecutive objects of `rows_per_object` (the last may be shorter)."""
    if rows_per_object < 1:
        raise ValueError(f"rows_per_object must be >= 1, got {rows_per_object}")
    return [rows.rows(lo, min(lo + rows_per_object, len(rows))).copy() for lo in range(0, len(rows), rows_per_object)]


def object_key(prefix: str, i: int) -> str:
    return f"{prefix}/{i:05d}"


def load_libsvm(
    source: SparseRows | str | Path, s3_prefix: str, rows_per_object: int = OBJECT_ROWS
) -> dict[str, SparseRows]:
    """Cirrus's ``load_libsvm``: a dataset split into ~50,000-row objects, keyed for the S3 stand-in.

    Returns {key: object}; an experiment's ``preload`` puts them on S3 before t = 0 (the
    upload from the user's machine is not part of the paper's timings).
    """
    rows = source if isinstance(source, SparseRows) else read_libsvm(Path(source))
    return {object_key(s3_prefix, i): obj for i, obj in enumerate(to_objects(rows, rows_per_object))}
