"""The urls task's view: signal tokens read from a URL's parts."""

import numpy as np

from smallworld.tasks.url import url_tokens, url_view


def test_lures_carry_their_signs_and_the_brands_own_urls_do_not():
    assert {"__brand_outside_domain__", "__account_words__", "__account_words_off_brand__", "__cheap_tld__"} <= \
        set(url_tokens("https://www.paypal.com.secure-account-review.top/webapps/signin"))
    assert {"__free_hosting__", "__brand_outside_domain__"} <= set(url_tokens("https://chase-verify.workers.dev/"))
    assert "__brand_in_hyphenated_domain__" in url_tokens("https://microsoft-login-portal.com/common/oauth2")
    assert "__ip_host__" in url_tokens("http://45.133.1.20/wellsfargo/login.php")
    assert "__punycode__" in url_tokens("http://xn--pypal-4ve.com/signin")
    assert "__shortener__" in url_tokens("https://bit.ly/3xYz9Qa")
    assert "__deep_subdomains__" in url_tokens("http://a.b.c.d.example-host.net/")
    for own in ("https://www.paypal.com/signin?returnUri=%2Fmyaccount",
                "https://login.microsoftonline.com/common/oauth2/v2.0/authorize?client_id=abc",
                "https://secure.chase.com/web/auth/dashboard", "https://docs.python.org/3/library/json.html"):
        t = set(url_tokens(own))
        assert not t & {"__brand_outside_domain__", "__account_words_off_brand__", "__brand_in_hyphenated_domain__",
                        "__free_hosting__", "__cheap_tld__"}, (own, t)


def test_shapes_that_tell_sources_apart_get_no_token():
    """A bare https://host/ (how one benign corpus writes every URL) and a long path are not signals."""
    assert url_tokens("https://example-shop.de/") == url_tokens("https://example-shop.de/catalog/2024/item/98231?ref=x")
    assert url_view("https://example-shop.de/") == "https://example-shop.de/"


def test_junk_is_not_an_error():
    for junk in ("", "   ", "http://[::1", "not a url at all", "\x00\x01", "http://" + "a" * 5000):
        assert isinstance(url_view(junk), str)


def test_the_view_moves_a_seed_student_toward_the_rubric(data_dir):
    """Trained on the same 300 train rows, the student with the view scores lures with a brand outside their
    domain above the same student without it (the tokens carry weight the n-grams alone do not)."""
    from dataclasses import replace

    from smallworld import data as D
    from smallworld.pipeline import onehot, stratified_sample
    from smallworld.student.linear import LinearStudent
    from smallworld.tasks import load_task

    task = load_task("urls")
    seed = stratified_sample(list(D.iter_rows(str(data_dir / "urls" / "train.jsonl.gz"))), 300, 0)
    lures = [f"https://{b}.com.account-{i}-verify.top/signin" for i, b in enumerate(("paypal", "netflix", "amazon"))]
    own = ["https://www.paypal.com/signin", "https://www.netflix.com/login", "https://www.amazon.com/ap/signin"]
    gap = []
    for norm in ("none", "url_signals"):
        t = replace(task, normaliser=norm)
        m = LinearStudent(t.labels, dict(t.features)).fit([t.view(r) for r in seed],
                                                          onehot(t, [r["label"] for r in seed]))
        p = m.predict_proba([t.normalise(u) for u in lures + own])[:, t.pos_index]
        gap.append(np.mean(p[:3]) - np.mean(p[3:]))
    assert gap[1] > gap[0]


def test_the_teacher_reads_the_url_as_written_whatever_the_students_view():
    """The signal tokens are for hashing: a task with the view shows the teacher the URL itself, so its prompt
    and its cached answers are the same as the raw-text task's."""
    from dataclasses import replace

    from smallworld.tasks import load_task

    raw = load_task("urls")
    signals = replace(raw, normaliser="url_signals")
    lure = "https://www.paypal.com.secure-account-review.top/webapps/signin"
    assert signals.view(lure) != lure and "__cheap_tld__" in signals.view(lure)
    assert signals.prompt_view(lure) == raw.prompt_view(lure) == lure
