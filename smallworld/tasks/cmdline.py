"""Command lines: what a command *does*, not how a corpus wrote it (the ``cmdlines`` task's normaliser).

``clean`` rewrites a command line into a form that no documentation corpus and no single host can be told
apart by: documentation placeholders (``path/to/file``, ``<file>``, ``{PATH}``, ``{{name}}``, ``[-a|--all]``,
``example.com``, ``attacker.com``) and volatile parts (GUIDs, long hex, long numbers, user names in profile
paths, IP addresses, URL hosts) become fixed tokens (``<path>``, ``<arg>``, ``<guid>``, ``<hex>``, ``<num>``,
``<user>``, ``<ip>``, ``<host>``). The teacher is asked about this form.

``behaviour`` lists what the command does, as words the student hashes like any other token (each a single
run of letters, prefixed ``swf``): the programs it runs (basename, case-folded, ``.exe`` stripped), a pipe into
an interpreter, ``/dev/tcp`` redirections and socket one-liners, downloads, URLs to raw IPs or to scripts and
executables, encoded or obfuscated payloads, hidden windows and execution-policy bypasses, shells spawned from
other programs, credential stores, log clearing, security tools turned off, persistence places, remote
execution, account creation, and paths by class (temp, public/ProgramData, startup, system, program files,
user profile, share).

``cmdline_view`` (the student's view) is ``clean`` followed by ``behaviour``'s words.
"""

from __future__ import annotations

import re

_WS = re.compile(r"\s+")

# -- documentation placeholders and volatile parts ---------------------------------------------------------
_SUBS: list[tuple[re.Pattern, str]] = [
    # tldr's option alternatives "[-a|--all]" -> the short form; "{{name}}" and "<name>" -> <arg>
    (re.compile(r"\[(-{1,2}[\w-]+)(?:\|-{1,2}[\w-]+)+\]"), r"\1"),
    (re.compile(r"\{\{[^{}]{1,80}\}\}"), "<arg>"),
    (re.compile(r"<(?!path>|arg>|guid>|hex>|num>|user>|ip>|host>)[^<>\s]{1,60}>"), "<arg>"),
    # LOLBAS "{PATH}", "{REMOTEURL}" ...
    (re.compile(r"(?<!\$)\{[A-Z][A-Z_:]{2,40}\}"), "<arg>"),
    # documentation paths: path/to/file, /path/to/input-file, path\to\file.ext
    (re.compile(r"(?:[A-Za-z]:)?[\\/]?\bpath[\\/]to[\\/][\w.\-*{}\\/]*", re.I), "<path>"),
    (re.compile(r"\{[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\}"), "<guid>"),
    (re.compile(r"\b[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\b"), "<guid>"),
    (re.compile(r"\b(?=[0-9A-Fa-f]*\d)(?=[0-9A-Fa-f]*[A-Fa-f])[0-9A-Fa-f]{16,}\b"), "<hex>"),
    # user names in profile paths
    (re.compile(r"(?i)(\\users\\)(?!public\\|default\\|all users\\)[^\\\"'\s]+"), r"\1<user>"),
    (re.compile(r"(/home/)[\w.\-]+"), r"\1<user>"),
]
_URL = re.compile(r"\b((?:https?|ftp|tcp|udp)://)([^/\s:'\"\\)]+)(:\d+)?([^\s'\")]*)", re.I)
_IPV4 = re.compile(r"(?<![\w.])(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?![\w.])")
_LONGNUM = re.compile(r"(?<![\w.])\d{6,}(?![\w.])")
_DOC_HOST = re.compile(r"(?i)\b(?:[\w-]+\.)*(?:example|attacker|evil|malicious|badsite|test|testsite)\."
                       r"(?:com|org|net|local)\b|\b(?:attacker|evil)(?:[._-]?(?:host|server|ip|site|domain))?\b")
_EXEC_EXT = re.compile(r"\.(?:sh|ps1|psm1|exe|dll|hta|sct|vbs|vbe|js|jse|bat|cmd|msi|py|pl|elf|bin|jar|scr)\b", re.I)


def _ip_class(a: int, b: int) -> str:
    if a == 127:
        return "loopback"
    if a == 10 or (a == 172 and 16 <= b <= 31) or (a == 192 and b == 168):
        return "private"
    return "public"


def clean(text: str) -> str:
    """The command line with placeholders and volatile parts replaced by fixed tokens (see the module)."""
    t = _WS.sub(" ", text.replace("\x00", " ")).strip()
    for rx, rep in _SUBS:
        t = rx.sub(rep, t)
    t = _DOC_HOST.sub("<host>", t)
    t = _URL.sub(lambda m: m.group(1).lower() + ("<ip>" if _IPV4.fullmatch(m.group(2)) else "<host>")
                 + (m.group(3) or "") + m.group(4), t)
    t = _IPV4.sub("<ip>", t)
    return _LONGNUM.sub("<num>", t)


# -- behaviour ---------------------------------------------------------------------------------------------
_SEGMENT = re.compile(r"\|\||&&|(?<![\\>&<0-9])[|;&](?![>&])|\n|\$\(|`")
_PROG = re.compile(r"""^\s*(?:\(|\{|!|sudo\s+(?:-[ugCDhprT]\s+\S+\s+|-\S+\s+)*|start\s+(?:"[^"]*"\s+)?|call\s+|exec\s+|nohup\s+|env\s+(?:\w+=\S*\s+)*|
                       time\s+|nice\s+(?:-n\s*-?\d+\s+)?|\w+=\S*\s+)*(?:"([^"]+)"|'([^']+)'|((?:[A-Za-z]:)?(?:<user>|[^\s"'|;&<>()])+))""", re.X)
_INTERP = {"sh", "bash", "zsh", "dash", "ksh", "python", "python2", "python3", "perl", "ruby", "php", "node", "iex",
           "powershell", "pwsh", "cmd", "invoke-expression", "lua", "tclsh", "sudo"}
_B64 = re.compile(r"[A-Za-z0-9+/]{40,}={0,2}")
# The behaviour and path-class patterns are matched against the lowercased line, so every letter they spell is
# lowercase (tests/test_cmdline_view.py checks it): the same matches as re.I, in about half the time.
_PATTERNS: list[tuple[str, re.Pattern]] = [(name, re.compile(rx)) for name, rx in [
    ("devtcp", r"/dev/(?:tcp|udp)/"),
    ("socket", r"socket\.socket|fsockopen|tcpsocket|/inet/tcp/|sockaddr_in|net\.sockets\.tcpclient|"
               r"\bsocat\b.*\bexec:|\b(?:nc|ncat|netcat)\b[^|;&]*\s-[ec]\b|mkfifo"),
    ("download", r"\b(?:curl|wget|fetch|tftp|aria2c)\b|invoke-webrequest|\biwr\b|\birm\b|invoke-restmethod|"
                 r"downloadstring|downloadfile|downloaddata|net\.webclient|urlcache|bitsadmin\s.*?/transfer|"
                 r"start-bitstransfer|urlopen|urlretrieve|msxml2\.xmlhttp|winhttprequest"),
    ("encoded", r"\s-(?:e|ec|en|enc|enco|encodedcommand)\s+[A-Za-z0-9+/=]{16,}|frombase64string|base64\s+(?:-d|--decode)|"
                r"certutil[^|;&]*\s-decode|\bxxd\s+-r|\[convert\]::"),
    ("hidden", r"-w(?:indowstyle)?\s+(?:hidden|1)\b|-nop\b|-noni\b|\bvbhide\b|,\s*0\s*[:)]|createnowindow"),
    ("bypass", r"-ep?\s+bypass|-ex(?:ec|ecutionpolicy)\s+bypass|amsi|-sta\b"),
    ("shell", r"(?:^|[\s'\"(=:!])/bin/(?:ba|da|z)?sh\b|\bcmd(?:\.exe)?\s+/[ck]\b|system\(\s*[\"']/bin|"
              r"-exec\s+/bin|os\.system|subprocess|pty\.spawn|\bexec[(]|\bspawn\b"),
    ("credstore", r"\blsass\b|\\sam\b|\bhklm\\sam\b|\bhklm\\security\b|ntds\.dit|\bntds\b|/etc/shadow|\bid_rsa\b|"
                  r"keychain|login data|sekurlsa|mimikatz|lazagne|\bcredentials?\b|authorized_keys|\.aws\b|"
                  r"minidump|procdump|unshadow|password"),
    ("logclear", r"wevtutil\s+(?:cl|clear-log)|clear-eventlog|history\s+-c|histfile|bash_history|/var/log/|"
                 r"deletejournal|auditpol\s+/(?:clear|set)"),
    ("securityoff", r"disablerealtimemonitoring|add-mppreference|set-mppreference|setenforce\s+0|"
                    r"advfirewall\s+set\s+\w+\s+state\s+off|windefend|stop\s+auditd|ld\.so\.preload|"
                    r"recoveryenabled\s+no|bootstatuspolicy|delete\s+shadows|shadowcopy\s+delete|ufw\s+disable"),
    ("persist", r"schtasks\s.*?/create|\\currentversion\\run|\bsc(?:\.exe)?\s+(?:create|config)\b|new-service|"
                r"crontab|/etc/cron|systemctl\s+enable|\\startup\\|winlogon|image file execution options|"
                r"__eventfilter|\.bashrc|\.profile\b|rc\.local|launchagents|launchdaemons|authorized_keys"),
    ("remoteexec", r"/node:|\bpsexec|invoke-command\s.*?-computername|\\\\[\w.\-<>]+\\(?:admin|c|ipc)\$|"
                   r"process\s+call\s+create|enter-pssession|winrs\b|\bssh\b.*\s['\"].*\|\s*(?:ba)?sh"),
    ("useradd", r"\bnet\s+user\s.*?/add|\buseradd\b|\badduser\b|localgroup\s+administrators\s.*?/add|"
                r"new-localuser|:0:0:|-u\s+0\b"),
    ("suid", r"chmod\s+(?:[ug]?\+s|[24]7\d\d)\b|-perm\s+-?[24]000|setuid"),
    ("wipe", r"\bcipher\s+/w|\bdd\s+if=/dev/(?:zero|urandom)\s+of=/dev/|\bshred\b|openssl\s+enc\b|vssadmin\s+delete"),
    ("exfil", r"curl[^|;&]*\s-(?:f|t|d|-data[\w-]*|-upload-file)\s|transfer\.sh|rclone\s+copy|\bscp\b[^|;&]*@<ip>|"
              r"\.exfil|dig\s+\$\("),
]]
_PATH_CLASSES: list[tuple[str, re.Pattern]] = [(name, re.compile(rx)) for name, rx in [
    ("pathtemp", r"\\temp\\|%temp%|\$env:temp|\\appdata\\local\\temp|(?:^|[\s'\"=:])/tmp/|/var/tmp/|/dev/shm/"),
    ("pathpublic", r"\\users\\public\\|\\programdata\\|%public%|%programdata%"),
    ("pathappdata", r"\\appdata\\|%appdata%|%localappdata%"),
    ("pathsystem", r"\\windows\\system32\\|\\windows\\syswow64\\|\\windows\\(?!temp)|(?:^|[\s'\"])/(?:usr/)?s?bin/"),
    ("pathprogramfiles", r"\\program files(?: \(x86\))?\\"),
    ("pathhiddenunix", r"/(?:tmp|var/tmp|dev/shm)/\.[\w.-]+|/\.\w[\w.-]*/"),
    ("pathshare", r"\\\\[\w.\-<>]+\\[\w$]+"),
]]


_SLASH = re.compile(r"[\\/]")
_RUN_EXT = re.compile(r"\.(exe|com|bat|cmd)$")
_EXE = re.compile(r"(?i)\.exe$")
_NOT_ALNUM = re.compile(r"[^a-z0-9]")
_PIPE_INTO = re.compile(r"\|\s*(?:sudo\s+)?([\w./\\-]+)")
_OBFUSCATED = re.compile(r"\^[a-z]|\"\s*\+\s*\"|`[a-z]|\$\{?env:comspec|-join|\[char\]", re.I)


def _image_name(path: str) -> str:
    """A program's basename as the student's words spell it: case-folded, ``.exe`` (``.com``, ``.bat``, ``.cmd``)
    stripped, letters and digits only, at most 24."""
    name = _RUN_EXT.sub("", _SLASH.split(path)[-1].lower())
    return _NOT_ALNUM.sub("", name)[:24]


def _programs(t: str) -> list[str]:
    """Basenames (case-folded, .exe stripped) of the programs each segment of the command line runs."""
    out = []
    for seg in _SEGMENT.split(t):
        m = _PROG.match(seg)
        if not m:
            continue
        name = _image_name(m.group(1) or m.group(2) or m.group(3))
        if name and not name.isdigit():
            out.append(name)
    return out


def behaviour(text: str, cleaned: str | None = None) -> list[str]:
    """What the command line does, as ``swf...`` words (see the module); ``cleaned`` is ``clean(text)`` where the
    caller has it already."""
    t = clean(text) if cleaned is None else cleaned
    words = [f"swfprog{p}" for p in dict.fromkeys(_programs(t))]
    low = t.lower()
    pipes = _PIPE_INTO.findall(low)
    if any(_SLASH.split(p)[-1].removesuffix(".exe") in _INTERP for p in pipes):
        words.append("swfpipeinterp")
    words += [f"swf{name}" for name, rx in _PATTERNS if rx.search(low)]
    words += [f"swf{name}" for name, rx in _PATH_CLASSES if rx.search(low)]
    for m in _URL.finditer(text):
        words.append("swfurl")
        if _IPV4.fullmatch(m.group(2)):
            words.append("swfurlip")
        if _EXEC_EXT.search(m.group(4) or ""):
            words.append("swfurlexec")
    for m in _IPV4.finditer(text):
        if all(int(x) <= 255 for x in m.groups()):
            words.append(f"swfip{_ip_class(int(m.group(1)), int(m.group(2)))}")
    if _B64.search(text):
        words.append("swfbase64blob")
    if _OBFUSCATED.search(text):
        words.append("swfobfuscated")
    return list(dict.fromkeys(words))


# What the student never sees: the placeholder tokens (a documentation corpus's signature whose direction
# differs between corpora: tldr's benign "path/to/file", GTFOBins' malicious "/path/to/input-file") and the
# sigil of variable references ("$" marks PowerShell in the attack corpora and plain shell scripts elsewhere).
_STUDENT_DROP = re.compile(r"<(?:path|arg)>|\$(?=[{(\w])")
# The folder of the program a line starts with: endpoints log "C:\Windows\system32\rundll32.exe" where documentation
# writes "rundll32", for attacks and background alike; the path class words keep where it lived.
_LEAD_IMAGE = re.compile(r"""^\s*(?:"([^"]*)"|((?:[A-Za-z]:|\\\\)[^"]*?\.(?:exe|com|bat|cmd))(?=\s|$)|(\S+))""", re.I)


def _lead_program(t: str) -> str:
    """``t`` with its first program's folder (and ``.exe``) dropped: ``"C:\\...\\x.exe" /s`` -> ``x /s``; an
    unquoted image path with spaces (``C:\\Program Files\\...\\x.exe``) is read up to its extension."""
    m = _LEAD_IMAGE.match(t)
    if not m:
        return t
    tok = next(g for g in m.groups() if g is not None)
    name = _SLASH.split(tok)[-1] or tok
    return _EXE.sub("", name) + t[m.end():]


def cmdline_view(text: str) -> str:
    """The student's view: the cleaned command line without placeholder tokens, then its behaviour words."""
    t = clean(text)
    return _lead_program(_STUDENT_DROP.sub("", t)) + " ## " + " ".join(behaviour(text, t))


# -- the event's context (a task with ``context``: an endpoint log's image, parent, parent command line, user) ---
_PARENT_KINDS = {
    "office": {"winword", "excel", "powerpnt", "outlook", "msaccess", "mspub", "onenote", "visio", "wordpad"},
    "browser": {"chrome", "msedge", "firefox", "iexplore", "brave", "opera", "safari", "chromium"},
    "scripthost": {"wscript", "cscript", "mshta"},
    "shell": {"cmd", "powershell", "pwsh", "bash", "sh", "dash", "zsh", "ksh", "fish"},
    "system": {"services", "svchost", "wininit", "winlogon", "smss", "userinit", "taskeng", "taskhostw", "wmiprvse",
               "systemd", "init", "cron", "crond", "anacron", "launchd", "atd", "sshd"},
    "explorer": {"explorer"},
    "webserver": {"w3wp", "httpd", "apache2", "nginx", "phpfpm", "php", "tomcat", "java", "node", "iisexpress"},
}
_KIND_OF = {name: kind for kind, names in _PARENT_KINDS.items() for name in names}
_SYSTEM_USER = re.compile(r"(?i)^(?:nt authority\\system|system|root|0|uid=0)$")
_SERVICE_USER = re.compile(r"(?i)^(?:nt authority\\(?:local|network) service|(?:local|network) service|www-data|nobody|"
                           r"daemon|apache|nginx|postgres|mysql|_[\w-]+)$")


def _path_class(path: str) -> str:
    low = path.strip().strip('"').lower()
    return next((name for name, rx in _PATH_CLASSES if rx.search(low)), "pathother")


def context_words(text: str, event: dict) -> list[str]:
    """The event's fields as words the student hashes, apart from the command line's own words: where the image
    lives (``swfimgpathsystem``), the parent (``swfparentwinword``), its kind and folder (``swfparentkindoffice``,
    ``swfparentpathprogramfiles``), the parent-to-child pair (``swfpairofficetopowershell``), what the parent's
    command line does (``swfpcencoded``) and the user's kind (``swfusersystem``, ``swfuserservice``,
    ``swfuserperson``)."""
    words = []
    image, parent = event.get("image"), event.get("parent_image")
    if image:
        words.append(f"swfimg{_path_class(image)}")
    child = _image_name(image.strip().strip('"')) if image else next(iter(_programs(clean(text))), "")
    if parent:
        name = _image_name(parent.strip().strip('"'))
        kind = _KIND_OF.get(name)
        words += [f"swfparent{name}", f"swfparent{_path_class(parent)}"]
        if kind:
            words.append(f"swfparentkind{kind}")
        if child:
            words.append(f"swfpair{kind or name}to{child}")
    if event.get("parent_command_line"):
        words += [f"swfpc{w[3:]}" for w in behaviour(event["parent_command_line"]) if not w.startswith("swfprog")]
    user = event.get("user")
    if user:
        u = user.strip()
        words.append("swfusersystem" if _SYSTEM_USER.match(u) else "swfuserservice" if _SERVICE_USER.match(u)
                     else "swfuserperson")
    return list(dict.fromkeys(words))


def cmdline_context_view(text: str, event: dict) -> str:
    """The student's view of a command line with its event: ``cmdline_view`` of the line, then ``context_words``."""
    words = context_words(text, event)
    return cmdline_view(text) + (" " + " ".join(words) if words else "")
