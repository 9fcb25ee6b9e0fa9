"""The registry's web pages, served by glaas itself: server-rendered (Jinja2, glaas/templates),
with every script, style and icon served from glaas/static (no CDN, no front-end build).
routes.py mounts them; pages.py has one function per page."""
