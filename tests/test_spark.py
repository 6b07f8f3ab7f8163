"""Spark: ``smallworld.spark.score_dataframe`` in local mode on 2,000 real command lines from Parquet gives the
scores and decisions of ``smallworld score`` on the same file."""

from __future__ import annotations

import json
import os
import shutil
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import cli
from smallworld import data as D
from smallworld.errors import ModelFileError, SmallworldError
from smallworld.student import modelfile
from smallworld.student.linear import LinearStudent
from smallworld.tasks import load_task

pytest.importorskip("pyspark", reason="the spark extra installs pyspark")
if shutil.which("java") is None:
    pytest.skip("Spark needs Java 17+ (java not found)", allow_module_level=True)

from smallworld.spark import score_dataframe  # noqa: E402


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable  # the workers use this venv
    s = (SparkSession.builder.master("local[2]").appName("smallworld-test")
         .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
         .config("spark.driver.memory", "1g").config("spark.sql.execution.arrow.maxRecordsPerBatch", "300")
         .config("spark.ui.showConsoleProgress", "false").getOrCreate())
    s.sparkContext.setLogLevel("ERROR")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def model_and_rows(data_dir, tmp_path_factory):
    rng = np.random.default_rng(0)
    train = D.read_rows(data_dir / "cmdlines" / "train.jsonl.gz")
    train = [train[i] for i in rng.choice(len(train), 2000, replace=False)]
    task = load_task("cmdlines")
    Y = np.array([[r["label"] == lab for lab in task.labels] for r in train], dtype=float)
    m = LinearStudent(task.labels, {"dim_bits": 16}).fit([task.normalise(r["text"]) for r in train], Y)
    d = tmp_path_factory.mktemp("spark") / "model"
    modelfile.save(m, d, meta={"task": task.to_dict(), "thresholds": {"best_guess": 0.3, "high_confidence": 0.8}})
    rows = D.read_rows(data_dir / "cmdlines" / "telemetry.jsonl.gz")
    dev = D.read_rows(data_dir / "cmdlines" / "dev.jsonl.gz")
    rows += [dev[i] for i in rng.choice(len(dev), 2000 - len(rows), replace=False)]
    return d, rows


def test_scores_equal_the_cli_on_parquet(spark, model_and_rows, tmp_path):
    model_dir, rows = model_and_rows
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"id": [r["id"] for r in rows] + ["null-text"],
                             "text": [r["text"] for r in rows] + [None],
                             "source": [r.get("source", "") for r in rows] + ["x"]}), path)
    df = spark.read.parquet(str(path)).repartition(3)
    out = score_dataframe(df, model_dir, decision_col="decision", mode="high_confidence")
    assert out.columns == ["id", "text", "source", "score", "decision"]
    got = {r["id"]: r for r in out.select("id", "source", "score", "decision").collect()}
    assert len(got) == len(rows) + 1
    assert got["null-text"]["score"] is None and got["null-text"]["decision"] is None

    r = cli("score", model_dir, path, "--mode", "high_confidence", "--on-error", "skip")
    ref = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(ref) == len(rows) == 2000
    diff = max(abs(got[x["id"]]["score"] - x["score"]) for x in ref)
    assert diff <= 1e-6, diff  # the CLI rounds to 6 decimals
    assert [got[x["id"]]["decision"] for x in ref] == [x["decision"] for x in ref]
    assert len({x["decision"] for x in ref}) == 2  # both labels occur: the threshold matters
    assert got[rows[0]["id"]]["source"] == rows[0].get("source", "")

    # default columns and mode, on a DataFrame built in memory
    small = spark.createDataFrame([(r["text"],) for r in rows[:50]], "text string")
    s = [x["score"] for x in score_dataframe(small, model_dir).collect()]
    want = {x["id"]: x["score"] for x in ref}
    assert np.allclose(s, [want[r["id"]] for r in rows[:50]], atol=1e-6)


def test_clear_errors_on_the_driver(spark, model_and_rows, tmp_path):
    model_dir, _ = model_and_rows
    df = spark.createDataFrame([("a", 1)], "text string, n int")
    with pytest.raises(SmallworldError, match="no column 'body'"):
        score_dataframe(df, model_dir, text_col="body")
    with pytest.raises(SmallworldError, match="int, not string"):
        score_dataframe(df, model_dir, text_col="n")
    with pytest.raises(SmallworldError, match="must be new"):
        score_dataframe(df, model_dir, out_col="n")
    with pytest.raises(SmallworldError, match="mode"):
        score_dataframe(df, model_dir, mode="loose")
    with pytest.raises(ModelFileError, match="not a smallworld model directory"):
        score_dataframe(df, tmp_path)


def test_a_char_cnn_model_scores_on_spark(spark, data_dir, tmp_path):
    """A char-CNN model folder (model.json + model.onnx, no weights.bin) ships to the workers and scores as the
    Model scores (it once read weights.bin for every family)."""
    pytest.importorskip("torch", reason="the cnn extra trains the char CNN")
    from smallworld.student import cnn
    from smallworld.student.model import Model

    task = load_task("cmdlines")
    tr = D.read_rows(data_dir / "cmdlines" / "train.jsonl.gz")[:300]
    Y = np.array([[r["label"] == lab for lab in task.labels] for r in tr], dtype=float)
    d = tmp_path / "cnn"
    modelfile.save(cnn.CNNStudent(task.labels, epochs=2, seed=0).fit([r["text"] for r in tr], Y), d,
                   {"task": task.to_dict(), "thresholds": {"best_guess": 0.5, "high_confidence": 0.9}})
    assert not (d / "weights.bin").exists()
    texts = [r["text"] for r in D.read_rows(data_dir / "cmdlines" / "dev.jsonl.gz")[:400]]
    df = spark.createDataFrame([(t,) for t in texts], "text string")
    got = [r["score"] for r in score_dataframe(df, d).collect()]
    np.testing.assert_allclose(got, Model(d).scores(texts), rtol=1e-6, atol=1e-7)
