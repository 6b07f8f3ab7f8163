"""The labelling core: rows in, a typed result out (``smallworld label`` and ``smallworld.label`` both call it).

The teacher answers every row; with a labelled seed its answers are calibrated on class-balanced seed rows
it also answered, and (with ``combine``) combined with two students, one trained on the seed and one on the seed
plus the teacher's answers for the *other* rows (cross-fitted: see
:func:`smallworld.pipeline.self_trained_student`), each calibrated on the same rows, log-odds summed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from . import calibrate
from .teacher import prompting
from .errors import SmallworldError
from .progress import info
from .tasks import Task, prompt_modes


@dataclass
class LabelResult:
    """What the teacher said about each row. ``probs``: the answer to use (combined with the students, or the
    calibrated teacher, or the raw answer when there is no seed); ``teacher``: calibrated; ``raw``: as answered.
    Rows whose answer was unusable hold NaN and are left out of :meth:`records`."""
    labels: tuple[str, ...]
    rows: list[dict]
    probs: np.ndarray
    teacher: np.ndarray
    raw: np.ndarray
    how: str = ""
    usage: dict = field(default_factory=dict)

    @property
    def answered(self) -> np.ndarray:
        return ~np.isnan(self.raw).any(axis=1)

    def records(self) -> Iterator[dict]:
        """``{"id", "probs", "teacher", "raw"}`` per answered row, each ``{label: p}`` (what ``label`` writes)."""
        r6 = lambda x: round(float(x), 6)  # noqa: E731
        for r, p, pc, po in zip(self.rows, self.raw, self.teacher, self.probs):
            if not np.isnan(p).any():
                yield {"id": r["id"], "probs": dict(zip(self.labels, map(r6, po))),
                       "teacher": dict(zip(self.labels, map(r6, pc))), "raw": dict(zip(self.labels, map(r6, p))),
                       **({"event": r["event"]} if "event" in r else {})}


def check_options(task: Task, prompt: str | None, combine_rule: str) -> None:
    try:
        prompt_modes(prompt or task.prompt)
    except ValueError as e:
        raise SmallworldError(f"--prompt: {e}") from None
    if combine_rule not in calibrate.Combiner.RULES:
        raise SmallworldError(f"--combine-rule must be one of {', '.join(calibrate.Combiner.RULES)}")


def label_rows(task: Task, rows: list[dict], teacher, seed: list[dict] | None = None, prompt: str | None = None,
               rubric: bool = True, shots: int = 3, calibration: int = 100, combine: bool = False,
               combine_rule: str = "equal", self_train: bool = True) -> LabelResult:
    """Label ``rows`` (dicts with ``id`` and ``text``) with ``teacher`` (a :mod:`smallworld.teacher` client; the
    caller closes it). ``seed``: labelled rows for demonstrations, calibration and the students."""
    check_options(task, prompt, combine_rule)
    seed = seed or []
    demos = (prompting.Demonstrations(task, seed, k=shots, mode=prompt or task.prompt, rubric=rubric) if seed else
             prompting.Demonstrations(task, [], mode="zero", rubric=rubric))
    cal = cal_rows = P_cal = y_cal = None
    if seed and calibration:
        cal_rows = calibrate.calibration_rows(demos, seed, calibration, 1)
        P_cal = prompting.ask_rows(teacher, task, demos, cal_rows, "teacher: calibration rows", exclude=True)
        y_cal = np.array([task.labels.index(r["label"]) for r in cal_rows])
        cal = calibrate.Calibrator(len(task.labels)).fit(P_cal, y_cal)
    P = prompting.ask_rows(teacher, task, demos, rows, "teacher: labelling")
    Pc = cal.transform(P) if cal is not None else P
    res = LabelResult(task.labels, rows, Pc, Pc, P, usage=teacher.usage.to_dict())
    if cal is not None and cal.coef is not None:
        res.how = "calibrated on the labelled seed"
    if cal is not None and combine:
        comb = _combine(task, seed, rows, P, P_cal, cal_rows, y_cal, combine_rule, self_train)
        res.probs = comb[0]
        if comb[1]:
            res.how = (f"teacher combined ({combine_rule} rule) with a student trained on the seed"
                       + (" and one also trained on the teacher's answers" if self_train else ""))
    return res


def _combine(task, seed, rows, P, P_cal, cal_rows, y_cal, combine_rule, self_train):
    """The teacher with the seed-trained (and the self-trained) student: (probabilities, whether fitted)."""
    from .pipeline import FitOptions, seed_student, self_trained_student

    cfg = FitOptions()
    texts = [task.view(r) for r in rows]
    student, cv = seed_student(task, cfg, seed)
    cvs, students = [cv], [student.predict_proba(texts)]
    if self_train:
        ok = ~np.isnan(P).any(axis=1)
        info(f"self-trained student: the seed and {int(ok.sum()):,} teacher answers, cross-fitted (10 fits; "
             "about 3-6 ms an item)", markup=False)
        Pself = np.full_like(P, np.nan)
        Pself[ok], cv = self_trained_student(task, cfg, seed, [x for x, k in zip(texts, ok) if k], P[ok])
        students.append(Pself)
        cvs.append(cv)
    comb = calibrate.Combiner(len(task.labels), combine_rule).fit(
        P_cal, [np.array([cv[r["id"]] for r in cal_rows]) for cv in cvs], y_cal)
    return comb.transform(P, students), comb.fitted
