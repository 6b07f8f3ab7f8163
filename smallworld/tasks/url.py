"""The ``url_signals`` normaliser: a URL as written, followed by tokens for the signs the ``urls`` rubric names,
read from its parts (host, registered domain, path) so that they hold whatever the source's URL shapes are.

* ``__ip_host__``, ``__punycode__`` (an ``xn--`` label), ``__free_hosting__`` (the page view's list of free and
  serverless hosts), ``__shortener__``;
* ``__brand_outside_domain__``: a brand (the page view's list, four letters or more) in the host or path
  while the registered domain does not carry it (``paypal.com.account-verify.info``, ``secure-chase.workers.dev``),
  ``__brand_in_hyphenated_domain__`` (``microsoft-login-portal.com``);
* ``__account_words__`` (login, signin, verify, account, update, secure, password, wallet, billing ...) and
  ``__account_words_off_brand__`` when they come with a brand the domain does not carry;
* ``__deep_subdomains__`` (four labels or more before the registered domain), ``__hyphenated_host__`` (two
  hyphens or more in the registered domain), ``__at_in_url__``, ``__cheap_tld__``.

Shapes that tell one corpus from another (a bare ``https://host/``, the path's length) get no token.
"""

from __future__ import annotations

import re
from .page import BRANDS, free_hosted, registered

URL_BRANDS = tuple(b for b in BRANDS if len(b) > 3)
SHORTENERS = ("bit.ly", "tinyurl.com", "t.co", "goo.gl", "ow.ly", "is.gd", "buff.ly", "rebrand.ly", "cutt.ly",
              "t.ly", "rb.gy", "shorturl.at", "tiny.cc", "s.id")
CHEAP_TLDS = ("top", "xyz", "icu", "online", "site", "click", "shop", "live", "work", "help", "link", "support",
              "rest", "buzz", "cfd", "sbs", "cyou", "monster", "quest", "info", "cc", "tk", "ml", "ga", "cf", "gq")
_ACCOUNT = re.compile(r"log-?in|sign-?in|signon|verif|account|update|secure|password|passwd|wallet|billing|"
                      r"confirm|unlock|recover|auth|webscr|banking|invoice|payment")
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")


# scheme, userinfo, host, the rest: a URL's host as urlsplit finds it, for the common shapes, at regex speed
_SPLIT = re.compile(r"^\s*(?:[a-z][a-z0-9+.\-]*://)?(?:[^@/?#\s]*@)?([^:/?#\s]*)(\S*)", re.I)
_BRAND_RX = re.compile("|".join(sorted(URL_BRANDS, key=len, reverse=True)))


def _parts(url: str) -> tuple[str, str]:
    m = _SPLIT.match(url)
    return (m.group(1).lower().strip("."), m.group(2).lower()) if m else ("", "")


def url_tokens(url: str) -> list[str]:
    host, rest = _parts(url)
    if not host:
        return []
    out = []
    reg = registered(host)
    if _IPV4.match(host):
        out.append("__ip_host__")
    if "xn--" in host:
        out.append("__punycode__")
    if free_hosted(host):
        out.append("__free_hosting__")
    if host in SHORTENERS or reg in SHORTENERS:
        out.append("__shortener__")
    sub = host[: -len(reg)].rstrip(".") if host.endswith(reg) else ""
    named = set(_BRAND_RX.findall(host)) | set(_BRAND_RX.findall(rest))
    off = [b for b in named if b not in reg]
    if off:
        out.append("__brand_outside_domain__")
    if any(b in reg and reg.split(".")[0] != b and "-" in reg for b in named):
        out.append("__brand_in_hyphenated_domain__")
    if _ACCOUNT.search(host + "/" + rest):
        out.append("__account_words__")
        if off or any(b in reg and "-" in reg for b in named):
            out.append("__account_words_off_brand__")
    if sub.count(".") >= 3:
        out.append("__deep_subdomains__")
    if reg.count("-") >= 2:
        out.append("__hyphenated_host__")
    if "@" in url:
        out.append("__at_in_url__")
    if host.rsplit(".", 1)[-1] in CHEAP_TLDS:
        out.append("__cheap_tld__")
    return out


def url_view(text: str) -> str:
    """The URL as written, then its signal tokens (what the student hashes)."""
    toks = url_tokens(text)
    return text + (" " + " ".join(toks) if toks else "")
