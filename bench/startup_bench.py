"""A scoring process as shell pipelines, cron jobs and xargs run it: start-up included, one core.

Run from the repository root (about two minutes):

    .venv/bin/python bench/startup_bench.py --data ../shared/data

Two figures, each against peers measured in the same run, every process pinned to one CPU (``taskset -c
--cpu``), each command run once to warm the page cache and the kernel caches, then ``--repeats`` times
(the median is reported), with the package's bytecode compiled as an install has it:

* **one line**: ``echo URL | smallworld score MODEL -`` (interpreter, imports, model load, one score, output);
  the peers load their model and score the same line in a fresh process: fastText (``fasttext-wheel``,
  ``load_model`` + ``predict``) and scikit-learn (``HashingVectorizer`` + ``LogisticRegression`` restored
  from joblib: the peer's own format).
* **1M URLs**: ``smallworld score MODEL FILE --out FILE`` on ``--items`` URLs (the urls dev and pool splits
  repeated), with the C bulk kernel (built with the package) and with the numba one
  (``SMALLWORLD_BULK=numba``); the peers read the same file and write a score per line: fastText
  (``predict`` on the list of lines) and scikit-learn (``decision_function`` in chunks of 100,000).

The smallworld model is a ``train --teacher none`` student on ``--train-rows`` urls rows (the task's
features: byte 1-5-grams and tokens, 2**18 buckets); the peers are trained on the same rows. Results go to
``bench/out/startup_bench.json``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SW = str(Path(PY).with_name("smallworld"))

FT_ONE = """import sys, fasttext
m = fasttext.load_model(sys.argv[1])
line = sys.stdin.readline().rstrip("\\n")
print(dict((lab, p) for p, lab in m.f.predict(line + "\\n", -1, 0.0, "strict")))  # (predict(str) fails on numpy 2)
"""
FT_FILE = """import sys, fasttext
m = fasttext.load_model(sys.argv[1])
lines = open(sys.argv[2], encoding="utf-8").read().split("\\n")[:-1]
labels, probs = m.predict(lines, k=1)  # the list form works on numpy 2 for k=1
with open(sys.argv[3], "w") as f:
    f.write("\\n".join(f"{l[0]} {p[0]:.6f}" for l, p in zip(labels, probs)) + "\\n")
"""
SK_ONE = """import sys, joblib
vec, clf = joblib.load(sys.argv[1])
line = sys.stdin.readline().rstrip("\\n")
print(clf.predict_proba(vec.transform([line]))[0].tolist())
"""
SK_FILE = """import sys, joblib
vec, clf = joblib.load(sys.argv[1])
lines = open(sys.argv[2], encoding="utf-8").read().split("\\n")[:-1]
with open(sys.argv[3], "w") as f:
    for a in range(0, len(lines), 100_000):
        s = clf.decision_function(vec.transform(lines[a:a + 100_000]))
        f.write("\\n".join(f"{x:.6f}" for x in s) + "\\n")
"""


def timed(cmd: list[str], cpu: int, repeats: int, stdin: bytes | None = None, env: dict | None = None) -> dict:
    cmd = ["taskset", "-c", str(cpu), *cmd]
    e = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # bytecode, as an install has
    e.update(env or {})
    subprocess.run(cmd, input=stdin, capture_output=True, check=True, env=e)  # warm
    walls = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, input=stdin, capture_output=True, check=True, env=e)
        walls.append(time.perf_counter() - t0)
    return {"median_s": round(statistics.median(walls), 4), "min_s": round(min(walls), 4), "runs": repeats}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--train-rows", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--cpu", type=int, default=0)
    a = ap.parse_args()
    d = Path(a.data) / "urls"
    rng = random.Random(0)
    train = [json.loads(x) for x in gzip.open(d / "train.jsonl.gz", "rt")]
    rng.shuffle(train)
    train = train[:a.train_rows]
    urls = [json.loads(x)["text"] for f in ("dev.jsonl.gz", "pool.jsonl.gz") for x in gzip.open(d / f, "rt")]
    urls = [u for u in urls if u.strip() and "\n" not in u and "\r" not in u]
    res: dict = {"items": a.items, "cpu": a.cpu}
    # the package's bytecode, as `pip install` of the wheel writes it (a checkout run with PYTHONDONTWRITEBYTECODE
    # set compiles every module from source in every process: 30 ms a start here)
    subprocess.run([PY, "-m", "compileall", "-q", str(ROOT / "smallworld")], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        (t / "seed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
        subprocess.run([SW, "train", "--task", "urls", "--labelled", str(t / "seed.jsonl"), "--teacher", "none",
                        "--out", str(t / "m")], check=True, capture_output=True)
        with open(t / "urls.txt", "w", encoding="utf-8") as f:
            for i in range(a.items):
                f.write(urls[i % len(urls)] + "\n")
        one = (urls[0] + "\n").encode()
        peers = _train_peers(train, t)
        res["one_line"] = {"smallworld": timed([SW, "score", str(t / "m"), "-"], a.cpu, a.repeats, one)}
        if "fasttext" in peers:
            res["one_line"]["fasttext"] = timed([PY, "-c", FT_ONE, peers["fasttext"]], a.cpu, a.repeats, one)
        res["one_line"]["sklearn"] = timed([PY, "-c", SK_ONE, peers["sklearn"]], a.cpu, a.repeats, one)
        res["one_line"]["python -c pass"] = timed([PY, "-c", "pass"], a.cpu, a.repeats)
        out = str(t / "out.txt")
        r = {"smallworld (C kernel)": timed([SW, "score", str(t / "m"), str(t / "urls.txt"), "--out", out], a.cpu,
                                            a.repeats, env={"SMALLWORLD_BULK": "c"}),
             "smallworld (numba kernel)": timed([SW, "score", str(t / "m"), str(t / "urls.txt"), "--out", out], a.cpu,
                                                a.repeats, env={"SMALLWORLD_BULK": "numba"})}
        if "fasttext" in peers:
            r["fasttext"] = timed([PY, "-c", FT_FILE, peers["fasttext"], str(t / "urls.txt"), out], a.cpu,
                                  max(1, a.repeats // 3))
        r["sklearn"] = timed([PY, "-c", SK_FILE, peers["sklearn"], str(t / "urls.txt"), out], a.cpu, 1)
        for v in r.values():
            v["items_per_s"] = round(a.items / v["median_s"])
        res["file"] = r
    base1 = res["one_line"]["smallworld"]["median_s"]
    res["one_line_ratios"] = {k: round(v["median_s"] / base1, 2) for k, v in res["one_line"].items()}
    baseF = res["file"]["smallworld (C kernel)"]["items_per_s"]
    res["file_ratios"] = {k: round(baseF / v["items_per_s"], 2) for k, v in res["file"].items()}
    print(json.dumps(res, indent=2))
    (ROOT / "bench" / "out").mkdir(parents=True, exist_ok=True)
    (ROOT / "bench" / "out" / "startup_bench.json").write_text(json.dumps(res, indent=2) + "\n")


def _train_peers(train: list[dict], t: Path) -> dict:
    """The peers trained on the same rows, saved in their own formats."""
    import joblib
    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.linear_model import LogisticRegression

    texts, labels = [r["text"] for r in train], [r["label"] for r in train]
    vec = HashingVectorizer(analyzer="char", ngram_range=(1, 5), n_features=2**18, alternate_sign=False)
    clf = LogisticRegression(max_iter=1000).fit(vec.transform(texts), labels)
    joblib.dump((vec, clf), t / "sk.joblib")
    out = {"sklearn": str(t / "sk.joblib")}
    try:
        import fasttext
    except ImportError:
        print("fasttext-wheel not installed (pip install -e '.[bench]'): no fastText rows", file=sys.stderr)
        return out
    (t / "ft.txt").write_text("".join(f"__label__{y} {x}\n" for x, y in zip(texts, labels)))
    m = fasttext.train_supervised(input=str(t / "ft.txt"), minn=2, maxn=5, wordNgrams=2, dim=16, epoch=10,
                                  bucket=2**18, thread=1, verbose=0)
    m.save_model(str(t / "ft.bin"))
    out["fasttext"] = str(t / "ft.bin")
    return out


if __name__ == "__main__":
    main()
