"""The address grammar: every form parses, values round-trip, bad forms say what and how."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trunkline.address import (
    MAX_UNIX_PATH_BYTES,
    Address,
    FdAddress,
    FifoAddress,
    HttpTarget,
    ServiceAddress,
    TcpAddress,
    UdpAddress,
    UnixAddress,
    format_address,
    format_http_url,
    parse_address,
    parse_http_url,
)
from trunkline.errors import AddressError, PathTooLongError

# --------------------------------------------------------------------------- every form parses

GOOD = [
    ("tcp://127.0.0.1:8000", TcpAddress("127.0.0.1", 8000)),
    ("tcp://0.0.0.0:0", TcpAddress("0.0.0.0", 0)),
    ("tcp://[::1]:8000", TcpAddress("::1", 8000)),
    ("tcp://[fe80::1%25eth0]:80", TcpAddress("fe80::1%eth0", 80)),
    ("tcp://localhost:65535", TcpAddress("localhost", 65535)),
    ("tcp://api.example.com.:80", TcpAddress("api.example.com.", 80)),
    ("TCP://localhost:1", TcpAddress("localhost", 1)),
    ("tls://localhost:8443", TcpAddress("localhost", 8443, tls=True)),
    ("tls://[::1]:443", TcpAddress("::1", 443, tls=True)),
    ("udp://127.0.0.1:9000", UdpAddress("127.0.0.1", 9000)),
    ("udp://[::1]:53", UdpAddress("::1", 53)),
    ("unix:///run/app.sock", UnixAddress("/run/app.sock")),
    ("unix:app.sock", UnixAddress("app.sock")),
    ("unix:./sub/app.sock", UnixAddress("./sub/app.sock")),
    ("unix:@app", UnixAddress("app", abstract=True)),
    ("unix:@/with/slashes", UnixAddress("/with/slashes", abstract=True)),
    ("unixgram:///run/app.dgram", UnixAddress("/run/app.dgram", datagram=True)),
    ("unixgram:rel.dgram", UnixAddress("rel.dgram", datagram=True)),
    ("unixgram:@app", UnixAddress("app", abstract=True, datagram=True)),
    ("fifo:///tmp/app.fifo", FifoAddress("/tmp/app.fifo")),
    ("fifo:app.fifo", FifoAddress("app.fifo")),
    ("fd://3", FdAddress(fd=3)),
    ("fd://0", FdAddress(fd=0)),
    ("fd://web", FdAddress(name="web")),
    ("fd://my-app.http_v2", FdAddress(name="my-app.http_v2")),
    ("svc://users", ServiceAddress("users")),
    ("svc://billing-v2", ServiceAddress("billing-v2")),
    ("svc://a", ServiceAddress("a")),
    ("svc://" + "x" * 63, ServiceAddress("x" * 63)),
]


@pytest.mark.parametrize(("url", "expected"), GOOD, ids=[u for u, _ in GOOD])
def test_every_form_parses(url: str, expected: Address) -> None:
    assert parse_address(url) == expected
    assert parse_address(format_address(expected)) == expected


def test_canonical_urls_format_back_to_themselves() -> None:
    for url, value in GOOD:
        if url.islower() and "%25" not in url:
            assert format_address(value) == url


def test_unix_path_at_the_limit_is_accepted() -> None:
    path = "/" + "p" * (MAX_UNIX_PATH_BYTES - 1)
    assert parse_address("unix://" + path) == UnixAddress(path)
    assert parse_address("unix:@" + "n" * MAX_UNIX_PATH_BYTES).abstract


# --------------------------------------------------------------------------- round trip

_label = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,20}", fullmatch=True)
hostnames = st.builds(lambda labels, dot: ".".join(labels) + dot,
                      st.lists(_label, min_size=1, max_size=4), st.sampled_from(["", "."]))
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
scoped_ipv6 = st.builds(lambda ip, zone: f"{ip}%{zone}", ipv6,
                        st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True))
hosts = st.one_of(ipv4, ipv6, scoped_ipv6, hostnames)
ports = st.integers(0, 65535)

# Path text: anything but NUL, including bytes that are not UTF-8 (os.fsdecode gives them as
# the surrogate escapes U+DC80..U+DCFF); kept within the socket limit measured in bytes.
_path_chars = st.one_of(
    st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)),
    st.integers(0x80, 0xFF).map(lambda byte: chr(0xDC00 + byte)))


def _fits(path: str) -> bool:
    return len(os.fsencode(path)) <= MAX_UNIX_PATH_BYTES


abs_paths = st.text(_path_chars, max_size=60).map(lambda s: "/" + s).filter(_fits)
rel_paths = st.text(_path_chars, min_size=1, max_size=60).filter(
    lambda s: not s.startswith(("/", "@")) and _fits(s))
abstract_names = st.text(_path_chars, min_size=1, max_size=60).filter(_fits)
fifo_paths = st.one_of(abs_paths, rel_paths, st.text(_path_chars, min_size=200, max_size=300)
                       .map(lambda s: "/" + s))

tcp_addresses = st.builds(TcpAddress, hosts, ports, st.booleans())
udp_addresses = st.builds(UdpAddress, hosts, ports)
unix_addresses = st.one_of(
    st.builds(lambda p, d: UnixAddress(p, datagram=d), abs_paths, st.booleans()),
    st.builds(lambda p, d: UnixAddress(p, datagram=d), rel_paths, st.booleans()),
    st.builds(lambda p, d: UnixAddress(p, abstract=True, datagram=d), abstract_names,
              st.booleans()),
)
fifo_addresses = st.builds(FifoAddress, fifo_paths)
fd_addresses = st.one_of(
    st.builds(lambda n: FdAddress(fd=n), st.integers(0, 2**31 - 1)),
    st.builds(lambda n: FdAddress(name=n),
              st.from_regex(r"[A-Za-z_][A-Za-z0-9._-]{0,40}", fullmatch=True)),
)
service_addresses = st.builds(
    ServiceAddress, st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,40}[a-z0-9])?", fullmatch=True))
addresses = st.one_of(tcp_addresses, udp_addresses, unix_addresses, fifo_addresses,
                      fd_addresses, service_addresses)


@given(addresses)
def test_format_then_parse_round_trips(address: Address) -> None:
    url = format_address(address)
    assert parse_address(url) == address
    assert format_address(parse_address(url)) == url


@given(st.text(max_size=40))
def test_parse_raises_only_address_error(text: str) -> None:
    """Any string either parses into a value that round-trips or raises AddressError."""
    try:
        address = parse_address(text)
    except AddressError as exc:
        assert "example" in str(exc)
        return
    assert parse_address(format_address(address)) == address


@given(st.sampled_from(["tcp", "tls", "udp", "unix", "unixgram", "fifo", "fd", "svc"]),
       st.text(max_size=30))
def test_parse_with_known_scheme_raises_only_address_error(scheme: str, rest: str) -> None:
    for url in (f"{scheme}:{rest}", f"{scheme}://{rest}"):
        try:
            address = parse_address(url)
        except AddressError as exc:
            assert "example" in str(exc)
            continue
        assert parse_address(format_address(address)) == address


# --------------------------------------------------------------------------- HTTP URLs

HTTP_GOOD = [
    ("http://127.0.0.1:8000/users?id=1",
     HttpTarget("http", TcpAddress("127.0.0.1", 8000), "127.0.0.1:8000", "/users?id=1")),
    ("http://localhost", HttpTarget("http", TcpAddress("localhost", 80), "localhost", "/")),
    ("http://localhost?x=1", HttpTarget("http", TcpAddress("localhost", 80), "localhost",
                                        "/?x=1")),
    ("http://localhost/p#frag", HttpTarget("http", TcpAddress("localhost", 80), "localhost",
                                           "/p")),
    ("https://example.com/",
     HttpTarget("https", TcpAddress("example.com", 443, tls=True), "example.com", "/")),
    ("http://[::1]:8080/p", HttpTarget("http", TcpAddress("::1", 8080), "[::1]:8080", "/p")),
    ("http://[::1]/p", HttpTarget("http", TcpAddress("::1", 80), "[::1]", "/p")),
    ("ws://127.0.0.1:9000/chat",
     HttpTarget("ws", TcpAddress("127.0.0.1", 9000), "127.0.0.1:9000", "/chat")),
    ("wss://example.com/chat",
     HttpTarget("wss", TcpAddress("example.com", 443, tls=True), "example.com", "/chat")),
    ("http+unix://%2Frun%2Fapp.sock/users",
     HttpTarget("http", UnixAddress("/run/app.sock"), "localhost", "/users")),
    ("HTTP+UNIX://%2Frun%2Fapp.sock",
     HttpTarget("http", UnixAddress("/run/app.sock"), "localhost", "/")),
    ("http+unix://%40app/users",
     HttpTarget("http", UnixAddress("app", abstract=True), "localhost", "/users")),
    ("http://unix:/run/app.sock:/users?x=1",
     HttpTarget("http", UnixAddress("/run/app.sock"), "localhost", "/users?x=1")),
    ("http://unix:/run/app.sock:",
     HttpTarget("http", UnixAddress("/run/app.sock"), "localhost", "/")),
    ("http+fifo://%2Ftmp%2Fapp.fifo/p",
     HttpTarget("http", FifoAddress("/tmp/app.fifo"), "localhost", "/p")),
    ("ws+unix://%2Frun%2Fapp.sock/chat",
     HttpTarget("ws", UnixAddress("/run/app.sock"), "localhost", "/chat")),
    ("ws+fifo://%2Ftmp%2Fapp.fifo/chat",
     HttpTarget("ws", FifoAddress("/tmp/app.fifo"), "localhost", "/chat")),
]


@pytest.mark.parametrize(("url", "expected"), HTTP_GOOD, ids=[u for u, _ in HTTP_GOOD])
def test_http_url_forms(url: str, expected: HttpTarget) -> None:
    target = parse_http_url(url)
    assert target == expected
    assert parse_http_url(format_http_url(target)) == target


def test_http_target_flags() -> None:
    assert parse_http_url("wss://h/").is_websocket and parse_http_url("wss://h/").tls
    assert not parse_http_url("http://h/").is_websocket
    assert not parse_http_url("ws+unix://%2Fa/").tls


_request_targets = st.builds(
    lambda segs, query: "/" + "/".join(segs) + (f"?{query}" if query else ""),
    st.lists(st.from_regex(r"[A-Za-z0-9._~-]{0,8}", fullmatch=True), max_size=3),
    st.from_regex(r"[A-Za-z0-9=&]{0,10}", fullmatch=True))


@given(st.sampled_from(["http", "https", "ws", "wss"]),
       st.one_of(st.builds(lambda p: UnixAddress(p), abs_paths),
                 st.builds(lambda n: UnixAddress(n, abstract=True), abstract_names),
                 st.builds(FifoAddress, abs_paths)),
       _request_targets)
def test_local_http_urls_round_trip(scheme: str, transport: UnixAddress | FifoAddress,
                                    target: str) -> None:
    value = HttpTarget(scheme, transport, "localhost", target)  # type: ignore[arg-type]
    assert parse_http_url(format_http_url(value)) == value


def test_non_utf8_socket_paths_round_trip_percent_encoded() -> None:
    # A path byte that is not UTF-8 (0xFF) is U+DCFF in Python (os.fsdecode); in an HTTP URL
    # it is percent-encoded as the byte itself, and either spelling parses to that byte.
    target = parse_http_url("http+unix://%2Ftmp%2F%FF.sock/p")
    assert target.transport == UnixAddress("/tmp/\udcff.sock")
    assert format_http_url(target) == "http+unix://%2Ftmp%2F%FF.sock/p"
    assert parse_http_url("http+unix://%2Ftmp%2F\udcff.sock/p") == target
    abstract = parse_http_url("ws+unix://%40a%FFb/")
    assert abstract.transport == UnixAddress("a\udcffb", abstract=True)
    assert abstract.transport.sockaddr == b"\0a\xffb"
    assert format_http_url(abstract) == "ws+unix://%40a%FFb/"


def test_escaped_utf8_is_the_same_path_as_its_text() -> None:
    # b"\xc3\xa9" is "é": the same file whichever way it was spelt, so the same address.
    assert UnixAddress("/tmp/\udcc3\udca9") == UnixAddress("/tmp/é")
    assert FifoAddress("/tmp/\udcc3\udca9") == FifoAddress("/tmp/é")
    assert parse_http_url("http+unix://%2Ftmp%2F%C3%A9/").transport == UnixAddress("/tmp/é")


# --------------------------------------------------------------------------- bad forms

# (url, fragment of the message that names the offending part)
BAD = [
    ("", "is empty"),
    ("localhost", "scheme"),
    ("gopher://x:1", "'gopher'"),
    ("http://127.0.0.1:8000/", "HTTP/WebSocket URL"),
    ("ws+unix://%2Fa/", "HTTP/WebSocket URL"),
    ("tcp:127.0.0.1:80", "'//'"),
    ("tcp://", "'//'"),
    ("tcp://127.0.0.1", "port is missing"),
    ("tcp://127.0.0.1:", "port ''"),
    ("tcp://127.0.0.1:http", "port 'http'"),
    ("tcp://127.0.0.1:70000", "port 70000"),
    ("tcp://127.0.0.1:-1", "port '-1'"),
    ("tcp://127.0.0.1:\u00b2", "port '\u00b2'"),
    ("tcp://127.0.0.1:\u0663", "port '\u0663'"),
    ("tcp://127.0.0.1:" + "9" * 5000, "port '999"),
    ("tcp://127.0.0.1:80/path", "'127.0.0.1:80/path'"),
    ("tcp://:80", "host"),
    ("tcp://bad host:80", "host 'bad host'"),
    ("tcp://under_score!:80", "host 'under_score!'"),
    ("tcp://::1:80", "must be in brackets"),
    ("tcp://[::1:80", "closing ']'"),
    ("tcp://[not-v6]:80", "host [not-v6]"),
    ("tcp://[127.0.0.1]:80", "host [127.0.0.1]"),
    ("tcp://[::1]", "port is missing"),
    ("tcp://[::1]80", "port is missing"),
    ("tls://localhost", "port is missing"),
    ("udp://127.0.0.1", "port is missing"),
    ("udp://[::1]:99999", "port 99999"),
    ("unix:", "path is empty"),
    ("unix:@", "path is empty"),
    ("unix://run/app.sock", "'run/app.sock'"),
    ("unix:a\0b", "NUL"),
    ("unixgram://x", "'x'"),
    ("fifo:@name", "'@' name"),
    ("fifo://tmp/f", "'tmp/f'"),
    ("fifo:", "path is empty"),
    ("fd://", "'//'"),
    ("fd:3", "'//'"),
    ("fd://-1", "name '-1'"),
    ("fd://a b", "name 'a b'"),
    ("fd://web:admin", "name 'web:admin'"),
    ("fd://\u0663", "name '\u0663'"),
    ("fd://" + "9" * 5000, "name '999"),
    ("svc://", "'//'"),
    ("svc://bad name", "service name 'bad name'"),
    ("svc://-lead", "service name '-lead'"),
    ("svc://trail-", "must be a DNS label"),
    ("svc://billing.v2", "'billing-v2' would do"),
    ("svc://Users", "'users' would do"),
    ("svc://under_score", "'under-score' would do"),
    ("svc://" + "x" * 64, "1 to 63"),
]


@pytest.mark.parametrize(("url", "fragment"), BAD, ids=[repr(u)[:40] for u, _ in BAD])
def test_bad_address_names_part_and_example(url: str, fragment: str) -> None:
    with pytest.raises(AddressError) as info:
        parse_address(url)
    message = str(info.value)
    assert fragment in message
    assert "example" in message
    assert info.value.example in message


HTTP_BAD = [
    ("127.0.0.1:8000/x", "scheme"),
    ("ftp://host/", "'ftp'"),
    ("tcp://host:80/", "'tcp'"),
    ("http+tcp://host/", "'+tcp'"),
    ("http+unix:///p", "socket path"),
    ("http+unix://%2Fa%00b/p", "NUL"),
    ("http://unix:/run/app.sock", "unix socket path"),
    ("http://unix::/p", "unix socket path"),
    ("http://user:pw@host/", "userinfo"),
    ("http:///p", "host"),
    ("http://host:abc/", "port 'abc'"),
    ("http://host:99999/", "port 99999"),
    ("http://[::1/", "closing ']'"),
    ("http://bad host/", "host 'bad host'"),
    ("http+fifo://%40name/p", "'@'"),
]


@pytest.mark.parametrize(("url", "fragment"), HTTP_BAD, ids=[repr(u) for u, _ in HTTP_BAD])
def test_bad_http_url_names_part_and_example(url: str, fragment: str) -> None:
    with pytest.raises(AddressError) as info:
        parse_http_url(url)
    message = str(info.value)
    assert fragment in message
    assert "example" in message


@given(st.text(max_size=40))
def test_parse_http_url_raises_only_address_error(text: str) -> None:
    for url in (text, "http://" + text, "http+unix://" + text, "http://unix:" + text):
        try:
            parse_http_url(url)
        except AddressError as exc:
            assert "example" in str(exc)


# --------------------------------------------------------------------------- path limit


@pytest.mark.parametrize("url", [
    "unix:///" + "x" * MAX_UNIX_PATH_BYTES,
    "unix:" + "x" * (MAX_UNIX_PATH_BYTES + 1),
    "unix:@" + "x" * (MAX_UNIX_PATH_BYTES + 1),
    "unixgram:///" + "x" * 200,
    "unix:///" + "\u00e9" * 54,  # 108 bytes in UTF-8, only 55 characters
])
def test_unix_path_over_107_bytes_is_path_too_long(url: str) -> None:
    with pytest.raises(PathTooLongError) as info:
        parse_address(url)
    assert "107" in str(info.value)
    assert "example" in str(info.value)


def test_path_too_long_in_http_url_and_value() -> None:
    with pytest.raises(PathTooLongError):
        parse_http_url("http+unix://%2F" + "x" * 120 + "/p")
    with pytest.raises(PathTooLongError):
        UnixAddress("/" + "x" * 200)


def test_fifo_paths_have_no_socket_limit() -> None:
    path = "/" + "f" * 300
    assert parse_address("fifo://" + path) == FifoAddress(path)


# --------------------------------------------------------------------------- values validate


@pytest.mark.parametrize("build", [
    lambda: TcpAddress("", 80),
    lambda: TcpAddress("localhost", 65536),
    lambda: TcpAddress("localhost", True),  # type: ignore[arg-type]
    lambda: UdpAddress("not an ip", 1),
    lambda: UnixAddress(""),
    lambda: UnixAddress("@looks-abstract"),
    lambda: UnixAddress("\ud800bad-surrogate"),
    lambda: FifoAddress("@x"),
    lambda: FdAddress(),
    lambda: FdAddress(fd=3, name="web"),
    lambda: FdAddress(fd=-1),
    lambda: FdAddress(name="123"),
    lambda: ServiceAddress("no spaces"),
])
def test_invalid_values_cannot_be_built(build: object) -> None:
    with pytest.raises(AddressError) as info:
        build()  # type: ignore[operator]
    assert "example" in str(info.value)
