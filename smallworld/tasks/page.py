"""Web pages: what a phishing classifier (and its teacher) should see of a raw HTML page.

``page_facts`` parses a page with lxml (tolerant of broken markup and encodings): title, visible text, forms
(password fields, where they post), links and their domains, scripts, brands named versus the page's own
domain. ``page_view`` renders those facts as a compact text — the ``html`` task's normaliser, so the student,
the teacher prompt and ``smallworld score`` all see the same view — ending in feature tokens
(``__password_field__``, ``__form_posts_elsewhere__`` ...) that the student's hashed features pick up like
any other token.
"""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

FREE_HOSTING = ("pages.dev", "workers.dev", "r2.dev", "vercel.app", "netlify.app", "weebly.com", "weeblysite.com",
                "firebaseapp.com", "web.app", "github.io", "glitch.me", "000webhostapp.com", "wixsite.com",
                "blogspot.com", "sites.google.com", "herokuapp.com", "azurewebsites.net", "ipfs.io", "repl.co",
                "webflow.io", "godaddysites.com", "square.site", "mybluehost.me", "framer.app", "onrender.com")
BRANDS = ("microsoft", "office", "outlook", "office365", "onedrive", "sharepoint", "google", "gmail", "apple", "icloud",
          "paypal", "amazon", "netflix", "facebook", "instagram", "whatsapp", "linkedin", "dropbox", "docusign", "adobe",
          "dhl", "fedex", "ups", "usps", "chase", "wellsfargo", "bankofamerica", "citi", "hsbc", "santander", "coinbase",
          "binance", "metamask", "steam", "yahoo", "aol", "att", "verizon", "spotify", "ebay", "walmart", "wetransfer",
          "rakuten", "aeon", "mufg", "smbc", "au", "docomo", "sagawa", "yamato", "amex", "mastercard", "visa")
MAX_PAGE_BYTES = 2_000_000   # parse at most this much of a page
TEXT_CHARS = 700             # visible text kept in the view
_WS = re.compile(r"\s+")


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def registered(host: str) -> str:
    """A host's registered domain, roughly (the last two labels; three for two-letter country suffixes)."""
    parts = [p for p in host.split(".") if p]
    if len(parts) >= 3 and len(parts[-1]) == 2 and parts[-2] in ("co", "com", "ac", "or", "ne", "go", "org", "net", "gov"):
        return ".".join(parts[-3:])
    return ".".join(parts[-2:])


_FREE_SET = frozenset(FREE_HOSTING)


def free_hosted(host: str) -> bool:
    """Whether a host is on a free hosting or serverless platform (:data:`FREE_HOSTING`): it, or a domain it is
    under, is in the list."""
    i = 0
    while i >= 0:
        if host[i:] in _FREE_SET:
            return True
        i = host.find(".", i) + 1 or -1
    return False


# A tag's inside is cut at 2,000 characters before parsing: libxml2's HTML parser is quadratic in a tag's
# attribute count (a 1 MiB tag of 100,000 attributes took 110 s), and no real page needs more.
_LONG_TAG = re.compile(r"<([^<>]{0,2000})[^<>]*")


def parse_html(html: str):
    """An lxml document of at most MAX_PAGE_BYTES of ``html`` (long tags cut first), or None where it cannot be
    parsed. The one HTML parser under pages and mail's HTML parts."""
    import lxml.html
    from lxml import etree

    html = _LONG_TAG.sub(r"<\1", html[:MAX_PAGE_BYTES])
    try:
        return lxml.html.document_fromstring(html.encode("utf-8", "replace")) if html.strip() else None
    except (etree.ParserError, ValueError):
        return None


def page_facts(html: str, url: str | None = None) -> dict:
    html = html[:MAX_PAGE_BYTES]
    facts = {"title": "", "text": "", "own_host": "", "forms": [], "links": 0, "link_domains": [], "external_links": 0,
             "scripts": 0, "external_scripts": 0, "iframes": 0, "brands": [], "own_domain": "", "parse_error": False}
    doc = parse_html(html)
    if doc is None:
        facts["parse_error"] = True
        facts["text"] = _WS.sub(" ", re.sub(r"<[^>]*>", " ", html))[:TEXT_CHARS].strip()
        return facts
    base = url or ""
    if not base:
        for xp in ('//link[@rel="canonical"]/@href', '//meta[@property="og:url"]/@content', "//base/@href"):
            hit = doc.xpath(xp)
            if hit and str(hit[0]).startswith("http"):
                base = str(hit[0])
                break
    own = registered(_host(base)) if base else ""
    facts["own_domain"] = own
    facts["own_host"] = _host(base) if base else ""
    t = doc.find(".//title")
    facts["title"] = _WS.sub(" ", t.text_content()).strip()[:200] if t is not None else ""
    for bad in doc.xpath("//script|//style|//noscript|//template"):
        if bad.tag == "script":
            facts["scripts"] += 1
            src = bad.get("src") or ""
            if src.startswith(("http", "//")) and registered(_host(urljoin(base or "http://x/", src))) != own:
                facts["external_scripts"] += 1
        bad.drop_tree()
    facts["iframes"] = len(doc.xpath("//iframe"))
    text = _WS.sub(" ", doc.text_content()).strip()
    facts["text"] = text[:TEXT_CHARS]
    doms: dict[str, int] = {}
    for a in doc.xpath("//a[@href]"):
        href = (a.get("href") or "").strip()
        if not href or href.startswith(("#", "javascript:", "mailto:", "tel:")):
            continue
        facts["links"] += 1
        h = registered(_host(urljoin(base or "http://local.invalid/", href)))
        if h and h != "local.invalid":
            doms[h] = doms.get(h, 0) + 1
            if h != own:
                facts["external_links"] += 1
    facts["link_domains"] = sorted(doms, key=lambda d: -doms[d])[:8]
    for f in doc.xpath("//form"):
        action = (f.get("action") or "").strip()
        ah = registered(_host(urljoin(base or "http://local.invalid/", action))) if action else own
        facts["forms"].append({
            "action_domain": "" if ah == "local.invalid" else ah,
            "password": bool(f.xpath(".//input[translate(@type,'PASSWORD','password')='password']")),
            "email": bool(f.xpath(".//input[translate(@type,'EMAIL','email')='email' or contains(translate(@name,'EMAIL','email'),'mail')]")),
            "card": bool(f.xpath(".//input[contains(translate(@name,'CARDNUMBERCV','cardnumbercv'),'card') or "
                                 "contains(translate(@name,'CARDNUMBERCV','cardnumbercv'),'cvv')]")),
            "inputs": len(f.xpath(".//input")),
            "php": action.lower().endswith(".php"),
        })
    # password fields outside any form count too (script-driven fake logins)
    if not facts["forms"] and doc.xpath("//input[translate(@type,'PASSWORD','password')='password']"):
        facts["forms"].append({"action_domain": "", "password": True, "email": False, "card": False, "inputs": 1, "php": False})
    low = (facts["title"] + " " + text[:5000]).lower()
    facts["brands"] = [b for b in BRANDS if re.search(rf"\b{re.escape(b)}\b", low)][:6]
    return facts


def feature_tokens(f: dict) -> list[str]:
    """The structural features, as tokens the student hashes like words."""
    own = f["own_domain"]
    toks = []
    if any(x["password"] for x in f["forms"]):
        toks.append("__password_field__")
    if any(x["card"] for x in f["forms"]):
        toks.append("__card_field__")
    if any(x["action_domain"] and own and x["action_domain"] != own for x in f["forms"]):
        toks.append("__form_posts_elsewhere__")
    if any(x["php"] for x in f["forms"]):
        toks.append("__form_posts_php__")
    if f["own_host"] and free_hosted(f["own_host"]):
        toks.append("__free_hosting__")
    if f["brands"] and own and not any(b in own.replace("-", "") for b in f["brands"]):
        toks.append("__brand_not_own_domain__")
    if f["links"] == 0:
        toks.append("__no_links__")
    elif f["external_links"] / max(f["links"], 1) > 0.8:
        toks.append("__links_mostly_external__")
    if f["links"] < 5:
        toks.append("__few_links__")
    if f["iframes"]:
        toks.append("__iframe__")
    if len(f["text"]) < 200:
        toks.append("__little_text__")
    if f["parse_error"]:
        toks.append("__unparseable__")
    return toks


def page_view(html: str, url: str | None = None) -> str:
    """A compact text view of a page: title, forms, links, brands, visible text, then feature tokens."""
    f = page_facts(html, url)
    forms = "; ".join(f"{'password ' if x['password'] else ''}{'card ' if x['card'] else ''}"
                      f"form posting to {x['action_domain'] or 'this site'}" for x in f["forms"][:3]) or "none"
    parts = [f"title: {f['title']}", f"domain: {f['own_domain'] or 'unknown'}", f"forms: {forms}",
             f"links: {f['links']} ({f['external_links']} external) to {' '.join(f['link_domains']) or 'nothing'}",
             f"scripts: {f['scripts']} ({f['external_scripts']} external)",
             f"brands named: {' '.join(f['brands']) or 'none'}", f"text: {f['text']}",
             " ".join(feature_tokens(f))]
    return "\n".join(parts)
