"""Web server snippets that serve a WKD tree the way the draft and its clients need.

Section 3.1 of draft-koch-openpgp-webkey-service: keys are served as ``application/octet-stream``; web
clients (OpenPGP.js, Mailvelope) fetch across origins, so ``Access-Control-Allow-Origin: *``; HEAD must
work; no directory listing (it would hand out the hashes); the ``policy`` file must be reachable. The
tree's ``openpgpkey`` is a symlink to a versioned directory (see :mod:`engine.wkd.publish`): nginx follows
symlinks by default, Apache needs ``FollowSymLinks``. Both the advanced host ``openpgpkey.DOMAIN`` and the
direct host ``DOMAIN`` are covered. Non-ASCII domains: the server name is the A-label (``xn--``) form.
"""

from __future__ import annotations

from engine.errors import InvalidArgument
from engine.wkd.validate import idna_alias, normalize_domain

__all__ = ["apache", "nginx"]

LE = "/etc/letsencrypt/live"


def _check_root(webroot: str) -> str:
    if not webroot.startswith("/") or any(c in webroot for c in "\n\r\"';{}$"):
        raise InvalidArgument(f"web root must be an absolute path without quotes or braces: {webroot!r}")
    return webroot.rstrip("/") or "/"


_NGINX_LOCATION = """    # WKD (draft-koch-openpgp-webkey-service): binary keys, any origin, GET and HEAD, no listing.
    location /.well-known/openpgpkey/ {
        types { }
        default_type application/octet-stream;
        add_header Access-Control-Allow-Origin "*" always;
        autoindex off;
        limit_except GET { deny all; }  # GET implies HEAD
        try_files $uri =404;
    }
    location ~ ^/\\.well-known/openpgpkey\\.(v|new)- { return 404; }  # only through the symlink
"""


def nginx(
    domain: str,
    webroot: str,
    *,
    listen: str = "443 ssl",
    certificate: str | None = None,
    certificate_key: str | None = None,
) -> str:
    """Two ``server`` blocks (advanced ``openpgpkey.DOMAIN`` and direct ``DOMAIN``) for nginx."""
    dom = idna_alias(normalize_domain(domain))
    root = _check_root(webroot)
    blocks = []
    for host, note in ((f"openpgpkey.{dom}", "advanced method"), (dom, "direct method")):
        cert = certificate or f"{LE}/{host}/fullchain.pem"
        key = certificate_key or f"{LE}/{host}/privkey.pem"
        blocks.append(
            f"""# {note}: https://{host}/.well-known/openpgpkey/...
# (for the direct host, an existing server block needs only the location lines)
server {{
    listen {listen};
    server_name {host};
    ssl_certificate {cert};
    ssl_certificate_key {key};
    root {root};
{_NGINX_LOCATION}}}
"""
        )
    return "\n".join(blocks)


def apache(
    domain: str, webroot: str, *, certificate: str | None = None, certificate_key: str | None = None
) -> str:
    """Two ``VirtualHost`` blocks (advanced and direct) for Apache httpd 2.4 (mod_ssl, mod_headers)."""
    dom = idna_alias(normalize_domain(domain))
    root = _check_root(webroot)
    blocks = []
    for host, note in ((f"openpgpkey.{dom}", "advanced method"), (dom, "direct method")):
        cert = certificate or f"{LE}/{host}/fullchain.pem"
        key = certificate_key or f"{LE}/{host}/privkey.pem"
        blocks.append(
            f"""# {note}: https://{host}/.well-known/openpgpkey/...
<VirtualHost *:443>
    ServerName {host}
    DocumentRoot "{root}"
    SSLEngine on
    SSLCertificateFile "{cert}"
    SSLCertificateKeyFile "{key}"
    <Directory "{root}/.well-known">
        Options +FollowSymLinks -Indexes
    </Directory>
    <Directory "{root}/.well-known/openpgpkey*">
        Options +FollowSymLinks -Indexes
        ForceType application/octet-stream
        Header always set Access-Control-Allow-Origin "*"
        <LimitExcept GET HEAD>
            Require all denied
        </LimitExcept>
        Require all granted
    </Directory>
</VirtualHost>
"""
        )
    return "\n".join(blocks)
