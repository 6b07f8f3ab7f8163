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

from .page import BRANDS, free_hosted, parse_html, registered
from .url import url_tokens

_URL = re.compile(r"https?://[^\s<>\"')\]]+", re.I)
_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
# a link in the tokenised form: "http : / / www . host . com / path"
_TOK_URL = re.compile(r"\b(?:https? : / / )?(www(?: [.\-] \w+)+|(?<=: / / )\w+(?: [.\-] \w+)+)")
_IP = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
VIEW_TOKENS = 400     # tokens of body kept in the view (the start), besides subject and links
# How many times the email_signals view writes its feature tokens. Written once, a dozen tokens are drowned by the
# thousands of n-grams of a message, and the student ranks mail by its era's words (every legitimate message of the
# seed is from 1999-2005). Written 5 times, the distilled student (500-row seed, 300 telemetry calls, lent links)
# went from 0.736 / 0.712 (seeds 0 / 1) to 0.803 / 0.781 on the hand-written set the choice was made on, and from
# 0.812 / 0.804 to 0.849 / 0.840 on a second one; 10 and 20 made seed-only students unstable (docs/experiments.md).
SIGNAL_REPEAT = 5


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


def email_view(text: str, intent: bool = False, link_signals: bool = False, repeat: int = SIGNAL_REPEAT) -> str:
    """The corpora's tokenised form, cut to subject + start + links, with link feature tokens (and, with
    ``intent``, the intent tokens of :func:`intent_tokens`; with ``link_signals``, the URL view's signs for each
    link's host, :func:`link_tokens`, and every feature token written ``repeat`` times)."""
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
    if intent:
        feats += intent_tokens(norm, doms)
    if link_signals:
        feats += link_tokens(doms)
        feats *= repeat
    if len(toks) > VIEW_TOKENS + 50:
        norm = " ".join(toks[:VIEW_TOKENS]) + " … " + " ".join(doms[:10])
    return norm + " " + " ".join(feats)


def email_intent_view(text: str) -> str:
    """The ``email_intent`` normaliser: :func:`email_view` with intent tokens."""
    return email_view(text, intent=True)


def email_signals_view(text: str) -> str:
    """The ``email_signals`` normaliser: :func:`email_intent_view` with each link host's URL signs, the feature
    tokens written :data:`SIGNAL_REPEAT` times."""
    return email_view(text, intent=True, link_signals=True)


def link_tokens(doms: list[str]) -> list[str]:
    """The ``url_signals`` signs (:func:`smallworld.tasks.url.url_tokens`) of a message's link hosts, once each,
    as ``__link_<sign>__``: an IP or punycode host, free hosting, a shortener, a brand outside the registered
    domain or in a hyphenated one, account words, deep subdomains, a hyphenated host, a cheap TLD. What a link's
    host says carries across writers and eras; the words around it do not."""
    seen = dict.fromkeys(t for d in doms for t in url_tokens(d))
    return ["__link_" + t.strip("_") + "__" for t in seen]


# What a message asks the reader to do, how it presses, and whether the brands it names match where its links
# go: cues that stay when the writer (a person, another LLM), the era and the wording change. Patterns run on
# the tokenised lowercase form ("log in", "e - mail", "24 hours"); a few words in German, French and Spanish.
_W = lambda *alts: re.compile(r"(?<!\w)(?:" + "|".join(alts) + r")(?!\w)")
INTENTS = {
    "__ask_credentials__": _W(r"passwords?", "passwort", r"contrase\w+", "mot de passe", r"log ?in", r"sign ?in",
                              r"verify (?:your )?(?:account|identity|email|e - mail|details)", "credentials",
                              r"confirm (?:your )?(?:account|identity|details|email)", "reactivate", "unlock",
                              "anmelden", "connexion", r"iniciar sesi\w+"),
    "__ask_payment__": _W("invoice", "payment", r"wire(?: transfer)?", "iban", "swift", r"bank (?:details|account)",
                          "remittance", "overdue", "past due", "outstanding", "rechnung", "facture", "factura",
                          "zahlung", "paiement", "pago", "transfer"),
    "__ask_gift_card__": _W(r"gift ?cards?", "itunes", r"google play(?: card)?", r"steam (?:card|wallet)"),
    "__ask_code__": _W(r"verification code", r"one - time (?:code|password|passcode)", "otp", "2fa", "mfa",
                       "authenticator", r"security code", r"(?:6|six) - digit"),
    "__ask_open_document__": _W(r"shared (?:a |an )?(?:file|document|folder)", r"shared with you",
                                r"view (?:the )?(?:document|file|message)", "docusign", "sharepoint", "onedrive",
                                "dropbox", "wetransfer", r"secure (?:message|document)", r"voice ?mail"),
    "__urgency__": _W("urgent", "urgently", "immediately", r"within \d+ (?:hours|hrs|days)", "asap", "today",
                      "final notice", "last (?:warning|reminder)", r"expir\w*", "dringend", "sofort", "urgente",
                      r"inmediat\w+", r"imm[eé]diatement"),
    "__threat__": _W(r"suspend\w*", r"lock(?:ed)?", r"terminat\w+", r"deactivat\w+", r"delet\w+",
                     r"(?:closed|closure)", "legal action", r"penalt\w+", r"gesperrt", r"suspendu\w*"),
    "__ask_personal_data__": _W(r"social security(?: number)?", "ssn", r"w - 2s?", r"date of birth", r"driver ' s licen[cs]e",
                                r"passport (?:number|copy|scan)", r"(?:secret )?recovery phrase", r"seed phrase",
                                r"(?:full name|home address) and", r"mother ' s maiden name", r"pin (?:number|code)",
                                r"card (?:number|details) and", "cvv", "steuer - id", r"n[uú]mero de seguridad social"),
    "__secrecy__": _W(r"keep (?:this|it) (?:between us|confidential|quiet|to yourself)", "discreet", "discreetly",
                      r"(?:can ' t|cannot|unable to) (?:talk|call|take calls|speak)", r"in (?:a|back - to - back) meetings?",
                      r"don ' t (?:tell|discuss|mention)", r"strictly confidential", "sent from my iphone",
                      r"personal (?:email|phone|number)", "vertraulich", "confidentiel", "confidencial"),
    "__risky_attachment__": _W(r"\. (?:html?|shtml|zip|rar|7z|iso|img|exe|scr|js|vbs|hta|lnk|one|xlsm|docm)"),
}
MAIL_BRANDS = tuple(b for b in BRANDS if len(b) > 3)  # two- and three-letter names (au, ups, att) are words too


def intent_tokens(norm: str, doms: list[str]) -> list[str]:
    """Tokens for the cues :data:`INTENTS` finds in the tokenised text ``norm``, and for the brands it names
    against its link domains ``doms``: ``__brand_not_in_links__`` (a brand named, links present, none on a
    domain that carries its name), ``__brand_in_lookalike_domain__`` (a brand inside a link's host but not its
    registrable domain: ``paypal.com.secure-login.top``, ``microsoft-verify.net``), ``__free_host_link__``."""
    out = [name for name, rx in INTENTS.items() if rx.search(norm)]
    words = set(_TOKEN.findall(norm))
    named = [b for b in MAIL_BRANDS if b in words]
    regs = [registered(d) for d in doms]
    if named and doms and not any(b in r for b in named for r in regs):
        out.append("__brand_not_in_links__")
    if any(b in d and not registered(d).startswith(b + ".") for d in doms for b in MAIL_BRANDS):
        out.append("__brand_in_lookalike_domain__")
    if any(free_hosted(d) for d in doms):
        out.append("__free_host_link__")
    return out
