"""Security headers, set in one place for every response (errors and the schema included).

The API serves JSON only, so its policy forbids everything a browser could do with it. The web
pages may load scripts, styles, images and fonts from glaas itself and nowhere else: no inline
script or style (so text that got into a page cannot run), forms post only back to glaas, and no
site may frame them. Static files (versioned URLs) may be cached; pages and API answers may not
(they can hold private records). HSTS is the TLS proxy's to set (README, "Run a team
registry")."""

from __future__ import annotations

from litestar.types import Message, Scope

from roar.registry import API

COMMON = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
HEADERS = COMMON | {
    "Content-Security-Policy": (
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "Cache-Control": "no-store",
}
PAGE_HEADERS = COMMON | {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'"
    ),
    "Cache-Control": "no-store",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}
STATIC_HEADERS = PAGE_HEADERS | {"Cache-Control": "public, max-age=86400"}
STATIC = "/static/"


def _raw(headers: dict[str, str]) -> tuple[frozenset[bytes], list[tuple[bytes, bytes]]]:
    """Encoded once: (the names, lower case; the header lines)."""
    lines = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    return frozenset(k for k, _ in lines), lines


_API_RAW, _STATIC_RAW, _PAGE_RAW = _raw(HEADERS), _raw(STATIC_HEADERS), _raw(PAGE_HEADERS)


async def security_headers(message: Message, scope: Scope) -> None:
    """Ours replace any the route set under the same names (encoded once, not per response:
    the API's look-ups are mostly this)."""
    if message["type"] == "http.response.start":
        path: str = scope.get("path", "")
        if path == API or path.startswith(API + "/"):
            names, lines = _API_RAW
        elif path.startswith(STATIC):
            names, lines = _STATIC_RAW
        else:
            names, lines = _PAGE_RAW
        kept = [h for h in message.get("headers", ()) if h[0].lower() not in names]
        message["headers"] = kept + lines
