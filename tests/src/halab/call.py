"""The HA lab's media client: a real TURN allocation (RFC 8656, long-term credentials) through
coturn, then data relayed both ways at a fixed rate, run in the client namespace.

    call.py SERVER PORT USER PASSWORD PEER_IP PEER_PORT SECONDS RATE

Allocates a UDP relay on SERVER:PORT, permits PEER and binds channel 0x4000 to it, then sends
RATE ChannelData messages a second for SECONDS: each carries a sequence number and the send
time. The peer (coturn's turnutils_peer) echoes them, the relay sends them back. Prints one line
`allocated RELAY` once the relay is usable, then one JSON line at the end:

    local (the client's UDP port), sent, received (distinct sequence numbers back), lost,
    first_rx and last_rx (epoch seconds),
    gaps: every interval without relayed data back longer than GAP_MS, as
          [start epoch, end epoch, milliseconds], in time order

The socket has a timeout and every loop a deadline: nothing waits longer than the call.
"""

import hashlib
import hmac
import json
import os
import select
import socket
import struct
import sys
import time

MAGIC = 0x2112A442
ALLOCATE, CREATE_PERMISSION, CHANNEL_BIND = 0x0003, 0x0008, 0x0009
SUCCESS, ERROR = 0x0100, 0x0110
USERNAME, MESSAGE_INTEGRITY, ERROR_CODE, REALM, NONCE = 0x0006, 0x0008, 0x0009, 0x0014, 0x0015
XOR_PEER_ADDRESS, XOR_RELAYED_ADDRESS, REQUESTED_TRANSPORT = 0x0012, 0x0016, 0x0019
CHANNEL_NUMBER, LIFETIME = 0x000C, 0x000D
CHANNEL = 0x4000
# Intervals without data back shorter than this are not reported (50 packets/s: 20 ms apart).
GAP_MS = 30.0
PAYLOAD = 160
REQUEST_TIMEOUT = 2.0
REQUEST_TRIES = 3


def attr(kind, value):
    pad = (4 - len(value) % 4) % 4
    return struct.pack("!HH", kind, len(value)) + value + b"\0" * pad


def xor_address(ip, port):
    raw = socket.inet_aton(ip)
    xip = bytes(a ^ b for a, b in zip(raw, struct.pack("!I", MAGIC)))
    return struct.pack("!BBH", 0, 1, port ^ (MAGIC >> 16)) + xip


def parse_xor_address(value):
    port = struct.unpack("!H", value[2:4])[0] ^ (MAGIC >> 16)
    ip = bytes(a ^ b for a, b in zip(value[4:8], struct.pack("!I", MAGIC)))
    return socket.inet_ntoa(ip), port


def parse(msg):
    kind, length, magic = struct.unpack("!HHI", msg[:8])
    tid = msg[8:20]
    attrs = {}
    pos = 20
    while pos + 4 <= 20 + length and pos + 4 <= len(msg):
        akind, alen = struct.unpack("!HH", msg[pos:pos + 4])
        attrs.setdefault(akind, msg[pos + 4:pos + 4 + alen])
        pos += 4 + alen + (4 - alen % 4) % 4
    return kind, tid, attrs


class Turn:
    def __init__(self, server, user, password):
        self.server = server
        self.user = user.encode()
        self.password = password.encode()
        self.realm = None
        self.nonce = None
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect(server)
        self.sock.settimeout(REQUEST_TIMEOUT)

    def message(self, method, attrs):
        tid = os.urandom(12)
        body = b"".join(attrs)
        if self.nonce is not None:
            body += attr(USERNAME, self.user) + attr(REALM, self.realm) + attr(NONCE, self.nonce)
            key = hashlib.md5(self.user + b":" + self.realm + b":" + self.password).digest()
            header = struct.pack("!HHI", method, len(body) + 24, MAGIC) + tid
            mac = hmac.new(key, header + body, hashlib.sha1).digest()
            body += attr(MESSAGE_INTEGRITY, mac)
        return tid, struct.pack("!HHI", method, len(body), MAGIC) + tid + body

    def request(self, method, attrs):
        """The success response's attributes; retries on 401/438 with the server's nonce."""
        for _ in range(REQUEST_TRIES):
            tid, msg = self.message(method, attrs)
            self.sock.send(msg)
            deadline = time.monotonic() + REQUEST_TIMEOUT
            while time.monotonic() < deadline:
                data = self.sock.recv(2048)
                if len(data) < 20 or data[0] & 0xC0:
                    continue
                kind, rtid, rattrs = parse(data)
                if rtid != tid:
                    continue
                if kind == method | SUCCESS:
                    return rattrs
                code = rattrs.get(ERROR_CODE, b"\0\0\0\0")
                number = code[2] * 100 + code[3]
                if kind == method | ERROR and number in (401, 438) and NONCE in rattrs:
                    self.realm = rattrs.get(REALM, self.realm)
                    self.nonce = rattrs[NONCE]
                    break
                raise RuntimeError(f"TURN request {method:#x} failed: {number} {code[4:]!r}")
        raise RuntimeError(f"TURN request {method:#x}: no success after {REQUEST_TRIES} tries")


def main():
    server, port, user, password, peer_ip, peer_port, seconds, rate = sys.argv[1:9]
    port, peer_port, seconds, rate = int(port), int(peer_port), float(seconds), int(rate)
    turn = Turn((server, port), user, password)
    relayed = turn.request(ALLOCATE, [attr(REQUESTED_TRANSPORT, b"\x11\0\0\0"),
                                      attr(LIFETIME, struct.pack("!I", 600))])
    relay = parse_xor_address(relayed[XOR_RELAYED_ADDRESS])
    peer = attr(XOR_PEER_ADDRESS, xor_address(peer_ip, peer_port))
    turn.request(CREATE_PERMISSION, [peer])
    turn.request(CHANNEL_BIND, [attr(CHANNEL_NUMBER, struct.pack("!HH", CHANNEL, 0)), peer])
    print(f"allocated {relay[0]}:{relay[1]}", flush=True)

    sock = turn.sock
    sock.setblocking(False)
    interval = 1.0 / rate
    count = int(seconds * rate)
    start = time.monotonic()
    end = start + seconds + 1.0
    received = set()
    sent = 0
    last_rx = None
    first_rx = None
    gaps = []
    # The gap before the first echo counts too: from the first send.
    previous = time.time()
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if sent < count and now >= start + sent * interval:
            payload = struct.pack("!Id", sent, time.time()).ljust(PAYLOAD, b"\0")
            try:
                sock.send(struct.pack("!HH", CHANNEL, len(payload)) + payload)
            except OSError:
                # ICMP errors from a vanished route surface here; the datagram is lost.
                pass
            sent += 1
            continue
        wait = max(0.0, min(start + sent * interval, end) - time.monotonic())
        ready, _, _ = select.select([sock], [], [], wait if sent < count else end - now)
        if not ready:
            continue
        try:
            data = sock.recv(2048)
        except OSError:
            continue
        if len(data) < 16 or struct.unpack("!H", data[:2])[0] != CHANNEL:
            continue
        seq = struct.unpack("!I", data[4:8])[0]
        arrival = time.time()
        gap_ms = (arrival - previous) * 1000.0
        if gap_ms > GAP_MS:
            gaps.append([previous, arrival, round(gap_ms, 1)])
        previous = arrival
        last_rx = arrival
        if first_rx is None:
            first_rx = arrival
        received.add(seq)
    print(json.dumps({
        "relay": f"{relay[0]}:{relay[1]}",
        "local": sock.getsockname()[1],
        "sent": sent,
        "received": len(received),
        "lost": sent - len(received),
        "first_rx": first_rx,
        "last_rx": last_rx,
        "gaps": gaps,
    }), flush=True)


if __name__ == "__main__":
    main()
