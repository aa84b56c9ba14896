"""COP's profile table, graph-walk prediction and external rows; load patterns and the Azure
Functions 2019 trace format and shape."""
from __future__ import annotations

import pandas as pd
import pytest

from sls_ray.infless.cop import ProfileDB, accuracy
from sls_ray.infless.models import MODELS, flat_ops, signature
from sls_ray.infless.streams import PATTERNS, generate_azure, rate_series, read_azure, shape_stats, write_azure


def test_prediction_walks_the_graph_sum_on_cpu_max_over_branches_on_gpu():
    db = ProfileDB.load()
    ops, _ = flat_ops(MODELS["textcnn"].graph, MODELS["textcnn"].input_shape)
    times = [db.op_time(signature(op, shape), 4, 1, 0) for op, shape in ops]
    assert db.graph_time("textcnn", 4, 1, 0) == pytest.approx(sum(times))
    g = [db.op_time(signature(op, shape), 4, 1, 20) for op, shape in ops]
    # embed, then three parallel (conv1d, tmax) branches, then linear: max over the branches
    branches = [g[1] + g[2], g[3] + g[4], g[5] + g[6]]
    assert db.graph_time("textcnn", 4, 1, 20) == pytest.approx(g[0] + max(branches) + g[7])


def test_an_external_row_overrides_the_scaling_model():
    db = ProfileDB.load()
    sig = signature(*flat_ops(MODELS["lstm"].graph, MODELS["lstm"].input_shape)[0][1])
    extra = pd.DataFrame([{"kind": "op", "name": sig, "batch": 8, "threads": 1, "gpu_pct": 30, "seconds": 0.123}])
    db2 = ProfileDB(pd.concat([db.table, extra], ignore_index=True))
    assert db2.op_time(sig, 8, 1, 30) == 0.123
    assert db.op_time(sig, 8, 1, 30) != 0.123


def test_a_table_without_calibration_is_refused():
    with pytest.raises(ValueError, match="calibration"):
        ProfileDB(ProfileDB.load().table.query("kind != 'calibration'"))


def test_accuracy_rows_cover_every_model_and_batch_and_more_threads_or_gpu_is_faster():
    db = ProfileDB.load()
    acc = accuracy(db)
    assert set(acc.model) == set(MODELS) and len(acc) == 5 * 6
    assert (acc.predicted_margin_s == acc.predicted_s * 1.1).all()
    for m in MODELS:
        assert db.exec_time(m, 8, 16, 0) < db.exec_time(m, 8, 1, 0)
        assert db.exec_time(m, 8, 2, 50) < db.exec_time(m, 8, 2, 10)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_patterns_have_the_requested_mean(pattern):
    r = rate_series(pattern, 250.0, 600, 3)
    assert r.mean() == pytest.approx(250.0) and (r >= 0).all()


def test_azure_files_round_trip_and_the_generator_has_the_published_shape(tmp_path):
    counts, triggers = generate_azure(1000, 1, 0)
    write_azure(tmp_path / "d01.csv", counts, triggers)
    ids, back = read_azure([tmp_path / "d01.csv"])
    assert (back == counts).all() and list(ids.Trigger) == triggers
    s = shape_stats(counts)
    assert abs(s["share_at_most_hourly"] - 0.45) < 0.05          # ATC'20: 45%
    assert abs(s["share_at_most_per_minute"] - 0.81) < 0.05      # ATC'20: 81%
    assert s["top_18.6pct_invocation_share"] > 0.98              # ATC'20: 99.6%


def test_a_file_in_another_format_is_refused(tmp_path):
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "x.csv", index=False)
    with pytest.raises(ValueError, match="Azure Functions 2019"):
        read_azure([tmp_path / "x.csv"])


def test_host_profiling_writes_a_table_prediction_can_use(tmp_path):
    """Real torch timing (values vary by host; only the table's shape and use are asserted)."""
    from sls_ray.infless.cop import profile_host

    table = profile_host(["textcnn"], batches=(1, 2), reps=1)
    assert set(table.kind) == {"calibration", "op", "model"}
    assert (table.seconds > 0).all()
    assert len(table[table.kind == "model"]) == 2
    db = ProfileDB(table)
    assert db.graph_time("textcnn", 2) > 0 and db.exec_time("textcnn", 4, 2, 10) > 0   # b=4 extrapolated
