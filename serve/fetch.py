"""Fetching an article from a link the user gave (their own request, so it works on every
profile, offline ones included; nothing else is ever fetched).

Guards, each a profile limit (``limits.*``): only http and https; the host's every address is
checked after resolving it, and loopback, private, link-local, reserved and multicast addresses
are refused unless ``limits.fetch_private_addresses`` allows them (no server-side request
forgery); the connection goes to the address checked (no second look-up a name could answer
differently), TLS still verified against the name; redirects followed by hand, at most
``limits.max_redirects``, each hop checked the same way; connect and read time-outs and one
deadline for the whole fetch (``limits.fetch_timeout_s``); at most ``limits.max_fetch_bytes``
read; only HTML, PDF and plain text accepted. Every failure is an ``InputError`` with one line
for the user.
"""
from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import SplitResult, urljoin, urlsplit

from models.text import InputError

ACCEPTED_TYPES = {"text/html", "application/xhtml+xml", "application/pdf", "text/plain"}
USER_AGENT = "article-qa (reads one article a user asked for)"


@dataclass(frozen=True)
class FetchPolicy:
    allow_private: bool = False
    max_bytes: int = 10_000_000
    timeout_s: float = 10.0
    max_redirects: int = 5

    @classmethod
    def from_limits(cls, limits) -> FetchPolicy:
        return cls(limits.fetch_private_addresses, limits.max_fetch_bytes, limits.fetch_timeout_s,
                   limits.max_redirects)


@dataclass
class Fetched:
    data: bytes
    content_type: str
    url: str                      # where the article was found, after redirects


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (the tests swap this for a fake resolver)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise InputError(f"Could not find {host} (no network, or no such site).") from None
    return list(dict.fromkeys(info[4][0] for info in infos))


def check_address(address: str, allow_private: bool) -> None:
    """Refuse an address that is not on the public internet, unless allowed."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if ip.is_multicast or ip.is_unspecified:
        raise InputError(f"Links to {address} are not fetched.")
    if not ip.is_global and not allow_private:
        raise InputError(f"Links to private, loopback or reserved addresses ({address}) are not fetched.")


def checked_target(url: str, policy: FetchPolicy) -> tuple[SplitResult, int, str]:
    """(the link's parts, port, address to connect to), after every check."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https"):
        raise InputError("Only http:// and https:// links are fetched.")
    if not parts.hostname:
        raise InputError("The link has no host name.")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = resolve(parts.hostname, port)
    if not addresses:
        raise InputError(f"Could not find {parts.hostname}.")
    for address in addresses:
        check_address(address, policy.allow_private)
    return parts, port, addresses[0]


def fetch(url: str, policy: FetchPolicy = FetchPolicy()) -> Fetched:
    """The bytes behind a link (module docstring for the guards). Raises InputError."""
    import httpx

    deadline = time.monotonic() + policy.timeout_s
    timeout = httpx.Timeout(policy.timeout_s, connect=min(5.0, policy.timeout_s))
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        for _ in range(policy.max_redirects + 1):
            parts, port, address = checked_target(url, policy)
            scheme, host = parts.scheme, parts.hostname
            netloc = f"[{address}]" if ":" in address else address
            target = parts._replace(scheme=scheme, netloc=f"{netloc}:{port}").geturl()
            default_port = port == (443 if scheme == "https" else 80)
            headers = {"Host": host if default_port else f"{host}:{port}", "User-Agent": USER_AGENT,
                       "Accept": "text/html,application/xhtml+xml,application/pdf,text/plain;q=0.9"}
            try:
                with client.stream("GET", target, headers=headers, extensions={"sni_hostname": host}) as r:
                    if r.is_redirect and "location" in r.headers:
                        url = urljoin(url, r.headers["location"])
                        continue
                    if r.status_code >= 400:
                        raise InputError(f"{host} answered {r.status_code} {r.reason_phrase} for this link.")
                    ctype = r.headers.get("content-type", "").split(";")[0].strip().lower()
                    if ctype not in ACCEPTED_TYPES:
                        raise InputError(f"The link is {ctype or 'of no stated type'}, not a web page, PDF or text.")
                    if int(r.headers.get("content-length") or 0) > policy.max_bytes:
                        raise InputError(f"The page is over the limit of {policy.max_bytes:,} bytes.")
                    data = bytearray()
                    for chunk in r.iter_bytes():
                        data += chunk
                        if len(data) > policy.max_bytes:
                            raise InputError(f"The page is over the limit of {policy.max_bytes:,} bytes.")
                        if time.monotonic() > deadline:
                            raise InputError(f"The page took longer than {policy.timeout_s:g} s to arrive.")
                    return Fetched(bytes(data), ctype, url)
            except httpx.TimeoutException:
                raise InputError(f"{host} did not answer within {policy.timeout_s:g} s.") from None
            except httpx.HTTPError as exc:
                raise InputError(f"Could not fetch the link from {host} ({type(exc).__name__}; no network?).") from None
    raise InputError(f"The link redirected more than {policy.max_redirects} times.")
