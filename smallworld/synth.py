"""Synthetic data: the teacher writes the rare threats (and hard benign cases) the data lacks.

Flow: a taxonomy (shipped per task in ``tasks/taxonomy/<task>.toml``, extensible with ``--taxonomy FILE``)
-> one constrained-JSON generation prompt per taxonomy entry and call (temperature and seed per call;
answers in the same durable cache and usage ledger as labelling) -> filters, each counted: parse validity,
length bounds, placeholders, exact and near-duplicates (MinHash) within the batch and against the training
data, and teacher verification (the teacher, asked with the ordinary labelling prompt, must give the
intended class at least ``threshold``) -> rows with ``source = "synthetic:<task>/<entry>"`` and a weight,
plus a filter and diversity report. Synthetic rows are for training only (``train --synthetic FILE``).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shlex
import tomllib
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence
from urllib.parse import urlsplit

import numpy as np

from .teacher import prompting
from . import selection
from .errors import SmallworldError
from .tasks import Task

_TAX = Path(__file__).parent / "tasks" / "taxonomy"


@dataclass(frozen=True)
class Entry:
    id: str
    name: str
    label: str
    hint: str
    platform: str = "any"
    groups: tuple[str, ...] = ()  # names --entries also takes, for several entries at once


@dataclass(frozen=True)
class Shape:
    """What one synthetic item of a task looks like."""
    unit: str            # what the prompt asks for
    per_call: int        # items per generation call
    max_tokens: int
    min_chars: int
    max_chars: int
    email: bool = False  # items are {subject, body} objects


SHAPES = {
    "cmdlines": Shape("single-line command line", 5, 600, 8, 400),
    "urls": Shape("full URL (with scheme)", 5, 500, 12, 300),
    "emails": Shape("email", 1, 400, 120, 3000, email=True),
    "html": Shape("complete small HTML page", 1, 900, 200, 20000),
}

PLACEHOLDER = re.compile(
    r"example\.(com|org|net)|\b(evil|attacker|malicious|badsite|phishing-?site)\.(com|net|org)|<[a-z_ -]*(payload|url|path|"
    r"ip|host|domain|user|name|file|command|link|script)[a-z_ -]*>|\{[A-Z_]{3,}\}|\[(url|link|name|company|recipient|"
    r"sender|your name|date|amount)\]|path[\\/]to[\\/]|your[_-](domain|server|ip|file)|lorem ipsum|x\.x\.x\.x|\bxxx+\b|"
    r"\b(evil|malicious)[_\-.]|[_\-](evil|malicious)\b|\b(username|password)123\b|"
    # slots a model fills in with a generic noun: "[User]", "[FileName]", "service_name", "C:\\Users\\username\\"
    r"\[(user ?name|user|file ?name|server|domain|payload|host ?name|ip address|path|password|program)\]|"
    r"\b(service|file|host|server|domain|program|process|task)_name\b|\\users\\(username|user_name)\\", re.I)
SLOT = re.compile(r"\[[a-z][a-z_ ]{2,20}\]")  # "[username]"; PowerShell's [System.IO.File] is capitalised


_BRACKET = re.compile(r"\[[^\[\]\n]{2,40}\]")
_NAMES = ("Maria", "James", "Priya", "Tom", "Aiko", "Lucas", "Fatima", "Daniel", "Sofia", "Kenji", "Olivia", "Ahmed")


def repair_email(text: str, seed: int) -> tuple[str, int]:
    """Small models fill mail with "[Employee Name]"-style slots despite being told not to: a slot naming a
    person becomes a first name, any other slot is removed. Returns the text and the number of slots."""
    rng = np.random.default_rng(seed)
    n = 0

    def sub(m: re.Match) -> str:
        nonlocal n
        n += 1
        return str(rng.choice(_NAMES)) if re.search(r"name|recipient|employee|colleague|manager|customer", m.group(0), re.I) else ""

    out = _BRACKET.sub(sub, text)
    return re.sub(r"[ \t]+([,.!?])", r"\1", out), n


def echoes_prompt(text: str, entry: "Entry", prompt: str = "") -> bool:
    """An item that repeats the instruction (the entry's id, or mostly the words of its hint or of the prompt)
    instead of being an example."""
    if entry.id.lower() in text.lower() and entry.id.lower() not in ("any",):
        return True
    low = text.lower()
    if any(p in low for p in ("platform:", "one command per item", "labelled malicious", "labelled benign")):
        return True
    # the answer's labels or the task's name written into the item ("cmdlines/benign/backup.bat")
    if re.search(r"[/\\:](benign|malicious)[/\\]|^\s*(cmdlines|urls|emails|html)\s*[:/]", low):
        return True
    words = re.findall(r"[a-z0-9]{3,}", low)
    hint = set(re.findall(r"[a-z0-9]{3,}", (entry.hint + " " + entry.name + " " + prompt).lower()))
    return len(words) >= 4 and sum(w in hint for w in words) / len(words) >= 0.6


def load_taxonomy(task: Task, extra: Sequence[str] = ()) -> list[Entry]:
    """The task's shipped taxonomy plus the user's files; every entry's label must be one of the task's."""
    paths = ([_TAX / f"{task.name}.toml"] if (_TAX / f"{task.name}.toml").exists() else []) + [Path(p) for p in extra]
    if not paths:
        raise SmallworldError(f"task {task.name!r} ships no taxonomy: pass --taxonomy FILE with [[entry]] tables")
    out: dict[str, Entry] = {}
    for p in paths:
        try:
            doc = tomllib.loads(Path(p).read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError) as e:
            raise SmallworldError(f"{p}: not a readable taxonomy TOML file: {e}") from None
        for i, e in enumerate(doc.get("entry", [])):
            if not isinstance(e, dict) or not all(isinstance(e.get(k), str) and e.get(k) for k in ("id", "name", "label", "hint")):
                raise SmallworldError(f"{p}: entry {i + 1} needs non-empty strings id, name, label and hint")
            if e["label"] not in task.labels:
                raise SmallworldError(f"{p}: entry {e['id']!r} has label {e['label']!r}, not one of {list(task.labels)}")
            groups = e.get("groups", [])
            if not isinstance(groups, list) or not all(isinstance(g, str) and g for g in groups):
                raise SmallworldError(f"{p}: entry {e['id']!r}: groups must be a list of names")
            out[e["id"]] = Entry(e["id"], e["name"], e["label"], e["hint"], str(e.get("platform", "any")), tuple(groups))
    return list(out.values())


# The event's fields a generated item of a task with ``context`` comes with (the parent's command line is not asked:
# a small model writes two command lines for one item badly), and what the answer's objects call them.
SYNTH_CONTEXT = {"image": "the full path of the program the command line runs",
                 "parent_image": "the full path of the program that started it, as an endpoint agent records it",
                 "user": "the account it runs as (a service account, SYSTEM, root, or a person's DOMAIN\\name)"}
_PATH_FIELDS = ("image", "parent_image")


def context_fields(task: Task) -> tuple[str, ...]:
    """The event fields generation asks for: those of the task's ``context`` that :data:`SYNTH_CONTEXT` names."""
    return tuple(k for k in task.context if k in SYNTH_CONTEXT)


def _schema(shape: Shape, n: int, fields: Sequence[str] = ()) -> dict:
    if shape.email:
        item = {"type": "object", "properties": {"subject": {"type": "string"}, "body": {"type": "string"}},
                "required": ["subject", "body"]}
    elif fields:
        keys = ("command_line", *fields)
        item = {"type": "object", "properties": {k: {"type": "string"} for k in keys}, "required": list(keys)}
    else:
        item = {"type": "string"}
    return {"type": "object", "properties": {"items": {"type": "array", "items": item, "minItems": n, "maxItems": n}},
            "required": ["items"]}


# Mail is written by many hands: each generation call draws one writer, length, language, setting and link
# habit (seeded per call, so a rerun asks the same prompts and the cache answers them), so the student meets
# more than the teacher's one house style.
EMAIL_STYLES = {
    "writer": ("a busy manager writing tersely from a phone", "a formal corporate communications team",
               "an automated notification system", "a friendly small-business owner", "an IT helpdesk technician",
               "a non-native English speaker", "a vendor's accounts-receivable clerk", "a recruiter or HR partner",
               "a customer-support agent", "a colleague writing casually, in lower case"),
    "length": ("short: 20 to 50 words", "medium: 50 to 110 words", "long: 110 to 180 words"),
    "language": ("English",) * 6 + ("German", "French", "Spanish", "Italian", "Portuguese", "Dutch"),
    "setting": ("a hospital", "a law firm", "a software company", "a logistics company", "a university",
                "a retail chain", "a city council", "a regional bank", "a manufacturing plant", "a charity",
                "an accounting firm", "an online shop's customers"),
    "links": ("one link, written out", "no link at all (it asks for a reply, a call or an attachment)",
              "a link whose visible text differs from its address", "two or three links, as newsletters have"),
}


def email_style(seed: int) -> str:
    """One draw of :data:`EMAIL_STYLES`, as a sentence for the generation prompt (deterministic in ``seed``)."""
    rng = np.random.default_rng(seed)
    s = {k: v[int(rng.integers(len(v)))] for k, v in EMAIL_STYLES.items()}
    return (f" Writer: {s['writer']}, at or for {s['setting']}. Language: {s['language']}. Length of the body: "
            f"{s['length']}. Links: {s['links']}.")


def build_prompt(task: Task, shape: Shape, entry: Entry, n: int, examples: Sequence[str] = (),
                 style: str = "", fields: Sequence[str] = ()) -> str:
    """The generation prompt for ``n`` items of ``entry``; ``style`` (mail: :func:`email_style`) replaces the
    task's default length sentence; ``fields`` (:func:`context_fields`) asks for each item's event as well."""
    label_words = {lab: lab.replace("_", " ") for lab in task.labels}
    where = "" if entry.platform == "any" else f" Platform: {entry.platform}."
    what = "one" if n == 1 else f"{n} different"
    extra = {"emails": " Each email has a subject and a body" + (", written as it would arrive today." + style
                                                                  if style else
                                                                  " of 40 to 100 words, written as it would arrive today."),
             "html": " Keep the page short (under 60 lines), with a title, some visible text and its forms or links.",
             "cmdlines": " One command per item, on one line.",
             "urls": " Vary the hosts and paths."}.get(task.name, "")
    if fields:
        extra += (' Each item is an object: "command_line" (the command line), '
                  + ", ".join(f'"{k}" ({SYNTH_CONTEXT[k]})' for k in fields) + ".")
    return (f"You write realistic data to test a security classifier ({task.name}: "
            f"{', '.join(label_words.values())}).\n"
            f"Write {what} realistic {shape.unit}{'' if n == 1 else 's'} of this kind, labelled {label_words[entry.label]}:\n"
            f"{entry.name} ({entry.id}): {entry.hint}.{where}{extra}\n"
            "Use concrete, plausible hostnames, paths, user names, brands and values as seen in real life; never "
            "placeholders such as example.com, <payload>, {PATH}, [URL] or path/to/file. Write the items themselves, "
            "not descriptions of them, and do not repeat these instructions.\n"
            + ("Real items of this task (other kinds), for their style only:\n" +
               "".join(f"- {x}\n" for x in examples) if examples else "")
            + 'Answer only with JSON: {"items": [...]}')


# -- validity per task -------------------------------------------------------------------------------------
def _valid_url(t: str) -> bool:
    if any(c.isspace() for c in t):
        return False
    try:
        u = urlsplit(t)
        return u.scheme in ("http", "https") and bool(u.hostname) and ("." in u.hostname or ":" in u.hostname)
    except ValueError:
        return False


# JSON escapes a model wrote by mistake inside a Windows path ("C:\temp", "C:\backup" unescaped in the answer's
# JSON become a tab, a backspace...): put back as the backslash and letter they were
_JSON_DAMAGE = str.maketrans({"\t": "\\t", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r"})
# a description of a command rather than a command: plain words only, with English function words after the first
_FUNCTION_WORDS = frozenset("a an the to of for with and or in on into from by that which your their its".split())


def repair_cmdline(t: str) -> str:
    """A generated command line with JSON-escape damage undone (one line: a control character in it was a
    backslash sequence in a path)."""
    return t.translate(_JSON_DAMAGE)


# a title before the command ("Windows Update (silent): wuauclt.exe /detectnow"): no row of train, dev, pool or
# telemetry starts so
_TITLED = re.compile(r"^[A-Z][a-z]+(?: [A-Za-z][a-z]*)+(?: \([^)]*\))?: \S")


def is_prose(t: str) -> bool:
    """Whether a generated "command line" is a sentence about one ("creating a new user account with ..."), a
    title ("Windows Update Service": capitalised words only, which no command line of train, dev or telemetry is)
    or a command under a title ("Google Chrome Update (silent): ...")."""
    if _TITLED.match(t):
        return True
    words = t.split()
    if not all(w.isalpha() for w in words):
        return False
    return ((len(words) >= 4 and any(w.lower() in _FUNCTION_WORDS for w in words[1:]))
            or (len(words) >= 2 and all(w[0].isupper() for w in words)))


def _valid_cmdline(t: str, platform: str) -> bool:
    if any(ord(c) < 32 or ord(c) == 127 for c in t) or is_prose(t):  # one line, no control characters
        return False
    try:
        toks = shlex.split(t, posix=platform not in ("windows",))
    except ValueError:
        return False
    return bool(toks) and bool(toks[0].strip())


def _valid_email(t: str) -> bool:
    subject, _, body = t.partition("\n")
    return subject.startswith("Subject: ") and len(subject) > 10 and len(body.split()) >= 15


def _valid_html(t: str) -> bool:
    import lxml.html

    try:
        doc = lxml.html.document_fromstring(t)
    except Exception:  # lxml raises ParserError, ValueError... on hopeless input
        return False
    return doc.find(".//body") is not None and len(doc.text_content().split()) >= 3


def valid(task: Task, text: str, entry: Entry) -> bool:
    if task.name == "urls":
        return _valid_url(text)
    if task.name == "cmdlines":
        return _valid_cmdline(text, entry.platform)
    if task.name == "emails":
        return _valid_email(text)
    if task.name == "html":
        return _valid_html(text)
    return bool(text.strip())


def _event(it: dict, fields: Sequence[str]) -> dict:
    """The event fields of a generated item that are one plausible line each (paths with a folder, no
    placeholder); the others are left out rather than the item dropped."""
    ev = {}
    for k in fields:
        v = it.get(k)
        if not isinstance(v, str):
            continue
        v = " ".join(v.split())
        if (not v or len(v) > 260 or PLACEHOLDER.search(v) or SLOT.search(v)
                or (k in _PATH_FIELDS and "\\" not in v and "/" not in v)):
            continue
        ev[k] = v
    return ev


def _items(answer: str, shape: Shape, fields: Sequence[str] = ()) -> list[tuple[str, dict | None]] | None:
    """The items of a generation answer, each with its event (a task with ``context``) or None."""
    try:
        doc = json.loads(answer, strict=False)  # grammar-bound strings can hold raw newlines
    except (ValueError, RecursionError):
        m = re.search(r"\{.*\}", answer, re.S)  # some servers wrap the JSON in prose or code fences
        try:
            doc = json.loads(m.group(0), strict=False) if m else None
        except (ValueError, RecursionError):
            doc = None
    if not isinstance(doc, dict) or not isinstance(doc.get("items"), list):
        return None
    out = []
    for it in doc["items"]:
        if shape.email and isinstance(it, dict) and isinstance(it.get("subject"), str) and isinstance(it.get("body"), str):
            out.append((f"Subject: {' '.join(it['subject'].split())}\n{it['body'].strip()}", None))
        elif fields and isinstance(it, dict) and isinstance(it.get("command_line"), str):
            out.append((it["command_line"].strip(), _event(it, fields)))
        elif not shape.email and not fields and isinstance(it, str):
            out.append((it.strip(), None))
    return out


# -- the run ----------------------------------------------------------------------------------------------
@dataclass
class SynthReport:
    calls: int = 0
    unparseable_answers: int = 0
    generated: int = 0
    repaired: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    kept: int = 0
    per_entry: dict[str, dict[str, int]] = field(default_factory=dict)
    diversity: dict = field(default_factory=dict)

    def drop(self, reason: str, entry: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        self.per_entry.setdefault(entry, {"generated": 0, "kept": 0})

    def render(self) -> str:
        lines = [f"synthetic data: {self.calls} generation calls ({self.unparseable_answers} unparseable), "
                 f"{self.generated} items generated ({self.repaired} repaired: placeholder slots, escape damage), {self.kept} kept",
                 "filter                          dropped"]
        for reason in FILTERS:
            lines.append(f"  {reason:<30}{self.dropped.get(reason, 0):>7}")
        lines.append("per taxonomy entry (generated -> kept):")
        for e, c in self.per_entry.items():
            lines.append(f"  {e:<30}{c['generated']:>5} -> {c['kept']}")
        d = self.diversity
        if d:
            lines.append(f"diversity: {d['distinct_token_bigrams']:.3f} distinct token bigrams per bigram, "
                         f"{d['distinct_char_4grams']:.3f} distinct character 4-grams per 4-gram; nearest training row: "
                         f"median similarity {d['nn_similarity_median']:.2f} (novelty median {d['novelty_median']:.2f}, "
                         f"min {d['novelty_min']:.2f})")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"calls": self.calls, "unparseable_answers": self.unparseable_answers, "generated": self.generated,
                "repaired": self.repaired,
                "dropped": {k: self.dropped.get(k, 0) for k in FILTERS}, "kept": self.kept,
                "per_entry": self.per_entry, "diversity": self.diversity}


FILTERS = ("invalid", "length", "placeholder", "echoes the prompt", "duplicate in batch", "duplicate of training data",
           "near-duplicate in batch", "near-duplicate of training data", "not verified by teacher")


def max_similarity(sig_a: np.ndarray, sig_b: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """For each row of sig_a, the highest estimated Jaccard similarity (MinHash agreement) to any row of sig_b."""
    best = np.zeros(len(sig_a))
    for s in range(0, len(sig_b), chunk):
        B = sig_b[s:s + chunk]
        for i in range(len(sig_a)):
            best[i] = max(best[i], float((B == sig_a[i]).mean(axis=1).max()))
    return best


def diversity(texts: Sequence[str], novelty: np.ndarray) -> dict:
    bi, n_bi, c4, n_c4 = set(), 0, set(), 0
    for t in texts:
        toks = t.lower().split()
        pairs = list(zip(toks, toks[1:]))
        bi.update(pairs)
        n_bi += len(pairs)
        grams = [t[i:i + 4] for i in range(max(len(t) - 3, 0))]
        c4.update(grams)
        n_c4 += len(grams)
    return {"distinct_token_bigrams": len(bi) / max(n_bi, 1), "distinct_char_4grams": len(c4) / max(n_c4, 1),
            "nn_similarity_median": float(np.median(1 - novelty)) if len(novelty) else 0.0,
            "novelty_median": float(np.median(novelty)) if len(novelty) else 0.0,
            "novelty_min": float(novelty.min()) if len(novelty) else 0.0}


def choose_entries(task: Task, entries: Sequence[Entry], label: str | None = None,
                   ids: str | Sequence[str] | None = None) -> list[Entry]:
    """The entries of one label and/or with these ids or group names (comma-separated or a list), in the
    taxonomy's order; unknown names are an error."""
    ents = list(entries)
    if label:
        if label not in task.labels:
            raise SmallworldError(f"--label {label!r} is not one of {list(task.labels)}")
        ents = [e for e in ents if e.label == label]
    if ids:
        want = {x.strip() for x in (ids.split(",") if isinstance(ids, str) else ids) if x.strip()}
        unknown = sorted(want - {e.id for e in ents} - {g for e in ents for g in e.groups})
        if unknown:
            raise SmallworldError(f"--entries: unknown taxonomy entries or groups {unknown}")
        ents = [e for e in ents if e.id in want or want.intersection(e.groups)]
    return ents


def synthesize(task: Task, teacher, n: int, entries: Sequence[Entry], train_rows: Sequence[dict] = (),
               verify: bool = True, threshold: float = 0.5, temperature: float = 0.9, seed: int = 0,
               weight: float = 1.0, oversample: float = 1.5, style_examples: int = 0, styles: bool = True,
               progress: bool = True, per_call: int | None = None) -> tuple[list[dict], SynthReport]:
    """About ``n`` items spread evenly over ``entries``, generating ``oversample`` times as many for the filters:
    generate -> cheap filters (validity, length, placeholders, prompt echoes, exact duplicates) -> near-duplicates
    (in the batch, then against the training data) -> the teacher's verification -> rows."""
    if not entries:
        raise SmallworldError("no taxonomy entries to generate for")
    shape = SHAPES.get(task.name, Shape("item", 3, 500, 5, task.max_item_chars))
    if per_call is not None:  # more items a call: fewer calls for the same rows, room for each one's tokens
        if not 1 <= per_call <= 10:
            raise SmallworldError(f"per_call must be between 1 and 10, not {per_call}")
        shape = replace(shape, per_call=per_call, max_tokens=shape.max_tokens * per_call // shape.per_call)
    fields = () if shape.email else context_fields(task)
    if fields:  # an object per item (some 90 tokens): one item fewer per call, and room for the event's fields
        shape = replace(shape, per_call=max(1, shape.per_call - 1), max_tokens=shape.max_tokens + 300)
    rep = SynthReport()
    cand = _generate(task, teacher, shape, n, entries, train_rows, temperature, seed, oversample, style_examples,
                     styles, progress, rep, fields)
    kept = _cheap_filters(task, shape, cand, train_rows, seed, rep)
    kept, novelty = _near_duplicates(task, kept, train_rows, seed, rep)
    p_int = np.full(len(kept), np.nan)
    if kept and verify:
        kept, novelty, p_int = _verify(task, teacher, kept, novelty, train_rows, threshold, progress, rep)
    rows = []
    for (t, e, ev), nov, p in zip(kept, novelty, p_int):
        rep.per_entry[e.id]["kept"] += 1
        rows.append({"id": "syn-" + hashlib.sha256(t.encode("utf-8", "surrogatepass")).hexdigest()[:12], "text": t,
                     "label": e.label, "source": f"synthetic:{task.name}/{e.id}", "weight": weight,
                     **({"event": ev} if ev else {}),
                     "meta": {"taxonomy": e.id, "technique": e.name, "novelty": round(float(nov), 4),
                              "teacher_p": None if np.isnan(p) else round(float(p), 4)}})
    rep.kept = len(rows)
    rep.diversity = diversity([r["text"] for r in rows], novelty)
    return rows, rep


def _generate(task, teacher, shape, n, entries, train_rows, temperature, seed, oversample, style_examples, styles,
              progress, rep, fields=()) -> list[tuple[str, Entry, dict | None]]:
    """The teacher's items for each entry (JSON-schema-bound answers; unparseable answers counted), each with its
    event for a task with ``context``; mail with ``styles`` draws a writer, length, language, setting and link
    habit per call."""
    from .progress import bar

    per_entry = math.ceil(n / len(entries))
    cand: list[tuple[str, Entry, dict | None]] = []
    calls_per_entry = max(1, math.ceil(per_entry * oversample / shape.per_call))  # headroom: the filters drop some
    schema = _schema(shape, shape.per_call, fields)
    rng = np.random.default_rng(seed)
    short = {lab: [r["text"] for r in train_rows if r.get("label") == lab and 10 <= len(r["text"]) <= 160
                   and not PLACEHOLDER.search(r["text"])]
             for lab in task.labels} if not shape.email and task.name != "html" else {}
    with bar("teacher: generating", len(entries) * calls_per_entry, progress) as tick:
        for e in entries:
            pool = short.get(e.label, [])
            k = min(style_examples, len(pool))
            examples = [pool[i] for i in rng.choice(len(pool), size=k, replace=False)] if k else []
            prompt = build_prompt(task, shape, e, shape.per_call, examples, fields=fields)
            rep.per_entry.setdefault(e.id, {"generated": 0, "kept": 0})
            for c in range(calls_per_entry):
                if shape.email and styles:
                    prompt = build_prompt(task, shape, e, shape.per_call, examples,
                                          email_style(zlib.crc32(f"{seed}:{e.id}:{c}".encode())))
                text = teacher.generate(prompt, max_tokens=shape.max_tokens, temperature=temperature,
                                        seed=seed * 1000 + c, schema=schema)
                rep.calls += 1
                items = _items(text, shape, fields)
                tick()
                if items is None:
                    rep.unparseable_answers += 1
                    continue
                for it, ev in items:
                    rep.generated += 1
                    rep.per_entry[e.id]["generated"] += 1
                    cand.append((it, e, ev))
    return cand


_DIGITS = re.compile(r"\d+")


def _dup_key(text: str) -> str:
    """What the exact-duplicate check compares: case- and space-folded, digits folded (a numbered series,
    test2.exe, test3.exe..., is one item)."""
    return _DIGITS.sub("0", selection._fold(text))


def _cheap_filters(task, shape, cand, train_rows, seed, rep) -> list[tuple[str, Entry, dict | None]]:
    train_fold = {_dup_key(r["text"]) for r in train_rows}
    seen: set[str] = set()
    kept: list[tuple[str, Entry, dict | None]] = []
    for i, (text, e, ev) in enumerate(cand):
        if shape.email:
            text, slots = repair_email(text, seed * 100003 + i)
            rep.repaired += bool(slots)
        elif task.name == "cmdlines":
            fixed = repair_cmdline(text)
            rep.repaired += fixed != text
            text = fixed
        f = _dup_key(text)
        if not valid(task, text, e):
            rep.drop("invalid", e.id)
        elif not shape.min_chars <= len(text) <= shape.max_chars:
            rep.drop("length", e.id)
        elif PLACEHOLDER.search(text) or (not shape.email and SLOT.search(text)):
            rep.drop("placeholder", e.id)
        elif echoes_prompt(text, e):
            rep.drop("echoes the prompt", e.id)
        elif f in seen:
            rep.drop("duplicate in batch", e.id)
        elif f in train_fold:
            rep.drop("duplicate of training data", e.id)
        else:
            seen.add(f)
            kept.append((text, e, ev))
    return kept


def _near_duplicates(task, kept, train_rows, seed, rep) -> tuple[list[tuple[str, Entry]], np.ndarray]:
    """MinHash near-duplicates (the same rule as selection's dedup) in the batch, then against the training
    data; returns the kept items and their novelty (1 - the highest similarity to a training row)."""
    if kept:
        cl = selection.near_duplicate_clusters([task.normalise(t) for t, _, _ in kept], seed)
        for j, (t, e, _) in enumerate(kept):
            if cl[j] != j:
                rep.drop("near-duplicate in batch", e.id)
        kept = [x for j, x in enumerate(kept) if cl[j] == j]
    novelty = np.ones(len(kept))
    if kept and train_rows:
        perms = selection.MINHASH["perms"]
        sk = selection.minhash_signatures([task.normalise(t) for t, _, _ in kept], perms, seed)
        st = selection.minhash_signatures([task.normalise(r["text"]) for r in train_rows], perms, seed)
        sim = max_similarity(sk, st)
        ok = sim < selection.MINHASH["threshold"]
        for (t, e, _), k in zip(kept, ok):
            if not k:
                rep.drop("near-duplicate of training data", e.id)
        kept, novelty = [x for x, k in zip(kept, ok) if k], (1 - sim)[ok]
    return kept, novelty


def _verify(task, teacher, kept, novelty, train_rows, threshold, progress, rep):
    """The teacher labels each item with the ordinary labelling prompt (demonstrations from the training rows);
    items it does not give the intended label with at least ``threshold`` are dropped."""
    labelled = [r for r in train_rows if r.get("label") in task.labels]
    demos = prompting.Demonstrations(task, labelled) if len({r["label"] for r in labelled}) >= 2 else None
    rows = [{"id": f"s{i}", "text": t, **({"event": ev} if ev else {})} for i, (t, _, ev) in enumerate(kept)]
    P = prompting.ask_rows(teacher, task, demos, rows, "teacher: verifying", progress)  # with the event it came with
    p_int = np.array([P[i, task.labels.index(e.label)] for i, (_, e, _) in enumerate(kept)])
    ok = ~np.isnan(p_int) & (p_int >= threshold)
    for (t, e, _), k in zip(kept, ok):
        if not k:
            rep.drop("not verified by teacher", e.id)
    return [x for x, k in zip(kept, ok) if k], novelty[ok], p_int[ok]


# -- links lent from labelled URLs (no teacher) ------------------------------------------------------------
LENT_SOURCE = "synthetic:lent-links"
MAX_LENT_URL = 2000


def lend_links(rows: Sequence[dict], urls: Sequence[dict], positive: str, copies: int = 1, seed: int = 0,
               where: str = "--lend-links") -> list[dict]:
    """Copies of labelled rows, each with one link appended from labelled URLs: a row labelled ``positive`` gets a
    URL labelled ``positive``, every other row a URL with another label (``benign``).

    For mail whose corpus lost its link targets (48 of the 500-row seed's 59 phishing mails have no link): the
    student's link-host signs (``__link_hyphenated_host__``, ``__brand_in_lookalike_domain__`` ...) never occur in
    the seed, so they can get no weight from it however well they would carry to new writers. Lent links give them
    weight from real phishing and benign URLs. A URL row without a label or that is not one URL (whitespace,
    empty, over 2,000 characters) is not used; the copies keep their row's label and group and are marked
    ``source = "synthetic:lent-links"``."""
    if copies < 1:
        raise SmallworldError(f"{where}: copies must be at least 1")
    ok = [u for u in urls if "label" in u and isinstance(u.get("text"), str) and 0 < len(u["text"]) <= MAX_LENT_URL
          and not any(c.isspace() for c in u["text"])]
    pos = [u["text"] for u in ok if u.get("label") == positive]
    neg = [u["text"] for u in ok if u.get("label") != positive]
    if not pos or not neg:
        raise SmallworldError(f"{where}: needs single-URL rows labelled {positive!r} and rows with another label "
                              f"(found {len(pos)} and {len(neg)} of {len(urls)} rows)")
    rng = np.random.default_rng(seed)
    out = []
    for r in rows:
        pool = pos if r["label"] == positive else neg
        for k in range(copies):
            url = pool[int(rng.integers(len(pool)))]
            out.append({"id": f"{r['id']}~link{k}", "text": f"{r['text'].rstrip()}\n\n{url}\n", "label": r["label"],
                        "group": r.get("group") or r["id"], "source": LENT_SOURCE, "weight": 1.0})
    return out
