"""The HTTP client's guards, against a real server on 127.0.0.1."""

import asyncio
import gzip
import ipaddress
import time

import pytest
from newsflow.demo.newsroom import Route
from newsflow.fetching.client import PoliteClient, address_problem, parse_retry_after

from tests.helpers import with_settings


def fetch(settings, url, **kwargs):
    async def go():
        async with PoliteClient(settings) as client:
            return await client.fetch(url, max_bytes=kwargs.pop("max_bytes", 1 << 20), **kwargs)

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("ip", "problem"),
    [
        ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
        ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"), ("fe80::1", "link-local"), ("fd00:ec2::254", "private"),
        ("100.100.100.200", "not a public"), ("0.0.0.0", "reserved"), ("224.0.0.1", "reserved"),
        ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.1", "private"),
        ("93.184.215.14", None), ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", None),
    ],
)  # fmt: skip
def test_address_policy(ip, problem):
    found = address_problem(ipaddress.ip_address(ip))
    if problem is None:
        assert found is None
    else:
        assert found and problem in found


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "127.1"])
def test_loopback_is_refused_unless_allowed(site, settings, host):
    site.routes["/x"] = Route(b"hello")
    strict = with_settings(settings, allow_private=False)
    res = fetch(strict, f"http://{host}:{site.port}/x")
    assert res.outcome == "blocked", res
    assert "--allow-private" in res.error
    assert site.hits["/x"] == 0
    allowed = fetch(settings, f"http://127.0.0.1:{site.port}/x")
    assert allowed.ok and allowed.body == b"hello"


def test_redirect_to_a_private_address_is_refused(site, settings):
    # The first hop is allowed (this test server stands in for a public host); every hop is
    # checked again at connect time, so the redirect target is refused like any other.
    site.routes["/hop"] = Route(status=302, conditional=False,
                                headers={"Location": "http://10.0.0.1/admin"})  # fmt: skip
    res = fetch(with_settings(settings, allow_private=False), f"{site.base_url}/hop")
    assert res.outcome == "blocked"


def test_non_http_redirect_target_is_refused(site, settings):
    site.routes["/hop"] = Route(status=302, conditional=False,
                                headers={"Location": "file:///etc/passwd"})  # fmt: skip
    res = fetch(settings, f"{site.base_url}/hop")
    assert res.outcome == "invalid_url" and "only http and https" in res.error


def test_redirects_are_followed_and_bounded(site, settings):
    for i in range(10):
        site.routes[f"/r{i}"] = Route(status=301, conditional=False,
                                      headers={"Location": f"/r{i + 1}"})  # fmt: skip
    site.routes["/r10"] = Route(b"end")
    ok = fetch(settings, f"{site.base_url}/r7")
    assert ok.ok and ok.body == b"end" and ok.redirects == 3
    assert ok.final_url == f"{site.base_url}/r10"
    too_many = fetch(settings, f"{site.base_url}/r0")
    assert too_many.outcome == "too_many_redirects"
    site.routes["/loop-a"] = Route(status=302, conditional=False, headers={"Location": "/loop-b"})
    site.routes["/loop-b"] = Route(status=302, conditional=False, headers={"Location": "/loop-a"})
    loop = fetch(settings, f"{site.base_url}/loop-a")
    assert loop.outcome == "redirect_loop"


def test_body_over_the_cap_is_cut_off(site, settings):
    site.routes["/big"] = Route(b"x" * 300_000)
    res = fetch(settings, f"{site.base_url}/big", max_bytes=100_000)
    assert res.outcome == "too_large" and res.body == b""


def test_gzip_is_decoded_and_a_gzip_bomb_stops_at_the_cap(site, settings):
    site.routes["/gz"] = Route(gzip.compress(b"hello " * 1000), gzipped=True)
    res = fetch(settings, f"{site.base_url}/gz")
    assert res.ok and res.body == b"hello " * 1000
    bomb = gzip.compress(b"\0" * 200_000_000, compresslevel=9)  # ~200 KB that inflates to 200 MB
    assert len(bomb) < 300_000
    site.routes["/bomb"] = Route(bomb, gzipped=True)
    started = time.monotonic()
    res = fetch(settings, f"{site.base_url}/bomb", max_bytes=1_000_000)
    assert res.outcome == "too_large"
    assert time.monotonic() - started < 5


def test_conditional_get(site, settings):
    site.routes["/feed"] = Route(b"<rss/>", content_type="application/rss+xml")
    first = fetch(settings, f"{site.base_url}/feed")
    assert first.ok and first.etag and first.last_modified
    again = fetch(settings, f"{site.base_url}/feed", etag=first.etag)
    assert again.outcome == "not_modified" and again.status == 304 and again.body == b""
    by_date = fetch(settings, f"{site.base_url}/feed", last_modified=first.last_modified)
    assert by_date.outcome == "not_modified"


def test_http_errors_and_timeouts_are_results_not_exceptions(site, settings):
    site.routes["/500"] = Route(b"boom", status=500, conditional=False)
    res = fetch(settings, f"{site.base_url}/500")
    assert res.outcome == "http_error" and res.status == 500 and "500" in res.error
    site.routes["/slow"] = Route(b"late", delay=3)
    quick = with_settings(settings, read_timeout=0.5)
    started = time.monotonic()
    res = fetch(quick, f"{site.base_url}/slow")
    assert res.outcome == "timeout"
    assert time.monotonic() - started < 2.5
    closed = fetch(settings, "http://127.0.0.1:9/nothing-listens-here")
    assert closed.outcome == "network_error"


def test_user_agent_is_honest(site, settings):
    site.routes["/ua"] = Route(b"ok")
    fetch(settings, f"{site.base_url}/ua")
    headers = dict(site.request_headers)["/ua"]
    assert headers["User-Agent"].startswith("newsflow/")


def test_per_host_spacing(site, settings):
    site.routes["/p"] = Route(b"ok", conditional=False)
    spaced = with_settings(settings, per_host_delay=0.3, per_host_concurrency=4)

    async def go():
        async with PoliteClient(spaced) as client:
            started = time.monotonic()
            await asyncio.gather(*(client.fetch(f"{site.base_url}/p", max_bytes=100)
                                   for _ in range(4)))  # fmt: skip
            return time.monotonic() - started

    assert go_time(go) >= 0.85  # 4 request starts, 0.3 s apart


def go_time(coro_fn):
    return asyncio.run(coro_fn())


def test_retry_after_holds_the_host_or_defers(site, settings):
    site.routes["/busy"] = Route(b"slow down", status=429, conditional=False,
                                 headers={"Retry-After": "1"})  # fmt: skip
    site.routes["/later"] = Route(b"ok", conditional=False)
    site.routes["/gone"] = Route(b"", status=503, conditional=False,
                                 headers={"Retry-After": "3600"})  # fmt: skip

    async def go():
        async with PoliteClient(settings) as client:
            busy = await client.fetch(f"{site.base_url}/busy", max_bytes=100)
            started = time.monotonic()
            later = await client.fetch(f"{site.base_url}/later", max_bytes=100)
            waited = time.monotonic() - started
            gone = await client.fetch(f"{site.base_url}/gone", max_bytes=100)
            deferred = await client.fetch(f"{site.base_url}/later", max_bytes=100)
            return busy, later, waited, gone, deferred

    busy, later, waited, gone, deferred = asyncio.run(go())
    assert busy.status == 429 and busy.retry_after == 1.0
    assert later.ok and waited >= 0.9
    assert gone.retry_after == 3600.0
    assert deferred.outcome == "deferred" and "retry after" in deferred.error


def test_parse_retry_after():
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 - 60) == 60.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_robots_txt(site, settings):
    site.routes["/robots.txt"] = Route(b"User-agent: *\nDisallow: /private/\n",
                                       content_type="text/plain")  # fmt: skip

    async def go(base):
        async with PoliteClient(settings) as client:
            return (await client.robots_allowed(f"{base}/news/1"),
                    await client.robots_allowed(f"{base}/private/1"))  # fmt: skip

    public, private = asyncio.run(go(site.base_url))
    assert public == (True, None)
    assert private[0] is False and "robots.txt" in private[1]
    assert site.hits["/robots.txt"] == 1  # cached per origin
    site.routes["/robots.txt"] = Route(b"", status=503, conditional=False)
    public, _ = asyncio.run(go(site.base_url))
    assert public[0] is False and "unavailable" in public[1]
    del site.routes["/robots.txt"]  # 404: no rules, everything allowed
    public, private = asyncio.run(go(site.base_url))
    assert public == (True, None) and private == (True, None)
