"""Emails and web pages: parsers on well-formed and malformed input, the views the student and teacher see,
and `smallworld score` on .eml files, mbox files and directories of HTML pages."""

import json
import mailbox

import numpy as np

from smallworld import data as D
from smallworld.tasks import load_task
from smallworld.tasks.mail import email_view, message_row, parse_message
from smallworld.tasks.page import page_facts, page_view
from tests.conftest import cli

PHISH_EML = b"""From: "IT Service Desk" <helpdesk@contoso-support.xyz>
Reply-To: recovery@mailbox-verify.top
Return-Path: <bounce@mailbox-verify.top>
Received: from mx1.mailbox-verify.top (203.0.113.9) by mx.contoso.com
Received: from localhost by mx1.mailbox-verify.top
Authentication-Results: mx.contoso.com; spf=fail smtp.mailfrom=mailbox-verify.top; dkim=none; dmarc=fail
Subject: =?utf-8?q?Action_required=3A_mailbox_quota_exceeded?=
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="XX"

--XX
Content-Type: multipart/alternative; boundary="YY"

--YY
Content-Type: text/html; charset=utf-8

<html><body><p>Your mailbox is full. <a href="https://login-microsoftonline.mailbox-verify.top/owa?u=1">Sign in</a>
to keep receiving mail.</p><p><a href="http://203.0.113.9/keep">Keep my mail</a></p></body></html>
--YY--
--XX
Content-Type: application/octet-stream; name="invoice.html"
Content-Disposition: attachment; filename="invoice.html"
Content-Transfer-Encoding: base64

PGh0bWw+PC9odG1sPg==
--XX--
"""


def test_parse_a_phishing_message():
    f = parse_message(PHISH_EML)
    assert f["subject"] == "Action required: mailbox quota exceeded"
    assert f["auth"] == {"spf": "fail", "dkim": "none", "dmarc": "fail"}
    assert f["received_hops"] == 2
    assert "login-microsoftonline.mailbox-verify.top" in f["link_domains"] and "203.0.113.9" in f["link_domains"]
    assert f["attachments"] == [{"name": "invoice.html", "type": "application/octet-stream"}]
    assert "Your mailbox is full" in f["body"] and "<p>" not in f["body"]
    row = message_row(PHISH_EML, "m1")
    assert row["text"].startswith("Subject: Action required") and row["meta"]["reply_to_differs"] is True
    v = email_view(row["text"])
    assert v.startswith("subject : action required") and "__ip_link__" in v and "__links_2__" in v


def test_malformed_messages_never_raise():
    bad = [b"", b"\x00\x01\x02 not a mail", b"Subject: \xff\xfe broken bytes\n\nbody \xc3\x28 here",
           b"Content-Type: text/plain; charset=x-no-such-charset\nSubject: hi\n\n\xe9t\xe9",
           b"Content-Type: text/plain\nContent-Transfer-Encoding: base64\nSubject: b64\n\n!!!not base64!!!",
           b"Content-Type: multipart/mixed; boundary=\"never-closed\"\nSubject: mp\n\n--never-closed\nContent-Type: text/html\n\n<p>x",
           b"From: <<<@>>>\nReply-To: \nSubject: " + b"A" * 100000 + b"\n\nbody"]
    for raw in bad:
        row = message_row(raw, "x")
        assert isinstance(row["text"], str) and row["text"].startswith("Subject:")
        email_view(row["text"])


def test_mbox_and_eml_files_read_as_rows(tmp_path):
    box = mailbox.mbox(tmp_path / "in.mbox")
    for i in range(3):
        box.add(f"From: a{i}@x.org\nSubject: note {i}\n\nhello number {i}\n".encode())
    box.add(PHISH_EML)
    box.close()
    (tmp_path / "one.eml").write_bytes(PHISH_EML)
    rows = D.read_rows(str(tmp_path))
    assert len(rows) == 5
    assert sorted(r["text"].splitlines()[0] for r in rows)[:3] == ["Subject: Action required: mailbox quota exceeded"] * 2 + ["Subject: note 0"]
    assert all("meta" in r for r in rows)


PAGE = """<html><head><title>Sign in to your account</title><link rel="canonical" href="https://secure-login.pages.dev/"></head>
<body><h1>Microsoft</h1><form action="https://collector.ru/post.php" method="post"><input type="email" name="login">
<input type="PASSWORD" name="passwd"><button>Next</button></form><a href="https://www.microsoft.com/privacy">Privacy</a>
<script src="https://cdn.evil-cdn.net/x.js"></script><div>unclosed <b>markup <i>everywhere"""


def test_page_facts_and_view():
    f = page_facts(PAGE)
    assert f["title"] == "Sign in to your account" and f["own_domain"] == "pages.dev"
    assert f["forms"][0]["password"] and f["forms"][0]["action_domain"] == "collector.ru" and f["forms"][0]["php"]
    assert f["external_scripts"] == 1 and "microsoft" in f["brands"]
    v = page_view(PAGE)
    for tok in ("__password_field__", "__form_posts_elsewhere__", "__free_hosting__", "__brand_not_own_domain__"):
        assert tok in v, tok
    for junk in ("", "\x00\x00", "<<<>>>", "<html>" * 10000, "not html at all", "<meta charset='x-unknown'><p>\udcff"):
        assert isinstance(page_view(junk), str)


def test_real_phishing_pages_show_their_features_more_than_articles(data_dir):
    rows = list(D.iter_rows(str(data_dir / "html" / "train.jsonl.gz")))
    rate = {}
    for lab in ("phishing", "benign"):
        views = [page_view(r["text"]) for r in rows if r["label"] == lab]
        rate[lab] = np.mean([("__password_field__" in v) or ("__free_hosting__" in v) for v in views])
    assert rate["phishing"] > rate["benign"] + 0.2, rate


def test_score_takes_html_directories_and_eml_files(tmp_path, data_dir):
    model = tmp_path / "html_model"
    cli("train", "--task", "html", "--labelled", data_dir / "html" / "train.jsonl.gz", "--teacher", "none", "--out", model)
    pages = tmp_path / "pages"
    pages.mkdir()
    dev = list(D.iter_rows(str(data_dir / "html" / "dev.jsonl.gz")))[:12]
    for i, r in enumerate(dev):
        (pages / f"p{i:02d}.html").write_text(r["text"], encoding="utf-8")
    (pages / "broken.html").write_bytes(b"<html><body><form><input type=password>\xff\xfe")
    from_dir = [json.loads(x) for x in cli("score", model, pages).stdout.splitlines()]
    assert len(from_dir) == 13
    D.write_jsonl(tmp_path / "dev.jsonl", [{"id": f"{pages}/p{i:02d}.html", "text": r["text"]} for i, r in enumerate(dev)])
    from_jsonl = {r["id"]: r["score"] for r in map(json.loads, cli("score", model, tmp_path / "dev.jsonl").stdout.splitlines())}
    for r in from_dir:
        if r["id"] in from_jsonl:
            assert abs(r["score"] - from_jsonl[r["id"]]) < 1e-6
    # emails: a model trained on the corpora scores raw .eml and mbox input
    em = tmp_path / "email_model"
    cli("train", "--task", "emails", "--labelled", data_dir / "emails" / "train.jsonl.gz", "--seed-size", "600",
        "--teacher", "none", "--out", em)
    (tmp_path / "m.eml").write_bytes(PHISH_EML)
    out = [json.loads(x) for x in cli("score", em, tmp_path / "m.eml", "--probs").stdout.splitlines()]
    assert len(out) == 1 and set(out[0]["probs"]) == {"phishing", "spam", "ham"}
    # multi-class evaluate: phishing against the rest as the headline, every class beside it
    ev = json.loads(cli("evaluate", em, data_dir / "emails" / "dev.jsonl.gz", "--json").stdout)
    assert ev["roc_auc"] > 0.9 and set(ev["per_class"]) == {"phishing", "spam", "ham"}


def test_email_view_keeps_subject_start_and_links_of_long_mail():
    from smallworld.tasks.mail import SIGNAL_REPEAT

    body = " ".join(f"word{i}" for i in range(3000))
    text = f"Subject: Final notice\n{body} visit http://pay-now.example-billing.top/x today"
    v = email_view(text)
    assert v.startswith("subject : final notice") and "pay-now.example-billing.top" in v and len(v) < 6000
    task = load_task("emails")  # its view: this one with intent tokens, found in the whole message ("today"),
    assert email_view(text, intent=True) == v + " __urgency__"
    assert v.endswith(" __links_1__")  # and the link host's URL signs, every feature token SIGNAL_REPEAT times
    assert task.normalise(text) == email_view(text, intent=True, link_signals=True) == \
        v[:-len(" __links_1__")] + " __links_1__ __urgency__ __link_account_words__ __link_cheap_tld__" * SIGNAL_REPEAT


def test_intent_tokens_name_what_a_message_asks_for_and_brand_link_mismatches():
    from smallworld.tasks import load_task
    from smallworld.tasks.mail import email_intent_view

    def tokens(text):
        return {t for t in email_intent_view(text).split() if t.startswith("__")}

    lure = ("Subject: Your PayPal account is limited\n\nWe noticed unusual activity. Log in within 24 hours to "
            "confirm your identity or your account will be suspended: https://paypal.com.account-review.top/signin")
    t = tokens(lure)
    assert {"__ask_credentials__", "__urgency__", "__threat__", "__brand_not_in_links__",
            "__brand_in_lookalike_domain__"} <= t
    real = ("Subject: Your PayPal receipt\n\nYou sent $24.00 to Blue Bottle Coffee. View the details at "
            "https://www.paypal.com/myaccount/transactions")
    t = tokens(real)
    assert "__brand_not_in_links__" not in t and "__brand_in_lookalike_domain__" not in t and "__threat__" not in t
    fraud = "Subject: updated bank details\n\nPlease send the overdue invoice payment by wire transfer to our new IBAN."
    assert "__ask_payment__" in tokens(fraud) and "__ask_credentials__" not in tokens(fraud)
    assert "__ask_gift_card__" in tokens("Subject: quick favour\n\ncan you buy 5 google play cards for me asap")
    assert "__ask_code__" in tokens("Subject: hi\n\nplease read me the 6-digit verification code you just got")
    assert "__risky_attachment__" in tokens("Subject: remittance\n\nsee attached Remittance_0932.html for details")
    assert "__free_host_link__" in tokens("Subject: doc\n\nopen https://shared-doc-7731.pages.dev/view")
    bec = "Subject: quick one\n\nI'm in back-to-back meetings and can't call. Keep this between us for now."
    assert "__secrecy__" in tokens(bec) and "__secrecy__" not in tokens("Subject: lunch\n\nmeet at noon?")
    w2 = "Subject: hey\n\ncan u send me the W-2s and each one's social security number today"
    assert "__ask_personal_data__" in tokens(w2) and "__ask_personal_data__" not in tokens(fraud)
    assert "__ask_personal_data__" in tokens("Subject: wallet\n\nenter your Secret Recovery Phrase to restore")
    # the emails task hashes these tokens (and the link signs after them)
    assert load_task("emails").view(lure).startswith(email_intent_view(lure) + " __link_")


def test_email_signals_add_each_link_hosts_url_signs_and_leave_the_teachers_prompt_alone():
    from smallworld.tasks import load_task
    from smallworld.tasks.mail import SIGNAL_REPEAT, email_intent_view, email_signals_view

    def links(text):
        return {t for t in email_signals_view(text).split() if t.startswith("__link_")}

    lure = ("Subject: Action required\n\nKeep your password: https://brightlane-com.sharepoint-auth-login.com/keep "
            "or http://203.0.113.9/x and https://paypal.com.account-review.top/signin")
    assert {"__link_hyphenated_host__", "__link_account_words__", "__link_ip_host__", "__link_cheap_tld__",
            "__link_brand_outside_domain__"} <= links(lure)
    real = ("Subject: Your PayPal receipt\n\nYou sent $24.00. View the details at "
            "https://www.paypal.com/myaccount/transactions or https://github.com/settings")
    assert links(real) == set()
    assert links("Subject: lunch\n\nsee you at noon") == set()
    # the signals are the student's: the teacher reads the same prompt as under email_intent (its cache holds)
    sig = load_task("emails")  # the built-in task's view
    assert sig.normaliser == "email_signals" and sig.normalise(lure).startswith(email_intent_view(lure) + " __link_")
    # the student's feature tokens are written SIGNAL_REPEAT times, the teacher's once
    ask = email_signals_view(lure).split().count("__ask_credentials__")
    assert ask == SIGNAL_REPEAT > 1 and email_intent_view(lure).split().count("__ask_credentials__") == 1
    assert sig.prompt_view(lure) == email_intent_view(lure)
