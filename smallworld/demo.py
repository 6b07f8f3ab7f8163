"""``smallworld demo`` (what ``make demo`` runs): the main job end to end with the embedded teacher.

With the shared data present: a 500-row labelled seed of ``cmdlines`` train, about 300 ``telemetry`` rows
labelled by the teacher, evaluation on dev and on a source held out of training (``lolbas``), and the
three-row comparison. Without it: the same on the small example set shipped in ``smallworld/examples``.
"""

from __future__ import annotations

from pathlib import Path

from .pipeline import TrainConfig, TrainResult, comparison_table, train
from .progress import info

EXAMPLES = Path(__file__).parent / "examples"


def run_demo(data: str, out: str, budget: int = 300, seed_size: int = 500, teacher: str = "embedded") -> TrainResult:
    d = Path(data) / "cmdlines"
    if (d / "train.jsonl.gz").exists():
        info(f"[bold]demo[/]: cmdlines from {d} — {seed_size}-row seed, teacher budget {budget} telemetry rows, "
             f"held-out source lolbas")
        cfg = TrainConfig(task="cmdlines", labelled=str(d / "train.jsonl.gz"), dev=str(d / "dev.jsonl.gz"),
                          unlabelled=[str(d / "telemetry.jsonl.gz")], out=out, teacher=teacher, budget=budget,
                          seed_size=seed_size, holdout_sources=["lolbas"], calibration=100, teacher_eval=120)
    else:
        info(f"[bold]demo[/]: {d} not found; using the example set shipped in {EXAMPLES}")
        cfg = TrainConfig(task="cmdlines", labelled=str(EXAMPLES / "cmdlines_seed.jsonl"),
                          dev=str(EXAMPLES / "cmdlines_dev.jsonl"), unlabelled=[str(EXAMPLES / "cmdlines_telemetry.jsonl")],
                          out=out, teacher=teacher, budget=budget, calibration=24, teacher_eval=24)
    m = train(cfg)
    info("\n[bold]three-row comparison[/] (teacher, student on the seed alone, distilled student)")
    print(comparison_table(m.manifest))
    print(f"\nmodel: {out}/model.json + weights.bin; manifest: {out}/manifest.json")
    print(f"score new events:  .venv/bin/smallworld score {out} events.jsonl")
    return m
