"""The Engine.IO client's endpoint (fastio.engineio.client_endpoint): URLs, headers, cookies."""
import ssl

import pytest

from fastio.engineio.client_endpoint import Endpoint


def test_urls_of_both_transports():
    endpoint = Endpoint("https://example.com/ignored?token=a%20b", "/socket.io/", timestamp=False)
    assert endpoint.url("polling", None) == \
        "https://example.com/socket.io/?token=a%20b&EIO=4&transport=polling"
    assert endpoint.url("websocket", "a/b+c") == \
        "wss://example.com/socket.io/?token=a%20b&EIO=4&transport=websocket&sid=a%2Fb%2Bc"


def test_host_header_names_a_port_only_when_not_the_default():
    assert Endpoint("http://example.com:80", "engine.io").hostport == "example.com"
    assert Endpoint("ws://example.com:8080", "engine.io").hostport == "example.com:8080"
    v6 = Endpoint("wss://[::1]:8443", "engine.io")
    assert (v6.host, v6.port, v6.hostport, v6.secure) == ("::1", 8443, "[::1]:8443", True)


def test_timestamp_parameter():
    assert "&t=" in Endpoint("http://h", "engine.io").resource("polling", None)
    assert "&t=" not in Endpoint("http://h", "engine.io", timestamp=False).resource("polling", None)


@pytest.mark.parametrize("url", ["ftp://h/", "http:///path"])
def test_bad_urls(url):
    with pytest.raises(ValueError):
        Endpoint(url, "engine.io")


def test_headers_merge_user_cookies_with_the_servers():
    endpoint = Endpoint("http://h", "engine.io",
                        {"Cookie": "mine=1", "Host": "x", "Content-Length": "9", "X-A": 2})
    assert endpoint.request_headers() == [("Accept", "*/*"), ("X-A", "2"), ("Cookie", "mine=1")]
    endpoint.store_cookies({"set-cookie": ["io=abc; Path=/; HttpOnly", "bad", " lb = 7 "]})
    assert endpoint.request_headers(content_type=True) == [
        ("Accept", "*/*"), ("X-A", "2"), ("Cookie", "mine=1; io=abc; lb=7"),
        ("Content-Type", "text/plain;charset=UTF-8")]


def test_tls_context_only_for_secure_endpoints():
    assert Endpoint("http://h", "engine.io").ssl_context() is None
    strict = Endpoint("https://h", "engine.io").ssl_context()
    assert strict is not None and strict.verify_mode == ssl.CERT_REQUIRED
    lax = Endpoint("wss://h", "engine.io").ssl_context(verify=False)
    assert lax is not None and lax.verify_mode == ssl.CERT_NONE and not lax.check_hostname
