"""Secrets never reach the store: redaction of environments, argv and free text.

Two kinds of evidence make something a secret:

* the NAME (an environment variable, a ``--flag``, a ``key=value`` key) says so — its words
  include TOKEN, SECRET, PASSWORD/PASSWD/PASSPHRASE/PASS/PW, KEY, CREDENTIAL/CREDS, AUTH (not
  AUTHOR/AUTHORITY), PRIVATE, COOKIE, SESSION_ID, DSN, CONNECTION_STRING, SIG/SIGNATURE. Then
  the whole value goes. Names whose last word is a location (…_FILE, _PATH, _DIR, _SOCK) hold
  a path, not the secret itself (SSH_AUTH_SOCK, PASSWORD_FILE); plural TOKENS/KEYS are counts
  or lists of field names (MAX_TOKENS, --sort-keys) unless qualified (API_KEYS); KEY after a
  data word (--sort-key, --label-key) names a field. These keep their value.
* the VALUE shows it, whatever the name: credentials in a URL (only the password, or a
  token-like user, is replaced), a PEM private key, ``Authorization:``/``Bearer`` headers, a
  known token format (GitHub, GitLab, OpenAI, Stripe, Slack, Hugging Face, AWS, Google, npm,
  PyPI, JWT), or a long high-entropy word (>= 32 chars of the base64/url-safe alphabet, with
  letters and digits, >= 3.5 bits/char; 3.0 for hex-only words, whose alphabet is 16). Paths
  and identifiers made of word-like pieces (runs/resnet50_lr0001/2024) are not secrets, nor
  are hex digests of 40/64/128 chars (git SHA-1, sha256/blake3, sha512: provenance needs them)
  or UUIDs. Other long hex (md5-sized, 32) is redacted: many API keys have that shape.

Wrongly redacting an innocent value costs one value of provenance; storing a secret is
permanent, so doubtful cases go to redaction.
"""

from __future__ import annotations

import math
import re
import shlex
from collections import Counter

REDACTED = "<redacted>"

_SUBSTRINGS = ("SECRET", "PASSWORD", "PASSWD", "PASSPHRASE", "CREDENTIAL", "PRIVATE", "COOKIE")
_WORDS = frozenset({"PASS", "PW", "CREDS", "DSN", "SIG", "SIGNATURE", "SESSIONID", "SESSID"})
_LOCATION = frozenset({"FILE", "FILES", "PATH", "DIR", "SOCK", "SOCKET"})
_QUALIFIERS = frozenset(
    {"API", "ACCESS", "SECRET", "PRIVATE", "AUTH", "SIGNING", "ENCRYPTION", "MASTER", "CLIENT"}
    | {"APP", "SSH", "GPG", "PGP", "DEPLOY", "LICENSE", "SERVICE", "BEARER", "REFRESH"}
)
_FIELD_WORDS = frozenset(
    {"SORT", "PRIMARY", "PARTITION", "CACHE", "LABEL", "TEXT", "IMAGE", "INPUT", "OUTPUT"}
    | {"TARGET", "COLUMN", "FIELD", "GROUP", "SHARD", "JOIN", "LOOKUP", "INDEX", "DICT", "JSON"}
    | {"PUBLIC", "PUB", "HOT", "ROW", "RNG", "PRNG", "FOREIGN", "UNIQUE", "DEDUP", "MAP"}
)
_NOT_KEY = frozenset({"MONKEY", "DONKEY", "TURKEY", "HOCKEY", "JOCKEY", "WHISKEY", "LACKEY"})
_NOT_KEY |= frozenset({"TURNKEY", "HOTKEY"})
_AUTH = re.compile(r"AUTH(?!OR(?!IZ))")  # AUTH, OAUTH, AUTHZ, AUTHORIZATION; not AUTHOR(ITY)
_PAIRS = frozenset(
    [("SESSION", w) for w in ("ID", "KEY", "TOKEN", "SECRET")]
    + [(a, b) for a in ("CONNECTION", "CONN") for b in ("STRING", "STR")]
)
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_NONWORD = re.compile(r"[^A-Z0-9]+")


def _qualified(parts: list[str], i: int, word: str) -> bool:
    """Plural TOKENS/KEYS (or a compound ending so) is a secret only when qualified (API_KEYS)."""
    prefix = parts[i][: -len(word)]
    if prefix:
        return prefix in _QUALIFIERS
    return i > 0 and parts[i - 1] in _QUALIFIERS


def _secret_part(parts: list[str], i: int) -> bool:
    part, prev = parts[i], parts[i - 1] if i else ""
    nxt = parts[i + 1] if i + 1 < len(parts) else ""
    if any(s in part for s in _SUBSTRINGS) or part in _WORDS or part.endswith("DSN"):
        return True
    if _AUTH.search(part) or (part == "PWD" and len(parts) > 1):  # MYSQL_PWD, not PWD
        return True
    if (part, nxt) in _PAIRS or part in ("CONNSTR", "CONNSTRING", "CONNECTIONSTRING"):
        return True
    if "TOKEN" in part and "TOKENIZ" not in part:
        return not part.endswith("TOKENS") or _qualified(parts, i, "TOKENS")
    if part.endswith("KEYS"):
        return _qualified(parts, i, "KEYS")
    if part in ("KEY", "KEYID"):
        return prev not in _FIELD_WORDS
    return part.endswith(("KEY", "KEYID")) and part not in _NOT_KEY


def is_secret_name(name: str) -> bool:
    """Whether a variable/flag/key name says its value is a secret."""
    parts = [p for p in _NONWORD.split(_CAMEL.sub(r"\1_\2", name).upper()) if p]
    if not parts or parts[-1] in _LOCATION or parts[0] in ("NO", "WITHOUT", "DISABLE"):
        return False
    return any(_secret_part(parts, i) for i in range(len(parts)))


# ---------------------------------------------------------------- value-level detection

_PEM = re.compile(
    r"-----BEGIN[A-Z ]*PRIVATE KEY-----.*?(?:-----END[A-Z ]*PRIVATE KEY-----|$)", re.S
)
_URL_CRED = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^\s/?#:]*)(?::(?P<pw>[^\s/?#]*))?@"
)
_AUTH_HEADER = re.compile(
    r"(?P<head>(?i:authorization)\s*[:=]\s*(?:(?i:bearer|basic|token|digest)\s+)?"
    r"|\b[Bb]earer\s+(?=[A-Za-z0-9._~+/=-]{16}))(?P<cred>[^\s\"',;]+)"
)
_TOKEN = re.compile(
    r"(?<![A-Za-z0-9_-])(?:"
    r"gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_-]{20,}"
    r"|[sr]k_(?:live|test)_[A-Za-z0-9]{10,}|sk-[A-Za-z0-9_-]{20,}"
    r"|xox[abposr]-[A-Za-z0-9-]{10,}|xapp-[A-Za-z0-9-]{10,}|hf_[A-Za-z0-9]{20,}"
    r"|(?:AKIA|ASIA)[A-Z0-9]{16,}|AIza[A-Za-z0-9_-]{35,}|npm_[A-Za-z0-9]{36,}"
    r"|pypi-[A-Za-z0-9_-]{40,}|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"
    r")"
)
# name=value pairs and "--flag value" inside a larger string (query strings, conninfo, -Dprop=,
# sh -c scripts); the name may not follow '.' or '*' so that LS_COLORS' "*.key=01;31" is safe.
_PAIR = re.compile(
    r"(?<![\w.*-])(?P<name>--?[A-Za-z][\w.-]+(?=\s)|-{0,2}[A-Za-z_][\w.-]*(?==))"
    r"(?:=|\s+(?!-))(?P<value>[^\s&;,'\"]+)"
)
_WORD = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{32,}={0,2}")
_HEX = re.compile(r"[0-9a-fA-F]+")
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{40}|[0-9a-fA-F]{64}|[0-9a-fA-F]{128}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_WORDLIKE = re.compile(r"[A-Z]?[a-z]+[0-9]*|[A-Z]+[0-9]*|[0-9]+[a-z]*")


def _entropy(s: str) -> float:
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values())


def _identifier_like(word: str) -> bool:
    """A path or name made of word-like pieces (data/raw/img_2024_v2), not random text."""
    word = _UUID.sub("u", word)
    pieces = [p for p in re.split(r"[_/-]+", word) if p]
    if len(pieces) < 2:
        return False
    good = sum(1 for p in pieces if _WORDLIKE.fullmatch(p) or _HEX_DIGEST.fullmatch(p))
    return good >= 0.75 * len(pieces)


def looks_like_token(word: str) -> bool:
    """A long high-entropy single word (see the module docstring for the exact rule)."""
    core = word.rstrip("=")
    if len(core) < 32 or _HEX_DIGEST.fullmatch(core) or _UUID.fullmatch(core):
        return False
    if not (re.search(r"[A-Za-z]", core) and re.search(r"[0-9]", core)):
        return False
    threshold = 3.0 if _HEX.fullmatch(core) else 3.5  # hex has only 16 symbols (max 4 bits)
    return not _identifier_like(core) and _entropy(core) >= threshold


def _url_cred(m: re.Match[str]) -> str:
    user, pw = m["user"], m["pw"]
    if pw:
        return f"{m['scheme']}{user}:{REDACTED}@"
    if pw is None and (len(user) >= 16 or _TOKEN.fullmatch(user)):
        return f"{m['scheme']}{REDACTED}@"
    return m[0]


def _pair(m: re.Match[str]) -> str:
    if is_secret_name(m["name"]):
        return m[0][: m.start("value") - m.start()] + REDACTED
    return m[0]


def _word(m: re.Match[str]) -> str:
    return REDACTED if looks_like_token(m[0]) else m[0]


def redact_text(s: str) -> str:
    """Remove URL credentials, auth headers, key=value secrets and token-like words from text."""
    if "PRIVATE KEY-----" in s:
        s = _PEM.sub(REDACTED, s)
    if "@" in s:
        s = _URL_CRED.sub(_url_cred, s)
    s = _AUTH_HEADER.sub(lambda m: m["head"] + REDACTED, s)
    s = _PAIR.sub(_pair, s)
    s = _TOKEN.sub(REDACTED, s)
    return _WORD.sub(_word, s)


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace")


def redact_env(env: list[bytes]) -> dict[str, str]:
    """KEY=VALUE entries -> {name: value} with secrets replaced by REDACTED.

    The first entry of a name wins (what getenv() returns); entries without '=' are kept with
    an empty value. Empty values are kept (nothing to hide).
    """
    out: dict[str, str] = {}
    for raw in env:
        name, _, value = _decode(raw).partition("=")
        if name in out:
            continue
        if name in RUN_IDS and re.fullmatch(r"[\w.-]{1,128}", value):
            out[name] = value  # an experiment tracker's run id: an identifier, not a secret
        elif value and is_secret_name(name):
            out[name] = REDACTED
        else:
            out[name] = redact_text(value)
    return out


# Experiment trackers' run ids look like tokens (MLflow's are 32 hex digits) but are what
# lets `show` link a job to its run; they are kept when they are plain identifiers.
RUN_IDS = frozenset({"MLFLOW_RUN_ID", "WANDB_RUN_ID", "NEPTUNE_CUSTOM_RUN_ID"})

_FLAG = re.compile(r"(?P<dashes>--?)(?P<name>[A-Za-z][\w.-]+)(?:=(?P<value>.*))?", re.S)
_ASSIGN = re.compile(r"(?P<name>[A-Za-z_][\w.-]*)=(?P<value>.*)", re.S)


def redact_argv(argv: list[bytes]) -> list[str]:
    """Decode argv and redact secret flag values, secret KEY=VALUE args and token-like words.

    ``--token X`` redacts X unless X starts with '-' (then --token was a switch); single-letter
    flags such as ``-p`` are too ambiguous and only get the value-level checks.
    """
    out: list[str] = []
    value_next = False
    for raw in argv:
        arg = _decode(raw)
        if value_next:
            value_next = False
            if not arg.startswith("-"):
                out.append(REDACTED)
                continue
        flag = _FLAG.fullmatch(arg)
        if flag and is_secret_name(flag["name"]):
            if flag["value"] is None:
                value_next = True
                out.append(arg)
            else:
                value = REDACTED if flag["value"] else ""
                out.append(f"{flag['dashes']}{flag['name']}={value}")
            continue
        assign = _ASSIGN.fullmatch(arg)
        if assign and assign["value"] and is_secret_name(assign["name"]):
            out.append(f"{assign['name']}={REDACTED}")
            continue
        out.append(redact_text(arg))
    return out


def command_display(argv: list[str]) -> str:
    """The display form of an (already redacted) argv."""
    return shlex.join(argv)
