"""The domain lab's client, run in the client namespace with `ip netns exec`, so that its
resolver reads /etc/netns/NS/resolv.conf (the lab's dnsmasq) as /etc/resolv.conf.

    race WORKERS FILE   resolve each name of FILE (one a line) and connect to TCP 443 of its
                        first IPv4 address at once, WORKERS at a time; one JSON line a name
                        (it stops after MAX_FAILURES failed names)
    hold NAME SECONDS   resolve NAME, open a TLS connection to its port 443 and GET /, wait
                        SECONDS, try a new connection to the same address, GET / again on the
                        first one; one JSON line

Every socket has a timeout: nothing here waits longer than a few seconds.
"""

import concurrent.futures
import json
import socket
import ssl
import sys
import time

# A dropped first SYN is retransmitted after 1 s: a connect that takes longer lost its first SYN.
RACE_CONNECT_TIMEOUT = 3.0
HOLD_CONNECT_TIMEOUT = 2.0
# The race gives up after this many failed names.
MAX_FAILURES = 20


def ms_since(start):
    return round((time.monotonic() - start) * 1000.0, 1)


def resolve(name):
    infos = socket.getaddrinfo(name, 443, socket.AF_INET, socket.SOCK_STREAM)
    return infos[0][4][0]


def connect(addr, timeout):
    """(socket or None, milliseconds, error or None)"""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    start = time.monotonic()
    try:
        sock.connect((addr, 443))
        return sock, ms_since(start), None
    except OSError as err:
        sock.close()
        return None, ms_since(start), str(err) or type(err).__name__


def race_one(name):
    start = time.monotonic()
    try:
        addr = resolve(name)
    except OSError as err:
        return {"name": name, "addr": None, "resolve_ms": ms_since(start),
                "connect_ms": None, "error": "resolve: " + str(err)}
    resolve_ms = ms_since(start)
    sock, connect_ms, err = connect(addr, RACE_CONNECT_TIMEOUT)
    if sock is not None:
        sock.close()
    return {"name": name, "addr": addr, "resolve_ms": resolve_ms,
            "connect_ms": connect_ms, "error": err}


def race(workers, path):
    """Stops after MAX_FAILURES failed names: a filter that blocks them all costs seconds."""
    with open(path, encoding="ascii") as file:
        names = file.read().split()
    workers = int(workers)
    failures = 0
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for start in range(0, len(names), workers * 4):
            for result in pool.map(race_one, names[start:start + workers * 4]):
                print(json.dumps(result), flush=True)
                if result["error"] is not None:
                    failures += 1
            if failures >= MAX_FAILURES:
                print("stopped after %d failures" % failures, flush=True)
                return


def get(tls):
    """The status line of GET / on an open TLS connection, or an error text."""
    try:
        tls.sendall(b"GET / HTTP/1.1\r\nHost: gotofw-lab\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = tls.recv(4096)
            if not chunk:
                return "closed"
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            chunk = tls.recv(4096)
            if not chunk:
                return "closed"
            body += chunk
        return head.split(b"\r\n")[0].decode("ascii", "replace")
    except OSError as err:
        return "error: " + (str(err) or type(err).__name__)


def hold(name, seconds):
    result = {"name": name}
    try:
        addr = resolve(name)
    except OSError as err:
        result["error"] = "resolve: " + str(err)
        print(json.dumps(result))
        return
    result["addr"] = addr
    sock, result["connect_ms"], err = connect(addr, HOLD_CONNECT_TIMEOUT)
    if sock is None:
        result["error"] = "connect: " + err
        print(json.dumps(result))
        return
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with context.wrap_socket(sock, server_hostname=name) as tls:
        result["first"] = get(tls)
        time.sleep(float(seconds))
        fresh, result["fresh_ms"], result["fresh_error"] = connect(addr, HOLD_CONNECT_TIMEOUT)
        result["fresh"] = fresh is not None
        if fresh is not None:
            fresh.close()
        result["second"] = get(tls)
    print(json.dumps(result))


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "race":
        race(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "hold":
        hold(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: client.py race WORKERS FILE | hold NAME SECONDS")


main()
