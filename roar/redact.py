"""Secrets never reach the store: redaction of environments, argv and free text.

Two kinds of evidence make something a secret:

* the NAME (an environment variable, a ``--flag``, a ``key=value`` key) says so — its words
  include TOKEN, SECRET, PASSWORD/PASSWD/PASSPHRASE/PASS/PW, KEY, CREDENTIAL/CREDS, AUTH (not
  AUTHOR/AUTHORITY), PRIVATE, COOKIE, SESSION_ID, DSN, CONNECTION_STRING, SIG/SIGNATURE. Then
  the whole value goes. Names whose last word is a location (…_FILE, _PATH, _DIR, _SOCK) hold
  a path, not the secret itself (SSH_AUTH_SOCK, PASSWORD_FILE); plural TOKENS/KEYS are counts
  or lists of field names (MAX_TOKENS, --sort-keys) unless qualified (API_KEYS); KEY after a
  data word (--sort-key, --label-key) names a field. These keep their value.
* the VALUE shows it, whatever the name, in every argv string and env value: credentials in a
  URL (only the password, or a token-like user, is replaced), a PEM or PGP private key block,
  ``Authorization:``/``Bearer`` headers, Slack and Discord webhook URLs, a known token format
  (forges: GitHub, GitLab, Bitbucket, Atlassian; AI providers and model hubs: OpenAI,
  Anthropic, Groq, xAI, Perplexity, NVIDIA, Replicate, Hugging Face; clouds: AWS, Google,
  Alibaba, DigitalOcean, Databricks, Vault, Doppler, Pulumi, Terraform; registries and SaaS:
  npm, PyPI, Docker Hub, Stripe, Twilio, SendGrid, Mailgun, Shopify, Linear, Notion, Postman,
  New Relic, Sentry, Grafana; chat apps: Slack, Telegram, Discord; JWTs; age keys), or a long
  high-entropy word (>= 32 chars of the base64/url-safe alphabet, with letters and digits,
  >= 3.5 bits/char; 3.0 for hex-only words, whose alphabet is 16). Paths and identifiers made
  of word-like pieces (runs/resnet50_lr0001/2024) are not secrets, nor are content identifiers:
  hex digests of 40/64/128 chars (git SHA-1, sha256/blake3, sha512: provenance needs them),
  UUIDs, integrity hashes (sha256-<base64>) and IPFS CIDs. Other long hex (md5-sized, 32) is
  redacted: many API keys have that shape.
* the CONTEXT shows it: a secret name with a quoted value inside code (``python -c "password =
  'x'"``, ``{"api_key": "x"}``, ``setenv("TOKEN", "x")``), and the short flags of programs known
  to take a secret through one (``sshpass -p X``, ``mysql -pX``, ``curl -u user:X``,
  ``redis-cli -a X``, ...: _SHORT_SECRETS), in argv and inside a shell's ``-c`` script. Other
  short flags are too ambiguous (``-p`` is a port, a parent, a patch) and get only the checks
  by value.

Wrongly redacting an innocent value costs one value of provenance; storing a secret is
permanent, so doubtful cases go to redaction.
"""

from __future__ import annotations

import functools
import math
import re
import shlex
from collections import Counter
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING

from msgspec.structs import replace

if TYPE_CHECKING:
    from roar.protocol import RunFinish

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


@functools.lru_cache(maxsize=8192)  # names recur (flags, variables): the registry's ingest
def is_secret_name(name: str) -> bool:  # spent 8% of its CPU here for 500 jobs' command lines
    """Whether a variable/flag/key name says its value is a secret."""
    parts = [p for p in _NONWORD.split(_CAMEL.sub(r"\1_\2", name).upper()) if p]
    if not parts or parts[-1] in _LOCATION or parts[0] in ("NO", "WITHOUT", "DISABLE"):
        return False
    return any(_secret_part(parts, i) for i in range(len(parts)))


# ---------------------------------------------------------------- value-level detection

_PEM = re.compile(
    r"-----BEGIN[A-Z ]*PRIVATE KEY(?: BLOCK)?-----.*?"
    r"(?:-----END[A-Z ]*PRIVATE KEY(?: BLOCK)?-----|$)",
    re.S,
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
    # forges: GitHub, GitLab (personal, deploy, runner, trigger, feed, agent...), Bitbucket,
    # Atlassian
    r"gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"
    r"|gl(?:pat|dt|rt|ptt|ft|imt|oas|cbt|soat|agent)-[A-Za-z0-9_-]{20,}"
    r"|ATBB[A-Za-z0-9_=.-]{20,}|ATATT3[A-Za-z0-9_=.-]{20,}"
    # AI providers and model hubs: OpenAI/Anthropic/DeepSeek/OpenRouter (sk-...), Groq, xAI,
    # Perplexity, NVIDIA, Replicate, Hugging Face
    r"|sk-[A-Za-z0-9_-]{20,}|gsk_[A-Za-z0-9]{20,}|xai-[A-Za-z0-9]{20,}|pplx-[A-Za-z0-9]{20,}"
    r"|nvapi-[A-Za-z0-9_-]{20,}|r8_[A-Za-z0-9]{20,}|hf_[A-Za-z0-9]{20,}"
    # clouds: AWS key ids, Google API keys, OAuth client secrets and access tokens, Alibaba,
    # DigitalOcean, Databricks, Vault, Doppler, Pulumi, Terraform Cloud
    r"|(?:AKIA|ASIA)[A-Z0-9]{16,}|AIza[A-Za-z0-9_-]{35,}|GOCSPX-[A-Za-z0-9_-]{20,}"
    r"|ya29\.[A-Za-z0-9_-]{20,}|LTAI[A-Za-z0-9]{12,}|do[opr]_v1_[a-f0-9]{64}"
    r"|dapi[0-9a-f]{32}|hv[sb]\.[A-Za-z0-9_-]{20,}|dp\.(?:st|pt|ct|sa|scim|audit)\.[\w-]{20,}"
    r"|pul-[a-f0-9]{40}|[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,}"
    # package registries and SaaS APIs: npm, PyPI, Docker Hub, Stripe, Twilio, SendGrid,
    # Mailgun, Shopify, Linear, Notion, Postman, New Relic, Sentry, Grafana
    r"|npm_[A-Za-z0-9]{36,}|pypi-[A-Za-z0-9_-]{40,}|dckr_pat_[A-Za-z0-9_-]{20,}"
    r"|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}|whsec_[A-Za-z0-9]{20,}|SK[0-9a-fA-F]{32}"
    r"|SG\.[\w-]{16,}\.[\w-]{16,}|key-[0-9a-f]{32}|shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}"
    r"|lin_api_[A-Za-z0-9]{20,}|secret_[A-Za-z0-9]{43}|ntn_[A-Za-z0-9]{40,}"
    r"|PMAK-[a-f0-9]{24}-[a-f0-9]{34}|NRAK-[A-Z0-9]{27}|sntry[su]_[A-Za-z0-9_=+/-]{20,}"
    r"|gl(?:c|sa)_[A-Za-z0-9_=+/-]{20,}"
    # chat apps: Slack tokens, Telegram and Discord bot tokens
    r"|xox[abposre]-[A-Za-z0-9-]{10,}|xapp-[A-Za-z0-9-]{10,}|\d{8,10}:AA[A-Za-z0-9_-]{33}"
    r"|[MNO][A-Za-z0-9]{23,25}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,}"
    # JWTs, age secret keys
    r"|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*|AGE-SECRET-KEY-1[0-9A-Z]{58,}"
    r")"
)
# Webhook URLs whose last path segment is the secret (Slack, Discord).
_WEBHOOK = re.compile(
    r"(?P<head>hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/"
    r"|discord(?:app)?\.com/api/webhooks/\d+/)(?P<secret>[A-Za-z0-9_-]+)"
)
# A secret name and a quoted value inside code (python -c, node -e, a JSON or YAML string):
# password = "x", {"api_key": "x"}, os.environ["HF_TOKEN"] = "x", token => 'x';
# and setenv("API_KEY", "x"), os.environ.setdefault('TOKEN', 'x').
_QUOTED_PAIR = re.compile(
    r"(?P<name>[A-Za-z_][\w.-]*)['\"]?\]?\s*(?:=>?|:|==)\s*"
    r"(?P<q>['\"])(?P<value>(?:\\.|(?!(?P=q)).)+?)(?P=q)"
)
_QUOTED_ARGS = re.compile(
    r"(?P<q0>['\"])(?P<name>[A-Za-z_][\w.-]*)(?P=q0)\s*,\s*"
    r"(?P<q>['\"])(?P<value>(?:\\.|(?!(?P=q)).)+?)(?P=q)"
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
# Content identifiers are provenance, never secrets: subresource-integrity and Nix-style hashes
# (sha256-<base64>), IPFS CIDs (v0 Qm..., v1 base32 b...).
_CONTENT_ID = re.compile(
    r"(?:sha(?:1|224|256|384|512)|blake[23]b?|md5)-[A-Za-z0-9+/]{20,}={0,2}"
    r"|Qm[1-9A-HJ-NP-Za-km-z]{44}|b[a-z2-7]{58,}"
)
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
    if _CONTENT_ID.fullmatch(word):
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
    word = m[0]
    if word.startswith("/"):
        # An absolute path: each component is judged alone, so a random temporary directory's
        # name (/tmp/roar-e2e-m3odkkqz/...) never takes the whole path with it. (A base64
        # secret starts with "/" one time in 64; its long pieces are still judged.)
        return "/".join(REDACTED if looks_like_token(c) else c for c in word.split("/"))
    return REDACTED if looks_like_token(word) else word


def _quoted(m: re.Match[str]) -> str:
    if is_secret_name(m["name"]):
        return m[0][: m.start("value") - m.start()] + REDACTED + m["q"]
    return m[0]


def redact_text(s: str) -> str:
    """Remove URL credentials, auth headers, key=value secrets and token-like words from text."""
    if "PRIVATE KEY" in s:
        s = _PEM.sub(REDACTED, s)
    if "@" in s:
        s = _URL_CRED.sub(_url_cred, s)
    if "/" in s:
        s = _WEBHOOK.sub(lambda m: m["head"] + REDACTED, s)
    s = _AUTH_HEADER.sub(lambda m: m["head"] + REDACTED, s)
    if "'" in s or '"' in s:
        s = _QUOTED_PAIR.sub(_quoted, s)
        s = _QUOTED_ARGS.sub(_quoted, s)
    s = _PAIR.sub(_pair, s)
    s = _TOKEN.sub(REDACTED, s)
    return _WORD.sub(_word, s)


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace")


# Values the user declared secret (`roarctl env set`) are replaced wherever they appear, in any
# argv string or env value, once they are this long: shorter ones ("1", "/data") would take too
# much innocent text with them (their variables' own values are redacted by name whatever
# their length).
KNOWN_MIN = 8


def _known(text: str, known: Collection[str]) -> str:
    for value in known:
        if len(value) >= KNOWN_MIN and value in text:
            text = text.replace(value, REDACTED)
    return text


def redact_env(env: list[bytes], known: Mapping[str, str] | None = None) -> dict[str, str]:
    """KEY=VALUE entries -> {name: value} with secrets replaced by REDACTED.

    The first entry of a name wins (what getenv() returns); entries without '=' are kept with
    an empty value. Empty values are kept (nothing to hide). `known`: variables declared secret
    (the project's `roarctl env set` ones): redacted by name, and their values wherever they
    appear.
    """
    known = known or {}
    out: dict[str, str] = {}
    for raw in env:
        name, _, value = _decode(raw).partition("=")
        if name in out:
            continue
        if name in RUN_IDS and re.fullmatch(r"[\w.-]{1,128}", value):
            out[name] = value  # an experiment tracker's run id: an identifier, not a secret
        elif value and (is_secret_name(name) or name in known):
            out[name] = REDACTED
        else:
            out[name] = _known(redact_text(value), known.values())
    return out


# Experiment trackers' run ids look like tokens (MLflow's are 32 hex digits) but are what
# lets `show` link a job to its run; they are kept when they are plain identifiers.
RUN_IDS = frozenset({"MLFLOW_RUN_ID", "WANDB_RUN_ID", "NEPTUNE_CUSTOM_RUN_ID"})

_FLAG = re.compile(r"(?P<dashes>--?)(?P<name>[A-Za-z][\w.-]+)(?:=(?P<value>.*))?", re.S)
_ASSIGN = re.compile(r"(?P<name>[A-Za-z_][\w.-]*)=(?P<value>.*)", re.S)

# Short flags are too ambiguous to judge by name (-p is a port, a parent, a patch, a password),
# so only the programs known to take a secret through one are treated so: NEXT, the next
# argument (or the attached value: -pVALUE); ATTACHED, only the attached value (a bare `mysql -p`
# prompts, and the next argument is the database); USERPASS, what follows the first ':' (curl
# -u user:pass), '%' (smbclient -U user%pass) or ',' (lftp -u user,pass); PASSARG, openssl's
# `pass:VALUE` (file:, env: and fd: name where the secret is, and stay).
NEXT, ATTACHED, USERPASS, PASSARG = "next", "attached", "userpass", "passarg"
_MYSQL = {"-p": ATTACHED}
_MONGO = {"-p": NEXT}
_LDAP = {"-w": NEXT}
_SHORT_SECRETS: dict[str, dict[str, str]] = {
    "sshpass": {"-p": NEXT},
    **dict.fromkeys(
        [
            "mysql",
            "mysqldump",
            "mysqladmin",
            "mysqlimport",
            "mysqlcheck",
            "mysqlshow",
            "mariadb",
            "mariadb-dump",
            "mariadb-admin",
            "mariadb-import",
            "mariadb-check",
        ],
        _MYSQL,
    ),
    **dict.fromkeys(
        ("mongo", "mongosh", "mongodump", "mongorestore", "mongoexport", "mongoimport"), _MONGO
    ),
    **dict.fromkeys(("ldapsearch", "ldapmodify", "ldapadd", "ldapdelete", "ldapwhoami"), _LDAP),
    "redis-cli": {"-a": NEXT},
    "zip": {"-P": NEXT},
    "unzip": {"-P": NEXT},
    "7z": {"-p": ATTACHED},
    "7za": {"-p": ATTACHED},
    "unrar": {"-p": ATTACHED},
    "rar": {"-p": ATTACHED},
    "sqlcmd": {"-P": NEXT},
    "bcp": {"-P": NEXT},
    "curl": {"-u": USERPASS, "--user": USERPASS, "-U": USERPASS, "--proxy-user": USERPASS},
    "smbclient": {"-U": USERPASS, "--user": USERPASS},
    "lftp": {"-u": USERPASS},
    "openssl": {"-k": NEXT, "-pass": PASSARG, "-passin": PASSARG, "-passout": PASSARG},
}
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ash", "busybox"})
_SHELL_C = re.compile(r"-[a-z]*c[a-z]*")


def _program(arg: str) -> str:
    return arg.rsplit("/", 1)[-1]


def _userpass(value: str) -> str:
    for sep in (":", "%", ","):
        user, found, password = value.partition(sep)
        if found:
            return f"{user}{sep}{REDACTED}" if password else value
    return value


def _short_secret(mode: str, value: str) -> str:
    """The redacted form of a short flag's value under `mode`."""
    if mode == USERPASS:
        return _userpass(value)
    if mode == PASSARG:
        return f"pass:{REDACTED}" if value.startswith("pass:") else value
    return REDACTED if value else value


def _program_secrets(args: list[str]) -> list[str]:
    """argv with the values of known programs' secret short flags redacted."""
    out: list[str] = []
    rules: dict[str, str] = {}
    pending: str | None = None
    for arg in args:
        if pending is not None:
            out.append(_short_secret(pending, arg))
            pending = None
            continue
        prog = _program(arg)
        if prog in _SHORT_SECRETS:
            rules = _SHORT_SECRETS[prog]
            out.append(arg)
            continue
        flag, eq, attached = arg.partition("=")
        mode = rules.get(flag)
        if mode is not None and not eq:
            if mode != ATTACHED:
                pending = mode
            out.append(arg)
            continue
        if mode is not None and eq:  # --user=alice:pw
            out.append(f"{flag}={_short_secret(mode, attached)}")
            continue
        short = rules.get(arg[:2]) if len(arg) > 2 and arg[1:2] != "-" else None
        if short is not None and arg[0] == "-":  # -phunter2
            out.append(arg[:2] + _short_secret(short, arg[2:]))
            continue
        out.append(arg)
    return out


def _shell_script(script: str) -> str:
    """A `sh -c` script: known programs' secret short flags inside it are redacted too."""
    try:
        words = shlex.split(script)
    except ValueError:
        return script
    if not any(_program(w) in _SHORT_SECRETS for w in words):
        return script
    for before, after in zip(words, _program_secrets(words), strict=True):
        if before != after:
            secret = re.escape(before)
            script = re.sub(rf"(?<![^\s'\"=]){secret}(?![^\s'\";|&)])", after, script)
    return script


def redact_argv(argv: list[bytes], known: Collection[str] = ()) -> list[str]:
    """Decode argv and redact secret flag values, secret KEY=VALUE args and token-like words.

    ``--token X`` redacts X unless X starts with '-' (then --token was a switch); single-letter
    flags count only for the programs known to take a secret through one (_SHORT_SECRETS), in
    argv and in a shell's -c script; every argument also gets the value-level checks
    (redact_text), which include secrets assigned in code (python -c "password = 'x'"), and
    values declared secret (`known`, see KNOWN_MIN) are replaced wherever they appear.
    """
    args = _program_secrets([_decode(raw) for raw in argv])
    out: list[str] = []
    value_next = script_next = shell = False
    for arg in args:
        if value_next:
            value_next = False
            if not arg.startswith("-"):
                out.append(REDACTED)
                continue
        if script_next:
            script_next = False
            arg = _shell_script(arg)
        elif shell and _SHELL_C.fullmatch(arg):  # sh -c, bash -lc, bash -x -c
            script_next = True
        shell = shell or _program(arg) in _SHELLS
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
    return [_known(arg, known) for arg in out] if known else out


def command_display(argv: list[str]) -> str:
    """The display form of an (already redacted) argv."""
    return shlex.join(argv)


def redact_run(finish: RunFinish, known: Mapping[str, str] | None = None) -> RunFinish:
    """A run's record with every secret gone: the command's argv and environment, and the argv
    of every program each of its processes executed. The one function a run's record passes
    through before it is written anywhere (roard's store, the spool) or sent anywhere.
    `known`: variables declared secret (see redact_env)."""
    values = list((known or {}).values())

    def argv(raw: list[bytes]) -> list[bytes]:
        return [a.encode() for a in redact_argv(raw, values)]

    start = finish.start
    env = [f"{k}={v}".encode() for k, v in redact_env(start.env, known).items()]
    procs = [
        replace(p, execs=[replace(e, argv=argv(e.argv)) for e in p.execs]) for p in finish.procs
    ]
    return replace(finish, start=replace(start, argv=argv(start.argv), env=env), procs=procs)
