"""`smallworld report`: every figure renders (headless Chromium), the learning curve, escaping of data text."""

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import ROOT, cli
from smallworld.report import write_report

CONFIG = ROOT / "smallworld" / "examples" / "alert_triage.toml"
PROBE = ("<script>window.addEventListener('load',()=>{const d=document.createElement('pre');d.id='probe';"
         "d.textContent=JSON.stringify([...document.images].map(i=>[i.closest('figure').id,i.complete,i.naturalWidth,"
         "i.naturalHeight]));document.body.appendChild(d);});</script>")


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if p := shutil.which(name):
            return p
    if shutil.which("apt-get"):
        pytest.fail("chromium is not installed: apt-get install -y chromium (make test installs it)")
    pytest.skip("chromium is not installed and apt-get is unavailable to install it")


def rendered_images(report_html: Path) -> list:
    """Load the report in headless Chromium; [(figure id, complete, naturalWidth, naturalHeight)] per <img>."""
    src = report_html.read_text(encoding="utf-8")
    assert "Content-Security-Policy" in src
    # the report itself runs no script (its CSP forbids it); the probe copy drops the CSP and adds one
    probe = report_html.with_name("probe.html")
    probe.write_text(src.replace("<meta http-equiv='Content-Security-Policy'", "<meta name='x-csp-removed'")
                     .replace("</body>", PROBE + "</body>"), encoding="utf-8")
    with tempfile.TemporaryDirectory() as prof:
        r = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                            "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={prof}",
                            "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
                           capture_output=True, text=True, timeout=120)
    start = r.stdout.find('<pre id="probe">')
    assert start >= 0, r.stderr[-2000:]
    return json.loads(r.stdout[start + len('<pre id="probe">'):r.stdout.index("</pre>", start)])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    rd = tmp_path_factory.mktemp("report") / "run"
    cli("run", CONFIG, "--set", "teacher.url=none", "--out", rd)
    return rd


def test_report_figures_all_load_in_a_browser(run_dir):
    html = (run_dir / "report" / "report.html").read_text()
    assert "src='http" not in html and "<script" not in html  # self-contained, no script
    imgs = rendered_images(run_dir / "report" / "report.html")
    ids = [i[0] for i in imgs]
    assert {"fig-roc", "fig-pr", "fig-calibration", "fig-histograms", "fig-confusion"} <= set(ids)
    assert all(ok and w > 100 and h > 100 for _, ok, w, h in imgs), imgs
    figs = sorted(p.stem for p in (run_dir / "report" / "figures").glob("*.png"))
    assert figs == sorted(i[4:] for i in ids)
    md = (run_dir / "report" / "report.md").read_text()
    assert "| dev | distilled | 32 |" in md and "![ROC curves" in md and "seconds / million events" in md


def test_a_broken_figure_is_caught(run_dir, tmp_path):
    bad = tmp_path / "report.html"
    bad.write_text((run_dir / "report" / "report.html").read_text().replace("base64,iVBOR", "base64,AAAAiVBOR", 1))
    imgs = rendered_images(bad)
    assert sum(1 for _, ok, w, h in imgs if w == 0) == 1


def test_learning_curve_from_round_metrics_and_escaped_data_text(run_dir, tmp_path):
    rd = tmp_path / "run"
    shutil.copytree(run_dir, rd)
    m = json.loads((rd / "model" / "manifest.json").read_text())
    m["teacher"]["rounds"] = [{"round": i + 1, "asked": 10, "teacher_calls": 10 * (i + 1),
                               "metrics": {"dev": {"roc_auc": 0.8 + 0.05 * i, "tpr_at_1e-3": 0.2 + 0.1 * i},
                                           "heldout": {"roc_auc": 0.7 + 0.05 * i, "tpr_at_1e-3": 0.1}}}
                              for i in range(3)]
    (rd / "model" / "manifest.json").write_text(json.dumps(m))
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)> | `x`"
    (rd / "model" / "disagreements.jsonl").write_text(json.dumps(
        {"id": "d1", "text": evil, "label": "false_positive", "teacher": "true_positive", "probs": [0.97, 0.03],
         "student_cv_probs": [0.8, 0.2]}) + "\n")
    out = write_report(rd)
    html = (out / "report.html").read_text()
    assert "id='fig-learning'" in html and (out / "figures" / "learning.png").exists()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror" in html
    md = (out / "report.md").read_text()
    assert "| 3 | 30 | dev | 0.900 | 0.400 |" in md
    assert "&lt;script&gt;" in md and "\\| \\`x\\`" in md
    assert all(w > 0 for _, _, w, _ in rendered_images(out / "report.html"))


def test_report_without_round_metrics_says_so(run_dir):
    md = (run_dir / "report" / "report.md").read_text()
    assert "carry no per-round metrics" in md and "Learning curve" not in md


def test_report_on_a_folder_that_is_not_a_run(tmp_path):
    r = cli("report", tmp_path, check=False)
    assert r.returncode == 2 and "not a run folder" in r.stderr
