"""Email: raw RFC 822 / MIME messages (``.eml``, mbox) into the corpora's form, and the ``emails`` task's view.

``parse_message`` reads a message with the standard ``email`` package (policy ``default``; broken charsets
and encodings are decoded with replacement, never an exception): headers (From, Reply-To, Return-Path,
Received, Authentication-Results), text and HTML parts (HTML turned into visible text with lxml), links and
their domains, attachment names and types. ``message_text`` renders it as the corpora do (``Subject: ...``
then the body); header facts go to the row's ``meta`` for analysts (the training corpora carry no headers, so
the student cannot learn from them).

``email_view`` is the ``emails`` normaliser: the corpora's lowercase tokenised form, cut so that a long
message keeps its subject, its start and its links, followed by feature tokens (``__links_3__``,
``__ip_link__``, ``__many_link_domains__``) the student hashes like words.
"""

from __future__ import annotations

import email
import re
from email import policy
from email.message import EmailMessage
from urllib.parse import urlsplit

from .page import parse_html

_URL = re.compile(r"https?://[^\s<>\"')\]]+", re.I)
_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
# a link in the tokenised form: "http : / / www . host . com / path"
_TOK_URL = re.compile(r"\b(?:https? : / / )?(www(?: [.\-] \w+)+|(?<=: / / )\w+(?: [.\-] \w+)+)")
_IP = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
VIEW_TOKENS = 400     # tokens of body kept in the view (the start), besides subject and links


def _decode(part) -> str:
    try:
        return part.get_content()
    except (LookupError, UnicodeError, AssertionError, ValueError, KeyError):  # unknown charset, bad encoding
        payload = part.get_payload(decode=True) or b""
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload)


def html_text(html: str) -> tuple[str, list[str]]:
    """Visible text and link targets of an HTML body."""
    doc = parse_html(html)
    if doc is None:
        return re.sub(r"<[^>]*>", " ", html), _URL.findall(html)
    links = [a.get("href", "") for a in doc.xpath("//a[@href]")]
    for bad in doc.xpath("//script|//style"):
        bad.drop_tree()
    return " ".join(doc.text_content().split()), [x for x in links if x.lower().startswith(("http", "www"))]


def _domain(url: str) -> str:
    try:
        return (urlsplit(url if "://" in url else "http://" + url).hostname or "").lower()
    except ValueError:
        return ""


def parse_message(raw: bytes | str) -> dict:
    msg: EmailMessage = (email.message_from_bytes(raw, policy=policy.default) if isinstance(raw, bytes)
                         else email.message_from_string(raw, policy=policy.default))

    def h(name: str) -> str:
        try:
            v = msg.get(name)
        except (ValueError, IndexError, TypeError):  # malformed header values
            v = msg.get_all(name, failobj=[None])[0] if hasattr(msg, "get_all") else None
        return " ".join(str(v).split()) if v is not None else ""

    texts, htmls, attachments = [], [], []
    for part in (msg.walk() if msg.is_multipart() else [msg]):
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        fname = part.get_filename()
        if fname or part.get_content_disposition() == "attachment":
            attachments.append({"name": fname or "", "type": ctype})
            continue
        if ctype == "text/plain":
            texts.append(_decode(part))
        elif ctype == "text/html":
            htmls.append(_decode(part))
    links: list[str] = []
    body = "\n".join(t for t in texts if t.strip())
    for hb in htmls:
        t, ls = html_text(hb)
        links += ls
        if not body.strip():
            body = t
    links += _URL.findall(body)
    sender = h("From")
    auth = h("Authentication-Results").lower()
    return {"subject": h("Subject"), "from": sender, "reply_to": h("Reply-To"), "return_path": h("Return-Path"),
            "received_hops": len(msg.get_all("Received") or []), "date": h("Date"),
            "auth": {k: (re.search(rf"{k}=(\w+)", auth).group(1) if re.search(rf"{k}=(\w+)", auth) else None)
                     for k in ("spf", "dkim", "dmarc")},
            "body": body, "links": links[:200], "link_domains": sorted({d for d in map(_domain, links) if d})[:50],
            "attachments": attachments[:50], "defects": len(msg.defects)}


def _addr_domain(v: str) -> str:
    m = re.search(r"@([\w.\-]+)", v)
    return m.group(1).lower() if m else ""


def message_row(raw: bytes, rid: str) -> dict:
    """One row: text in the corpora's form (``Subject: ...`` and the body), header facts in ``meta``."""
    f = parse_message(raw)
    sd, rd = _addr_domain(f["from"]), _addr_domain(f["reply_to"])
    meta = {k: f[k] for k in ("from", "reply_to", "return_path", "received_hops", "date", "auth", "link_domains",
                              "attachments", "defects")}
    meta["reply_to_differs"] = bool(rd and sd and rd != sd)
    meta["links_off_sender_domain"] = sum(1 for d in f["link_domains"] if sd and not d.endswith(sd))
    body = f["body"]
    hidden = [u for u in dict.fromkeys(f["links"]) if u not in body][:20]  # HTML links: visible to model and teacher
    if hidden:
        body += "\n" + " ".join(hidden)
    return {"id": rid, "text": f"Subject: {f['subject']}\n{body}", "meta": meta}


def email_view(text: str) -> str:
    """The corpora's tokenised form, cut to subject + start + links, with link feature tokens."""
    toks = _TOKEN.findall(text.lower())
    norm = " ".join(toks)
    links = [m.group(1).replace(" ", "") for m in _TOK_URL.finditer(norm)]
    doms = sorted(set(links))
    feats = []
    n = len(links)
    feats.append(f"__links_{min(n, 5)}__" if n < 5 else "__links_5plus__")
    if any(_IP.match(ln) for ln in links):
        feats.append("__ip_link__")
    if len(doms) >= 3:
        feats.append("__many_link_domains__")
    if len(toks) > VIEW_TOKENS + 50:
        norm = " ".join(toks[:VIEW_TOKENS]) + " … " + " ".join(doms[:10])
    return norm + " " + " ".join(feats)
