"""Links lent from labelled URLs to copies of the mail seed (`train --lend-links`, synth.lend_links)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from smallworld import data as D
from smallworld.errors import SmallworldError
from smallworld.pipeline import TrainConfig, fit_distilled, onehot, stratified_sample
from smallworld.synth import LENT_SOURCE, lend_links
from smallworld.tasks import load_task
from tests.conftest import cli


@pytest.fixture(scope="module")
def mail_seed(data_dir):
    return stratified_sample(list(D.iter_rows(data_dir / "emails" / "train.jsonl.gz")), 300, 0)


@pytest.fixture(scope="module")
def url_rows(data_dir):
    return list(D.iter_rows(data_dir / "urls" / "train.jsonl.gz"))


def test_each_row_gets_a_link_of_its_side_and_keeps_label_and_group(mail_seed, url_rows):
    phish = {u["text"] for u in url_rows if u["label"] == "phishing"}
    benign = {u["text"] for u in url_rows if u["label"] != "phishing"}
    lent = lend_links(mail_seed, url_rows, "phishing", copies=2, seed=3)
    assert len(lent) == 2 * len(mail_seed) and len({r["id"] for r in lent}) == len(lent)
    by_id = {r["id"]: r for r in mail_seed}
    for r in lent:
        src = by_id[r["id"].rsplit("~", 1)[0]]
        assert r["label"] == src["label"] and r["group"] == (src.get("group") or src["id"])
        assert r["source"] == LENT_SOURCE and r["text"].startswith(src["text"].rstrip())
        url = r["text"].rstrip().rsplit("\n", 1)[-1]
        assert url in (phish if r["label"] == "phishing" else benign)
    assert lend_links(mail_seed, url_rows, "phishing", seed=3) != lend_links(mail_seed, url_rows, "phishing", seed=4)


def test_rows_that_are_not_one_url_are_not_lent_and_one_side_missing_is_refused(mail_seed):
    urls = [{"text": "http://paypal.com.account-check.top/login", "label": "phishing"},
            {"text": "two words", "label": "benign"}, {"text": "", "label": "benign"},
            {"text": "https://" + "a" * 3000 + ".com/", "label": "benign"}]
    with pytest.raises(SmallworldError, match="labelled 'phishing' and rows with another label"):
        lend_links(mail_seed, urls, "phishing")
    lent = lend_links(mail_seed[:5], urls + [{"text": "https://www.bbc.co.uk/news", "label": "benign"}], "phishing")
    assert {r["text"].rstrip().rsplit("\n", 1)[-1] for r in lent} <= {"http://paypal.com.account-check.top/login",
                                                                      "https://www.bbc.co.uk/news"}


def test_lent_links_teach_the_student_what_a_link_host_says(mail_seed, url_rows, data_dir):
    """Each legitimate dev mail with a dev phishing URL appended against the same mail with a dev benign URL (dev
    URLs: other hosts than the lent ones): the seed alone does not tell them apart; lent links must."""
    task = load_task("emails")
    cfg = TrainConfig(task="emails", labelled="-", out="-")
    dev_urls = list(D.iter_rows(data_dir / "urls" / "dev.jsonl.gz"))
    rng = np.random.default_rng(0)
    ph = [u["text"] for u in dev_urls if u["label"] == "phishing"]
    bn = [u["text"] for u in dev_urls if u["label"] == "benign"]
    ham = [r["text"] for r in D.iter_rows(data_dir / "emails" / "dev.jsonl.gz") if r["label"] == "ham"][:200]
    with_ph = [task.view(f"{t}\n\n{ph[rng.integers(len(ph))]}\n") for t in ham]
    with_bn = [task.view(f"{t}\n\n{bn[rng.integers(len(bn))]}\n") for t in ham]

    def gap(rows):
        m = fit_distilled(task, cfg, [task.view(r) for r in rows], onehot(task, [r["label"] for r in rows]),
                          np.ones(len(rows)), [], np.zeros((0, 3)), np.zeros(0))
        d = m.decision_function(with_ph)[:, 0] - m.decision_function(with_bn)[:, 0]
        return float((d > 0).mean())  # the share of mails whose phishing-link copy scores above its benign one

    plain, lent = gap(mail_seed), gap(mail_seed + lend_links(mail_seed, url_rows, "phishing"))
    assert lent > 0.6 and lent > plain + 0.15, (plain, lent)  # measured: 0.41 -> 0.68


def test_train_lend_links_records_the_lent_rows_and_the_file(tmp_path, data_dir):
    urls = tmp_path / "urls.jsonl"
    D.write_jsonl(urls, [r for i, r in enumerate(D.iter_rows(data_dir / "urls" / "train.jsonl.gz")) if i % 50 == 0])
    out = tmp_path / "m"
    cli("train", "--task", "emails", "--labelled", data_dir / "emails" / "train.jsonl.gz", "--seed-size", "200",
        "--teacher", "none", "--lend-links", urls, "--out", out)
    man = json.loads((out / "manifest.json").read_text())
    assert man["counts"]["lent_links"] == 200 and man["counts"]["synthetic"] == 200
    assert str(urls) in man["inputs"] and man["config"]["lend_links"] == str(urls)
    assert json.loads((out / "model.json").read_text())["trained_on"]["lent_link_rows"] == 200
    bad = tmp_path / "bad.jsonl"
    D.write_jsonl(bad, [{"id": "a", "text": "https://www.bbc.co.uk/", "label": "benign"}])
    r = cli("train", "--task", "emails", "--labelled", data_dir / "emails" / "train.jsonl.gz", "--seed-size", "50",
            "--teacher", "none", "--lend-links", bad, "--out", tmp_path / "m2", check=False)
    assert r.returncode != 0 and "labelled 'phishing'" in (r.stderr + r.stdout)


def test_a_run_config_lends_links_from_a_path_beside_it(tmp_path, data_dir):
    D.write_jsonl(tmp_path / "urls.jsonl",
                  [r for i, r in enumerate(D.iter_rows(data_dir / "urls" / "train.jsonl.gz")) if i % 100 == 0])
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'task = "emails"\n[data]\nlabelled = "{data_dir / "emails" / "train.jsonl.gz"}"\nseed_size = 80\n'
                   'lend_links = "urls.jsonl"\n[teacher]\nurl = "none"\n[report]\nenabled = false\n')
    rd = tmp_path / "run"
    cli("run", cfg, "--out", rd)
    st = json.loads((rd / "run.json").read_text())
    assert st["inputs"][str(tmp_path / "urls.jsonl")]["sha256"]
    counts = json.loads((rd / "model" / "manifest.json").read_text())["counts"]
    assert counts["lent_links"] == counts["seed"] > 70
    (tmp_path / "urls.jsonl").unlink()
    r = cli("run", cfg, "--out", tmp_path / "run2", check=False)
    assert r.returncode == 2 and "lend_links: no such file" in r.stderr


@pytest.mark.slow
def test_feature_tokens_written_five_times_carry_the_student_to_modern_mail(url_rows, data_dir):
    """Seed-only students (500 rows and their lent links, seeds 0-2) on the 261 hand-written modern messages of
    bench/handwritten: the email_signals view's feature tokens written SIGNAL_REPEAT (5) times against once."""
    from sklearn.metrics import roc_auc_score

    from smallworld.tasks.mail import SIGNAL_REPEAT, email_view

    task = load_task("emails")
    cfg = TrainConfig(task="emails", labelled="-", out="-")
    train = list(D.iter_rows(data_dir / "emails" / "train.jsonl.gz"))
    here = Path(__file__).resolve().parents[1] / "bench" / "handwritten"
    test = [r for f in ("emails.jsonl", "emails_b.jsonl") for r in D.iter_rows(here / f)]
    y = np.array([r["label"] == "phishing" for r in test])
    gains = []
    for seed in (0, 1, 2):
        seed_rows = stratified_sample(train, 500, seed)
        rows = seed_rows + lend_links(seed_rows, url_rows, "phishing")
        auc = []
        for k in (1, SIGNAL_REPEAT):
            X = [email_view(r["text"], intent=True, link_signals=True, repeat=k) for r in rows]
            m = fit_distilled(task, cfg, X, onehot(task, [r["label"] for r in rows]), np.ones(len(rows)), [],
                              np.zeros((0, 3)), np.zeros(0))
            s = m.decision_function([email_view(r["text"], True, True, k) for r in test])[:, 0]
            auc.append(roc_auc_score(y, s))
        gains.append(auc[1] - auc[0])
    assert min(gains) > 0 and np.mean(gains) > 0.02, gains  # measured: +0.042, +0.024, +0.045
