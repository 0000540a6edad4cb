#!/usr/bin/env python3
"""HotPool's test origin: a real TLS 1.2/1.3 HTTP/1.1 and HTTP/2 server, independent of HotPool.

It listens on several loopback IPs (one port) for one test host name, with a test CA it makes
itself, and is driven by JSON lines on stdin (one reply line each on stdout):

  {"cmd":"rule","ip":IP|"*","path":P|"*","action":{...},"times":N}   how to answer; see Conn.answer
  {"cmd":"clear_rules"}
  {"cmd":"tls","ip":IP,"mode":"good"|"untrusted"|"stall"|"greet"|"tickets"|"h2"}   for new connections on IP
      (h2: as good, with ALPN h2 offered before http/1.1; the others offer http/1.1 only)
  {"cmd":"stats"} / {"cmd":"reset_stats"}                             per-IP counters
  {"cmd":"wait_closed"|"wait_handshakes","ip":IP|"*","count":N,"timeout":S}   until >= N
  {"cmd":"wait_open","ip":IP|"*","count":N,"timeout":S}                until == N
  {"cmd":"close_idle","ip":IP|"*","mode":"notify"|"fin"|"reset"|"goaway"|"mute","count":N}   close idle connections
      (goaway: HTTP/2 GOAWAY, then the close; mute: an HTTP/2 connection stays open and sends nothing more)
  {"cmd":"send_idle","ip":IP|"*","data":"...","count":N}              stray bytes to idle ones
  {"cmd":"ping_idle","ip":IP|"*","pings":P,"batch":B,"interval_ms":T,"count":N,"seconds":S}
      P HTTP/2 PING frames to idle h2 ones, in writes of B (default 1000) frames T ms apart (with S:
      stops reading and sends them for at most S seconds, then closes, as the ping_flood action)
      (these three first wait, at most 5 s, until N connections (default 1) are idle on the IP)
  {"cmd":"hear","ip":IP|"*","count":N}      connections a "deaf" rule stopped read again, to the
      client's close (first waits, at most 5 s, until N (default 1) are deaf on the IP)
  {"cmd":"requests","ip":IP|"*","last":N}   request heads: method, path, headers (in order),
      and "conn", the number of the connection that carried it (1, 2, ... in accept order), "local",
      the IP it reached, and "at", when it was read (seconds on the server's monotonic clock);
      "body_len" and "body_sha256" (lowercase hex), of the body bytes read (hashed as they arrive,
      never held; HTTP/1.1: Content-Length or chunked; none under a "deaf" rule)
  {"cmd":"hellos","ip":IP|"*","last":N}     parsed raw ClientHellos, with JA3 and JA4 (see ja4) and also
      "ja4_r" (JA4 raw: the texts JA4 hashes), "psk" (pre_shared_key (41) offered), "key_share_groups"
      (the key_share (51) entries' groups in order, GREASE included), "cert_compression"
      (compress_certificate (27) algorithms), "alps" (17513 or 17613, the ALPS extension present,
      or null), "resumed" (whether the handshake resumed a TLS session; null until it completes)
  {"cmd":"h2_settings","max_concurrent_streams":N}   SETTINGS_MAX_CONCURRENT_STREAMS of new h2 connections
  {"cmd":"h2_peaks"}                         per h2 connection number: the most streams it had open at once
  {"cmd":"bulk_sent"}                        {"sent": bytes of bulk bodies sent, HTTP/1.1 and HTTP/2}
  {"cmd":"h2_flow"}                          {"sent": DATA payload bytes sent on every h2 connection,
      "waiting": body bytes queued now that the client's flow-control windows hold back}
  {"cmd":"frames","ip":IP|"*","last":N}     HTTP/2 frames received, in order: type, stream, flags,
      SETTINGS as [[id, value], ...] in wire order, WINDOW_UPDATE increment, HEADERS and PRIORITY
      priority (exclusive, depends_on, weight 1-256), and "conn"
  {"cmd":"akamai","ip":IP|"*","conn":N}     {"akamai": "SETTINGS|WINDOW_UPDATE|PRIORITY|PSEUDO", "conn": N}:
      the Akamai HTTP/2 fingerprint of the frames h2 connection N received (default: the most recent
      h2 connection on IP); see akamai()
  {"cmd":"sources","ip":IP|"*","last":N}    peer (source) IPs of accepted connections, in accept order
  {"cmd":"quit"}  (or EOF on stdin)

A connection is served by its own thread. The raw ClientHello is peeked (MSG_PEEK) before the
TLS handshake, so it is parsed from the bytes on the wire, not from what OpenSSL reports.
Each mode's TLS context lives as long as the origin, so a TLS 1.3 session ticket it issued (OpenSSL's
two per handshake by default) resumes on any later connection in that mode.
HTTP/2 is served by the `h2` package (hyper-h2), and its frames are parsed by `hyperframe`
from the bytes received, so fingerprints are computed from the wire, not from HotPool.
"""
import argparse, collections, datetime, hashlib, ipaddress, json, os, select, socket, ssl, struct, sys, tempfile, threading, time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
import h2.config, h2.connection, h2.errors, h2.events, h2.exceptions, h2.settings
from hyperframe.frame import Frame, GoAwayFrame, HeadersFrame, PingFrame, PriorityFrame, SettingsFrame, WindowUpdateFrame
from control import serve_commands
import brotli, gzip, random, zlib, zstandard

REASONS = {200: "OK", 201: "Created", 204: "No Content", 301: "Moved Permanently", 403: "Forbidden",
           404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}


# ---------------------------------------------------------------- certificates

def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path, key, cert):
    with open(path + ".key", "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(path + ".pem", "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


def make_certificates(directory, host, ips):
    """A test CA with a leaf for host (+ IP SANs), and an untrusted self-signed leaf for host."""
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=7)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("HotPool test CA")).issuer_name(_name("HotPool test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    _write(os.path.join(directory, "ca"), ca_key, ca)
    sans = [x509.DNSName(host)] + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    for name, issuer, issuer_key in (("server", ca, ca_key), ("untrusted", None, None)):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(_name(host)).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
                   .add_extension(x509.SubjectAlternativeName(sans), critical=False))
        builder = builder.issuer_name(issuer.subject if issuer else _name(host))
        _write(os.path.join(directory, name), key, builder.sign(issuer_key or key, hashes.SHA256()))


def server_context(directory, name, alpn=("http/1.1",)):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(os.path.join(directory, name + ".pem"), os.path.join(directory, name + ".key"))
    ctx.set_alpn_protocols(list(alpn))
    return ctx


# ---------------------------------------------------------------- ClientHello parsing, JA3, JA4

def is_grease(v):
    return (v & 0x0f0f) == 0x0a0a and (v >> 8) == (v & 0xff)


def peek_client_hello(sock, timeout=5.0):
    """The first TLS record, peeked (not consumed), or None."""
    sock.settimeout(timeout)
    data = b""
    while True:
        data = sock.recv(16384 + 5, socket.MSG_PEEK)
        if len(data) >= 5:
            need = 5 + struct.unpack("!H", data[3:5])[0]
            if len(data) >= need:
                return data[:need]
        if not data:
            return None
        # Not all there yet: wait for more before peeking again.
        select.select([sock], [], [], 0.05)


def parse_client_hello(record):
    if len(record) < 9 or record[0] != 22 or record[5] != 1:
        return None
    body = record[9:]
    p = 0
    legacy_version = struct.unpack("!H", body[p:p + 2])[0]
    p += 2 + 32
    p += 1 + body[p]                                   # session id
    n = struct.unpack("!H", body[p:p + 2])[0]
    ciphers = list(struct.unpack("!%dH" % (n // 2), body[p + 2:p + 2 + n]))
    p += 2 + n
    p += 1 + body[p]                                   # compression methods
    hello = {"legacy_version": legacy_version, "cipher_suites": ciphers, "extensions": [],
             "supported_groups": [], "ec_point_formats": [], "signature_algorithms": [], "alpn": [],
             "supported_versions": [], "sni": None, "key_share_groups": [], "cert_compression": [],
             "length": len(record) - 5}
    if p + 2 <= len(body):
        end = p + 2 + struct.unpack("!H", body[p:p + 2])[0]
        p += 2
        while p + 4 <= end:
            etype, elen = struct.unpack("!HH", body[p:p + 4])
            data = body[p + 4:p + 4 + elen]
            p += 4 + elen
            hello["extensions"].append(etype)
            if etype == 0 and len(data) >= 5:
                hello["sni"] = data[5:5 + struct.unpack("!H", data[3:5])[0]].decode()
            elif etype == 10:
                hello["supported_groups"] = list(struct.unpack("!%dH" % (len(data[2:]) // 2), data[2:]))
            elif etype == 11:
                hello["ec_point_formats"] = list(data[1:1 + data[0]])
            elif etype == 13:
                hello["signature_algorithms"] = list(struct.unpack("!%dH" % (len(data[2:]) // 2), data[2:]))
            elif etype == 16:
                q = 2
                while q < len(data):
                    hello["alpn"].append(data[q + 1:q + 1 + data[q]].decode())
                    q += 1 + data[q]
            elif etype == 43:
                hello["supported_versions"] = list(struct.unpack("!%dH" % (data[0] // 2), data[1:1 + data[0]]))
            elif etype == 27 and data:
                hello["cert_compression"] = list(struct.unpack("!%dH" % (data[0] // 2), data[1:1 + data[0]]))
            elif etype == 51:
                q = 2
                while q + 4 <= len(data):
                    group, klen = struct.unpack("!HH", data[q:q + 4])
                    hello["key_share_groups"].append(group)
                    q += 4 + klen
    hello["psk"] = 41 in hello["extensions"]
    hello["alps"] = next((e for e in hello["extensions"] if e in (17513, 17613)), None)
    hello["ja3"], hello["ja3_hash"] = ja3(hello)
    hello["ja4"], hello["ja4_r"] = ja4(hello)
    hello["resumed"] = None                            # set once the handshake completes (Conn.serve)
    hello["raw_hex"] = record.hex()
    return hello


def ja3(h):
    """SSLVersion,Ciphers,Extensions,EllipticCurves,EllipticCurvePointFormats; GREASE left out."""
    def join(values):
        return "-".join(str(v) for v in values if not is_grease(v))
    text = ",".join([str(h["legacy_version"]), join(h["cipher_suites"]), join(h["extensions"]),
                     join(h["supported_groups"]), join(h["ec_point_formats"])])
    return text, hashlib.md5(text.encode()).hexdigest()


def ja4(h):
    """FoxIO JA4 (TLS over TCP) and JA4_r (its raw form): (ja4_a_ja4_b_ja4_c, ja4_a_b_c).

    ja4_a: 't', the highest non-GREASE supported_versions value (else the legacy version) as
    '13'/'12'/'11'/'10', 'd' if SNI is present else 'i', the cipher count and the extension count
    (GREASE left out, SNI and ALPN counted, each capped at 99, two digits), and the first and last
    characters of the first ALPN value ('00' without ALPN).
    b: the sorted 4-digit hex ciphers (GREASE left out) joined by ','.
    c: the sorted hex extensions without GREASE, SNI (0000) and ALPN (0010), joined by ',', then
    '_' and the signature algorithms (GREASE left out) in their order (no '_' without any).
    JA4 hashes b and c (first 12 hex digits of SHA-256; '000000000000' for an empty b, or for c
    without extensions); JA4_r shows them as they are.
    """
    versions = [v for v in h["supported_versions"] if not is_grease(v)]
    version = max(versions) if versions else h["legacy_version"]
    vtext = {0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3"}.get(version, "00")
    ciphers = [c for c in h["cipher_suites"] if not is_grease(c)]
    exts = [e for e in h["extensions"] if not is_grease(e)]
    alpn = h["alpn"][0] if h["alpn"] else ""
    if not alpn:
        achars = "00"
    elif alpn[0].isalnum() and alpn[-1].isalnum():
        achars = alpn[0] + alpn[-1]
    else:
        achars = "99"
    a = "t%s%s%02d%02d%s" % (vtext, "d" if h["sni"] is not None else "i", min(len(ciphers), 99), min(len(exts), 99), achars)
    b = ",".join(sorted("%04x" % c for c in ciphers))
    ext_text = ",".join(sorted("%04x" % e for e in exts if e not in (0x0000, 0x0010)))
    sig_text = ",".join("%04x" % s for s in h["signature_algorithms"] if not is_grease(s))
    c = ext_text + "_" + sig_text if sig_text else ext_text

    def digest(text, present):
        return hashlib.sha256(text.encode()).hexdigest()[:12] if present else "000000000000"
    return "%s_%s_%s" % (a, digest(b, b), digest(c, ext_text)), "%s_%s_%s" % (a, b, c)


# ---------------------------------------------------------------- server state

class Origin:
    def __init__(self, ips, directory):
        self.ips = ips
        self.directory = directory
        tls12 = server_context(directory, "server")
        tls12.maximum_version = ssl.TLSVersion.TLSv1_2
        # greet: TLS 1.2 with a sound certificate, and an answer nobody asked for in the TCP segment
        # of the server's Finished
        # tickets: a sound TLS 1.3 handshake followed by 1,000 session tickets (about 200 KB of
        # records that carry no data)
        tickets = server_context(directory, "server")
        tickets.num_tickets = 1000
        self.contexts = {"good": server_context(directory, "server"), "untrusted": server_context(directory, "untrusted"),
                         "greet": tls12, "tickets": tickets, "h2": server_context(directory, "server", ("h2", "http/1.1"))}
        self.tls_mode = {ip: "good" for ip in ips}
        self.rules = []                                 # [ip, path, action, times_left]
        self.cond = threading.Condition()
        self.counters = {}
        self.reset_stats()
        self.idle = {}                                  # Conn -> ip, for connections waiting for a request
        self.deaf = {}                                  # Conn -> ip, for connections a "deaf" rule stopped reading
        self.hellos = {ip: collections.deque(maxlen=100) for ip in ips}
        self.requests = {ip: collections.deque(maxlen=100) for ip in ips}
        self.sources = {ip: collections.deque(maxlen=100) for ip in ips}   # {"ip": peer IP} per accept
        self.frames = {ip: collections.deque(maxlen=1000) for ip in ips}
        self.h2_max_streams = 100                       # SETTINGS_MAX_CONCURRENT_STREAMS of new h2 connections
        self.h2_peaks = {}                              # h2 connection number -> most streams open at once
        self.h2_sent = 0                                # DATA payload bytes sent on h2 connections
        self.h2_waiting = {}                            # h2 connection number -> body bytes held by flow control
        self.h2_pseudo = {}                             # h2 connection number -> pseudo-header names of its first HEADERS
        self.bulk_sent = 0                              # bytes of bulk bodies sent (HTTP/1.1 and HTTP/2)
        self.sequence = 0                               # orders captures across IPs
        self.connections = 0                            # numbers accepted connections across IPs

    def reset_stats(self):
        with self.cond:
            self.counters = {k: {ip: 0 for ip in self.ips} for k in ("accepted", "handshakes", "requests", "closed")}

    def number(self):
        """The next connection number."""
        with self.cond:
            self.connections += 1
            return self.connections

    def count(self, what, ip):
        with self.cond:
            self.counters[what][ip] += 1
            self.cond.notify_all()

    def stats(self):
        with self.cond:
            out = {k: dict(v) for k, v in self.counters.items()}
        out["open"] = {ip: out["accepted"][ip] - out["closed"][ip] for ip in self.ips}
        return out

    def total(self, what, ip):
        s = self.stats()[what]
        return sum(s.values()) if ip == "*" else s.get(ip, 0)

    def wait(self, what, ip, count, timeout):
        """Until the counter reaches count (open: equals it) or timeout seconds pass."""
        def done():
            value = self.total(what, ip)
            return value == count if what == "open" else value >= count
        with self.cond:
            ok = self.cond.wait_for(done, timeout)
        return {"ok": ok, what: self.total(what, ip)}

    def record(self, store, ip, item):
        """Keeps an item of a per-IP store, with its order, its IP ("local") and when ("at",
        seconds on the server's monotonic clock)."""
        with self.cond:
            self.sequence += 1
            item["seq"] = self.sequence
            item["local"] = ip
            item["at"] = time.monotonic()
            store[ip].append(item)

    def recent(self, store, ip, last):
        with self.cond:
            items = [x for i in (self.ips if ip == "*" else [ip]) for x in store.get(i, [])]
        return sorted(items, key=lambda x: x["seq"])[-last:]

    def rule_for(self, ip, path, consume=True):
        """The action for a request to path on ip; one use of its rule's "times", unless not consume."""
        with self.cond:
            for key in ((ip, path), (ip, "*"), ("*", path), ("*", "*")):
                for rule in reversed(self.rules):       # the newest rule wins
                    if (rule[0], rule[1]) == key:
                        if rule[3] is not None and consume:
                            rule[3] -= 1
                            if rule[3] <= 0:
                                self.rules.remove(rule)
                        return rule[2]
        return {"type": "status", "status": 200, "body": "ok"}

    def command_idle(self, ip, command, count):
        """Waits (bounded) until count connections are idle on ip, then hands a command to every
        idle connection there; returns how many carried it out."""
        def idle_here():
            return [c for c, cip in self.idle.items() if ip in ("*", cip)]
        with self.cond:
            self.cond.wait_for(lambda: len(idle_here()) >= count, 5)
            targets = idle_here()
        return sum(1 for c in targets if c.command(command))

    def hear(self, ip, count):
        """Waits (bounded) until count connections are deaf on ip, then has every deaf one there
        read again; returns how many."""
        def deaf_here():
            return [c for c, cip in self.deaf.items() if ip in ("*", cip)]
        with self.cond:
            self.cond.wait_for(lambda: len(deaf_here()) >= count, 5)
            targets = deaf_here()
            for c in targets:
                del self.deaf[c]
        for c in targets:
            c.wake_w.send(b"x")
        return len(targets)


class Conn:
    """One accepted connection, served by its own thread."""

    def __init__(self, origin, sock, ip):
        self.origin, self.raw, self.ip = origin, sock, ip
        self.number = origin.number()
        self.tls = None
        self.buffer = b""
        self.at = 0                                     # bytes of the buffer a body being read has consumed
        self.wake_r, self.wake_w = socket.socketpair()
        self.pending = None                             # (command, event, result list) from the control thread
        self.lock = threading.Lock()

    def command(self, command):
        """Runs on the control thread: asks the connection thread to act while it is idle."""
        done, result = threading.Event(), []
        with self.lock:
            self.pending = (command, done, result)
        self.wake_w.send(b"x")
        return done.wait(5) and result == [True]

    def serve(self):
        o = self.origin
        o.count("accepted", self.ip)
        try:
            self.raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            mode = o.tls_mode[self.ip]
            if mode == "stall":
                self.read_to_end()
                return
            record = peek_client_hello(self.raw)
            if record is None:
                return
            hello = parse_client_hello(record)
            if hello:
                o.record(o.hellos, self.ip, hello)
            self.raw.settimeout(10)
            if mode == "greet":
                # Corked, the handshake's flights leave when the kernel's 200 ms cork timer ends
                # them, and the last one (with the Finished) only with the greeting below.
                self.raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
            self.tls = o.contexts[mode].wrap_socket(self.raw, server_side=True)
            self.tls.settimeout(None)
            if hello:
                with o.cond:
                    hello["resumed"] = self.tls.session_reused
            o.count("handshakes", self.ip)
            if self.tls.selected_alpn_protocol() == "h2":
                H2Conn(self).serve()
                return
            if mode == "greet":
                self.tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
                self.tls.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
            while self.serve_one():
                pass
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            with o.cond:
                o.idle.pop(self, None)
                o.h2_waiting.pop(self.number, None)
            for s in (self.tls, self.raw, self.wake_r, self.wake_w):
                try:
                    if s:
                        s.close()
                except OSError:
                    pass
            o.count("closed", self.ip)

    def read_to_end(self):
        """Reads (and drops) everything until the client closes."""
        self.sock.settimeout(None)
        while self.sock.recv(65536):
            pass

    def read_more(self, idle):
        """Reads into the buffer; False on EOF. While idle, carries out control commands."""
        data = self.receive(idle)
        self.buffer += data
        return bool(data)

    def receive(self, idle, timeout=None):
        """The next bytes read (b"" at EOF, or when a control command ended the connection; None
        when `timeout` seconds passed first). While idle, carries out control commands."""
        while self.tls.pending() == 0:
            if idle:
                with self.origin.cond:
                    self.origin.idle[self] = self.ip
                    self.origin.cond.notify_all()
            ready, _, _ = select.select([self.tls, self.wake_r], [], [], timeout)
            with self.origin.cond:
                self.origin.idle.pop(self, None)
            if not ready:
                return None
            if self.wake_r in ready:
                self.wake_r.recv(16)
                with self.lock:
                    pending, self.pending = self.pending, None
                if pending:
                    command, done, result = pending
                    keep = self.run_command(command)
                    result.append(True)
                    done.set()
                    if not keep:
                        return b""
                continue
            break
        return self.tls.recv(65536)

    def run_command(self, command):
        """Returns whether the connection stays open."""
        kind = command["kind"]
        if kind == "goaway" and getattr(self, "h2conn", None):
            self.h2conn.goaway()
            return False
        if kind == "mute" and getattr(self, "h2conn", None):
            self.h2conn.muted = True
            return True
        if kind == "send":
            self.tls.sendall(command["data"].encode())
            return True
        if kind == "pings" and getattr(self, "h2conn", None):
            batch, interval_ms, seconds = command.get("batch", 1000), command.get("interval_ms", 0), command.get("seconds")
            try:
                if seconds:
                    H2Conn.flood_pings(self.tls, batch, interval_ms, seconds)
                    return False
                H2Conn.send_pings(self.tls, command["pings"], batch, interval_ms)
            except (OSError, ssl.SSLError):
                return False                            # the client closed it meanwhile
            return True
        if kind == "reset":
            self.abort()
        elif kind == "notify":
            try:
                self.tls.settimeout(2)
                self.tls.unwrap()
            except (OSError, ssl.SSLError, ValueError):
                pass
        else:  # fin: TCP close without close_notify
            self.sock.shutdown(socket.SHUT_RDWR)
        return False

    @property
    def sock(self):
        """The live socket: once wrapped, the TLS socket owns the descriptor."""
        return self.tls or self.raw

    def abort(self):
        """Ends the connection with a TCP RST (linger 0), without close_notify."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def serve_one(self):
        """Reads one request and answers it; False when the connection ends."""
        first = True
        while b"\r\n\r\n" not in self.buffer:
            if len(self.buffer) > 65536 or not self.read_more(idle=first and not self.buffer):
                return False
            first = False
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = [[k, v.strip()] for k, v in (line.split(":", 1) for line in lines[1:] if line)]
        lower = {k.lower(): v for k, v in headers}
        length = int(lower.get("content-length", "0"))
        codings = ",".join(v for k, v in headers if k.lower() == "transfer-encoding").split(",")
        path = target.split("?", 1)[0]
        o = self.origin
        action = o.rule_for(self.ip, path)             # before the body, which a "deaf" rule leaves unread
        early = action.get("early")                     # answered before the body is read (then read on)
        if early and not self.answer(action):
            return False
        digest = hashlib.sha256()                       # of the body, read as it arrives
        if action.get("type") == "deaf":
            body_len = 0
        elif codings[-1].strip().lower() == "chunked":  # the last coding frames the body
            body_len = self.read_chunked(digest)
        else:
            body_len = length if self.take(length, digest) else None
        if body_len is None:                            # EOF, or a malformed chunked body
            return False
        self.buffer, self.at = self.buffer[self.at:], 0  # what follows the body: the next request
        o.count("requests", self.ip)
        o.record(o.requests, self.ip, {"method": method, "path": path, "target": target, "headers": headers, "body_len": body_len,
                                         "body_sha256": digest.hexdigest(), "conn": self.number})
        keep = early or self.answer(action)
        return keep and "close" not in lower.get("connection", "").lower()

    # A request body is hashed as it arrives, never held: self.at marks how much of the buffer
    # (one read, plus the few bytes left of the one before) is consumed.

    def fill(self):
        """Reads more of a body into the buffer, dropping what is consumed; False at EOF."""
        data = self.receive(idle=False)
        self.buffer, self.at = self.buffer[self.at:] + data, 0
        return bool(data)

    def take(self, n, digest):
        """Consumes the next n bytes into digest; False at EOF."""
        while n:
            if self.at == len(self.buffer) and not self.fill():
                return False
            piece = memoryview(self.buffer)[self.at:self.at + n]
            digest.update(piece)
            self.at += len(piece)
            n -= len(piece)
        return True

    def read_line(self):
        """The next line, without its CRLF; None at EOF or past 64 KiB without a CRLF."""
        while (end := self.buffer.find(b"\r\n", self.at)) < 0:
            if len(self.buffer) - self.at > 65536 or not self.fill():
                return None
        line, self.at = self.buffer[self.at:end], end + 2
        return line

    def read_chunked(self, digest):
        """Consumes a chunked body into digest; its length, or None at EOF or for bad framing."""
        length = 0
        while True:
            line = self.read_line()
            if line is None:
                return None
            digits = line.split(b";", 1)[0].strip(b" \t")  # the size, without chunk extensions
            if not digits or digits.strip(b"0123456789abcdefABCDEF"):
                return None                             # (int() alone would take "0x", "_", "+")
            size = int(digits, 16)
            if size == 0:
                break
            if not self.take(size, digest) or self.read_line() != b"":   # the CRLF after the data
                return None
            length += size
        while (line := self.read_line()) != b"":      # trailer fields, to the empty line
            if line is None:
                return None
        return length

    def answer(self, action):
        """Sends the answer an action describes; returns whether the connection stays open.

        status: {"status", "body" | "body_size", "framing": "length"|"chunked"|"close",
                 "headers": [[k, v]], "connection_close"}, and content codings (see coded_body)
        Any action with "early": true is answered as soon as the request's head is read, its body
        read after (as a server refusing an upload with a 413 does); over HTTP/2 (where the answer
        must end its stream at once: no body) the stream is then reset with NO_ERROR, unless
        "early_reset" is false.
        raw:    {"data", "repeat", "repeat_count", "tail"}: exact bytes, connection kept; then
                "records": [...] instead sends each string as its own TLS record, all in one TCP
                segment; "then": [{"delay_ms", "data"}] sends more bytes later; "fin": true
                ends with a TCP FIN (no close_notify); "alert": true ends with a plaintext fatal
                TLS alert record written under the TLS layer, then a FIN
        endless: {"head", "repeat"}: the head, then "repeat" over and over (at most 30 s)
        bulk:   {"size"}: a 200 of that many bytes (byte i is i % 251), sent in 251 KiB blocks as the
                client takes them (counted in "bulk_sent")
        reset:  {"after_bytes"}: that much of a 200 with a 1000-byte body, then a TCP RST
        stall:  never answer (until the client closes)
        deaf:   never answer, and read nothing more (the request's body included) until a "hear"
                command, then everything until the client closes
        close:  close without answering (TCP FIN, no close_notify)
        """
        kind = action.get("type", "status")
        if kind == "raw":
            data = action.get("data", "") + action.get("repeat", "") * action.get("repeat_count", 0) + action.get("tail", "")
            records = action.get("records") or [data]
            cork = len(records) > 1
            if cork:
                self.tls.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
            for record in records:
                self.tls.sendall(record.encode("latin-1"))
            if cork:
                self.tls.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
            for step in action.get("then", []):
                time.sleep(step.get("delay_ms", 0) / 1000)
                self.tls.sendall(step["data"].encode("latin-1"))
            if action.get("alert"):
                os.write(self.tls.fileno(), b"\x15\x03\x03\x00\x02\x02\x50")  # fatal internal_error
            if action.get("fin") or action.get("alert"):
                self.sock.shutdown(socket.SHUT_RDWR)
                return False
            return True
        if kind == "endless":
            self.tls.settimeout(30)
            self.tls.sendall(action["head"].encode("latin-1"))
            unit = action["repeat"].encode("latin-1")
            block = unit * max(1, 65536 // len(unit))
            end = time.monotonic() + 30
            while time.monotonic() < end:
                self.tls.sendall(block)
            return False
        if kind == "reset":
            response = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"r" * 1000
            self.tls.sendall(response[:action.get("after_bytes", 10)])
            self.abort()
            return False
        if kind == "stall":
            self.read_to_end()
            return False
        if kind == "bulk":
            size = action["size"]
            self.tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
            for block in bulk_blocks(size):
                self.tls.sendall(block)
                with self.origin.cond:
                    self.origin.bulk_sent += len(block)
            return True
        if kind == "deaf":
            with self.origin.cond:
                self.origin.deaf[self] = self.ip
                self.origin.cond.notify_all()
            self.wake_r.recv(1)                         # until a "hear" command (Origin.hear)
            self.read_to_end()
            return False
        if kind == "close":
            self.sock.shutdown(socket.SHUT_RDWR)
            return False
        status = action.get("status", 200)
        body, coding_headers = coded_body(action)
        framing = action.get("framing", "length")
        close = action.get("connection_close", False) or framing == "close"
        head = "HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, "Status"))
        for k, v in action.get("headers", []) + coding_headers:
            head += "%s: %s\r\n" % (k, v)
        if framing == "length":
            head += "Content-Length: %d\r\n" % len(body)
        elif framing == "chunked":
            head += "Transfer-Encoding: chunked\r\n"
            body = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7]) for i in range(0, len(body), 7)) + b"0\r\n\r\n"
        if action.get("connection_close"):
            head += "Connection: close\r\n"
        self.tls.sendall(head.encode() + b"\r\n" + body)
        if close:
            try:
                self.tls.settimeout(2)
                self.tls.unwrap()                       # close_notify, then the TCP close in serve()
            except (OSError, ssl.SSLError, ValueError):
                pass
        return not close


# ---------------------------------------------------------------- content codings

ENCODERS = {
    "gzip": lambda data: gzip.compress(data, mtime=0),
    "deflate": zlib.compress,                                   # zlib-wrapped, as RFC 9110 says
    "deflate-raw": lambda data: zlib.compress(data, wbits=-15),  # raw deflate, as some servers send it
    "br": brotli.compress,
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
}
BOMB_CHUNK = 1 << 20
BOMB_BROTLI_QUALITY = 1                                         # brotli's default, 11, takes seconds per 100 MB
_bombs = {}


def text_body(size, seed):
    """size bytes of pseudo-random words: compressible as real text is, not trivially."""
    rng = random.Random(seed)
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(2000)]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(words) + (b"\n" if rng.random() < 0.1 else b" ")
    return bytes(out[:size])


def bomb(coding, size):
    """size zero bytes coded with coding, compressed in chunks (never held whole), cached."""
    key = (coding, size)
    if key not in _bombs:
        if coding == "gzip":
            c = zlib.compressobj(9, zlib.DEFLATED, 31)
            feed, end = c.compress, c.flush
        elif coding == "br":
            c = brotli.Compressor(quality=BOMB_BROTLI_QUALITY)
            feed, end = c.process, c.finish
        else:
            c = zstandard.ZstdCompressor().compressobj()
            feed, end = c.compress, c.flush
        chunk = b"\0" * BOMB_CHUNK
        _bombs[key] = b"".join(feed(chunk) for _ in range(size // BOMB_CHUNK)) + end()
    return _bombs[key]


def coded_body(action):
    """The body and extra headers of a status action. Content coding options:
    "text": N       N bytes of pseudo-random words (seed "seed", default 1) instead of "body"
    "encodings": [...]  codings applied in order (gzip, deflate, deflate-raw, br, zstd; any other
                    name is only named), with Content-Encoding naming them and X-Plain-SHA256 the
                    SHA-256 of the body before coding
    "corrupt": true  flips bytes in the middle of the coded body; "truncate": N drops its last N bytes
    "bomb": [coding, N]  N zero bytes coded (gzip, br or zstd), built in chunks
    """
    if "bomb" in action:
        coding, size = action["bomb"]
        return bomb(coding, size), [("Content-Encoding", coding)]
    if "text" in action:
        body = text_body(action["text"], action.get("seed", 1))
    else:
        body = (b"x" * action["body_size"]) if "body_size" in action else action.get("body", "ok").encode()
    encodings = action.get("encodings")
    if not encodings:
        return body, []
    headers = [("X-Plain-SHA256", hashlib.sha256(body).hexdigest())]
    for coding in encodings:
        body = ENCODERS.get(coding, lambda data: data)(body)
    if action.get("corrupt"):
        middle = len(body) // 2
        body = body[:middle] + bytes(b ^ 0x5a for b in body[middle:middle + 16]) + body[middle + 16:]
    if action.get("truncate"):
        body = body[:-action["truncate"]]
    names = ", ".join("deflate" if c == "deflate-raw" else c for c in encodings)
    return body, headers + [("Content-Encoding", names), ("X-Coded-SHA256", hashlib.sha256(body).hexdigest())]


# ---------------------------------------------------------------- bulk bodies

BULK_PERIOD = 251                                               # byte i of a bulk body is i % 251 (a prime:
BULK_BLOCK = bytes(i % BULK_PERIOD for i in range(BULK_PERIOD * 1024))  # no read boundary lines up with it)


def bulk_blocks(size):
    """The bulk body of size bytes, in blocks of at most BULK_BLOCK (byte i is i % BULK_PERIOD)."""
    while size > 0:
        block = BULK_BLOCK[:min(size, len(BULK_BLOCK))]
        size -= len(block)
        yield block


def pseudo(headers):
    """The pseudo-header fields of a header list, in order, as [[name, value], ...]."""
    return [[k, v] for k, v in headers if k.startswith(":")]


def akamai(frames, pseudo_names):
    """The Akamai HTTP/2 fingerprint of one connection from the frames it received, in order, and
    the pseudo-header names of its first HEADERS: SETTINGS|WINDOW_UPDATE|PRIORITY|PSEUDO.

    SETTINGS: the first SETTINGS frame's id:value pairs in wire order, joined by ';'.
    WINDOW_UPDATE: the increment of the first stream-0 WINDOW_UPDATE before the first HEADERS, or '00'.
    PRIORITY: the PRIORITY frames before the first HEADERS as stream:exclusive:depends_on:weight
    (exclusive 1/0, weight 1-256), joined by ',', or '0'.
    PSEUDO: the first letter after ':' of each pseudo-header, in order, joined by ','.
    """
    settings = next((f["settings"] for f in frames if f["type"] == "SETTINGS" and "ACK" not in f["flags"]), [])
    window, priorities = "00", []
    for f in frames:
        if f["type"] == "HEADERS":
            break
        if f["type"] == "WINDOW_UPDATE" and f["stream"] == 0 and window == "00":
            window = str(f["increment"])
        elif f["type"] == "PRIORITY":
            p = f["priority"]
            priorities.append("%d:%d:%d:%d" % (f["stream"], p["exclusive"], p["depends_on"], p["weight"]))
    return "|".join([";".join("%d:%d" % (k, v) for k, v in settings), window, ",".join(priorities) or "0",
                     ",".join(name[1:2] for name in pseudo_names)])


class H2Conn:
    """One HTTP/2 connection, served on its Conn's thread: hyper-h2 runs the protocol, and each
    frame the client sent is recorded as hyperframe parses it from the bytes received."""

    PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    FRAME_TYPES = {0: "DATA", 1: "HEADERS", 2: "PRIORITY", 3: "RST_STREAM", 4: "SETTINGS", 5: "PUSH_PROMISE", 6: "PING",
                   7: "GOAWAY", 8: "WINDOW_UPDATE", 9: "CONTINUATION"}

    def __init__(self, conn):
        self.c = conn
        conn.h2conn = self
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        self.preface_left = len(self.PREFACE)
        self.unparsed = b""                             # received bytes not yet parsed into frames
        self.open = set()                               # streams not answered yet
        self.pending = {}                               # stream -> body bytes waiting for flow control
        self.delayed = []                               # (due, stream, action): answers held by "delay_ms"
        self.held_bodies = set()                        # streams whose head went out and body waits ("body_delay_ms")
        self.bulk = {}                                  # stream -> the rest of its bulk body's blocks
        self.bulk_streams = set()                       # streams that answered with a bulk body
        self.heads = {}                                 # stream -> request header fields, until answered
        self.body_len = {}                              # stream -> request body bytes received
        self.body_sha256 = {}                           # stream -> their SHA-256 (a hashlib object)
        self.goaway_last = None                         # the last stream our GOAWAY let through
        self.muted = False                              # "mute": nothing is sent any more
        self.held = set()                               # streams whose body is sent without END_STREAM ("hold_end")
        self.reset_after_body = {}                      # held stream -> the RST_STREAM code sent after its body ("reset_code")

    def send(self):
        data = self.h2.data_to_send()
        if data and not self.muted:
            self.c.tls.sendall(data)

    @staticmethod
    def pings(count):
        """`count` PING frames (not acknowledgements), each with its own opaque data."""
        return b"".join(PingFrame(0, opaque_data=struct.pack("!Q", i)).serialize() for i in range(count))

    @staticmethod
    def send_pings(sock, count, batch, interval_ms, until=None):
        """Sends `count` PING frames (with `until`, as many as fit before that monotonic time) in
        writes of `batch` frames, `interval_ms` apart: paced so, a client that keeps up reads each
        write on its own, and nghttp2 never sees more than its flood limit queued at once."""
        sent = 0
        while (time.monotonic() < until) if until is not None else (sent < count):
            frames = batch if until is not None else min(batch, count - sent)
            sock.sendall(H2Conn.pings(frames))
            sent += frames
            time.sleep(interval_ms / 1000)

    @staticmethod
    def flood_pings(sock, batch, interval_ms, seconds):
        """Stops reading (a small receive buffer, soon full) and streams PING frames, each asking
        for an acknowledgement, for at most `seconds` or until the client closes (a client that
        stops reading ends it too: sends time out)."""
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(2)
        H2Conn.send_pings(sock, 0, batch, interval_ms, until=time.monotonic() + seconds)

    def goaway(self):
        """Runs on this connection's thread (a control command): GOAWAY, then the close."""
        self.h2.close_connection()
        self.send()

    def serve(self):
        self.h2.local_settings = h2.settings.Settings(
            client=False, initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.c.origin.h2_max_streams})
        self.h2.initiate_connection()
        self.send()
        while True:
            timeout = max(0, min(d[0] for d in self.delayed) - time.monotonic()) if self.delayed else None
            data = self.c.receive(idle=not self.open and not self.pending, timeout=timeout)
            if data is None:                            # a delayed answer is due
                now = time.monotonic()
                for item in [d for d in self.delayed if d[0] <= now]:
                    self.delayed.remove(item)
                    if not self.respond(item[1], item[2]):
                        return
                self.flush_pending()
                self.send()
                continue
            if not data:
                return
            self.record(data)
            try:
                events = self.h2.receive_data(data)
            except h2.exceptions.ProtocolError:
                self.send()                             # the GOAWAY h2 queued for it
                return
            for event in events:
                if isinstance(event, h2.events.RequestReceived):
                    with self.c.origin.cond:
                        self.c.origin.h2_pseudo.setdefault(self.c.number, [k for k, _ in pseudo(event.headers)])
                    if self.goaway_last is not None and event.stream_id > self.goaway_last:
                        continue                        # after our GOAWAY: not processed
                    self.open.add(event.stream_id)
                    self.heads[event.stream_id] = event.headers
                    self.body_len[event.stream_id] = 0
                    self.body_sha256[event.stream_id] = hashlib.sha256()
                    with self.c.origin.cond:
                        peaks = self.c.origin.h2_peaks
                        peaks[self.c.number] = max(peaks.get(self.c.number, 0), len(self.open))
                    path = dict(event.headers).get(":path", "").split("?")[0]
                    early = self.c.origin.rule_for(self.c.ip, path, consume=False)
                    if early.get("early"):
                        # Answered at once; then, unless "early_reset" is false, the rest of the
                        # body refused as RFC 9113 8.1 lets a server do: RST_STREAM with NO_ERROR.
                        if not self.answer(event.stream_id):
                            return
                        if early.get("early_reset", True):
                            self.h2.reset_stream(event.stream_id, 0)
                elif isinstance(event, h2.events.DataReceived):
                    self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    if event.stream_id in self.body_len:
                        self.body_len[event.stream_id] += len(event.data)
                        self.body_sha256[event.stream_id].update(event.data)
                elif isinstance(event, h2.events.StreamEnded):
                    if event.stream_id in self.heads and not self.answer(event.stream_id):
                        return
                elif isinstance(event, h2.events.StreamReset):
                    self.open.discard(event.stream_id)
                    self.body_sha256.pop(event.stream_id, None)
                    self.pending.pop(event.stream_id, None)
                    self.delayed = [d for d in self.delayed if d[1] != event.stream_id]
                elif isinstance(event, h2.events.ConnectionTerminated):
                    self.send()
                    return
            self.flush_pending()
            self.send()

    def record(self, data):
        if self.preface_left:
            taken = min(self.preface_left, len(data))
            data, self.preface_left = data[taken:], self.preface_left - taken
        self.unparsed += data
        while len(self.unparsed) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(self.unparsed[:9]))
            if len(self.unparsed) < 9 + length:
                return
            frame.parse_body(memoryview(self.unparsed[9:9 + length]))
            self.unparsed = self.unparsed[9 + length:]
            item = {"conn": self.c.number, "type": self.FRAME_TYPES.get(frame.type, str(frame.type)), "stream": frame.stream_id,
                    "flags": sorted(frame.flags)}
            if isinstance(frame, SettingsFrame):
                item["settings"] = [[k, v] for k, v in frame.settings.items()]
            elif isinstance(frame, WindowUpdateFrame):
                item["increment"] = frame.window_increment
            if isinstance(frame, PriorityFrame) or (isinstance(frame, HeadersFrame) and "PRIORITY" in frame.flags):
                item["priority"] = {"exclusive": bool(frame.exclusive), "depends_on": frame.depends_on,
                                    "weight": frame.stream_weight + 1}
            self.c.origin.record(self.c.origin.frames, self.c.ip, item)

    def answer(self, stream):
        """Records a whole request and answers it by the rule for its path; False when the
        connection ends."""
        o = self.c.origin
        headers = self.heads.pop(stream)
        path = dict(headers).get(":path", "").split("?")[0]
        action = o.rule_for(self.c.ip, path)
        if action.get("type") == "goaway" and action.get("refuse"):
            return self.respond(stream, action)     # not processed: neither recorded nor counted
        o.record(o.requests, self.c.ip, {
            "method": dict(headers).get(":method"), "path": path, "pseudo": pseudo(headers),
            "headers": [[k, v] for k, v in headers if not k.startswith(":")], "conn": self.c.number, "stream": stream,
            "body_len": self.body_len.pop(stream, 0), "body_sha256": self.body_sha256.pop(stream, hashlib.sha256()).hexdigest()})
        o.count("requests", self.c.ip)
        if action.get("delay_ms"):
            self.delayed.append((time.monotonic() + action["delay_ms"] / 1000, stream, action))
            return True
        return self.respond(stream, action)

    def respond(self, stream, action):
        """Sends the answer an action describes on a stream; False when the connection ends.

        As for HTTP/1.1 (status, stall, close, reset, raw), plus: "hold_end": true sends the body
        without ever ending the stream (with "reset_code": N, then resets it with that code); "body_delay_ms": N sends the head at once and the body N ms later; rst_stream {"code"}; goaway {"refuse"}; ping_flood
        {"seconds", "batch", "interval_ms"}: stops reading and streams PING frames.
        """
        kind = action.get("type", "status")
        if kind == "body_only":                         # the body of an answer whose head went out
            if stream in self.held_bodies:
                self.held_bodies.discard(stream)
                self.pending[stream] = action["body"]
            return True
        if stream not in self.open:                     # the client reset it meanwhile
            return True
        self.open.discard(stream)
        if kind == "stall":
            self.open.add(stream)
            return True
        if kind == "close":
            self.c.sock.shutdown(socket.SHUT_RDWR)
            return False
        if kind == "reset":
            self.h2.send_headers(stream, [(":status", "200"), ("content-length", "1000")])
            self.send()
            self.c.abort()
            return False
        if kind == "rst_stream":
            self.h2.reset_stream(stream, action.get("code", 2))
            return True
        if kind == "bulk":
            self.h2.send_headers(stream, [(":status", "200"), ("content-length", str(action["size"]))])
            self.bulk[stream] = bulk_blocks(action["size"])
            self.bulk_streams.add(stream)
            self.pending[stream] = next(self.bulk[stream], b"")
            return True
        if kind == "ping_flood":
            self.send()
            self.flood_pings(self.c.tls, action.get("batch", 1000), action.get("interval_ms", 0), action.get("seconds", 10))
            return False
        if kind == "raw":
            self.send()
            self.c.tls.sendall(action.get("data", "").encode("latin-1"))
            return True
        if kind == "goaway":
            # A graceful GOAWAY, written by hand (hyper-h2 sends nothing after its own): streams up
            # to the last one it names are still answered, later ones are not processed. The last
            # is this stream (answered after the GOAWAY), or with "refuse" the one before (this
            # one not processed).
            self.go_away(stream - 2 if action.get("refuse") else stream)
            if action.get("refuse"):
                return True
        status = action.get("status", 200)
        body, coding_headers = coded_body(action)
        headers = [(":status", str(status))] + [(k.lower(), v) for k, v in action.get("headers", []) + coding_headers]
        headers.append(("content-length", str(len(body))))
        if body and action.get("body_delay_ms"):
            self.h2.send_headers(stream, headers)
            self.held_bodies.add(stream)
            self.delayed.append((time.monotonic() + action["body_delay_ms"] / 1000, stream, {"type": "body_only", "body": body}))
            return True
        self.h2.send_headers(stream, headers, end_stream=not body)
        if action.get("hold_end"):
            self.held.add(stream)
            if "reset_code" in action:
                self.reset_after_body[stream] = action["reset_code"]
        if body:
            self.pending[stream] = body
        return True

    def go_away(self, last):
        self.send()
        self.goaway_last = last
        self.c.tls.sendall(GoAwayFrame(stream_id=0, last_stream_id=last, error_code=0).serialize())
        for stream in [s for s in self.open if s > last]:
            self.open.discard(stream)
            self.heads.pop(stream, None)
        self.delayed = [d for d in self.delayed if d[1] <= last]

    def flush_pending(self):
        """Sends queued body bytes as far as the flow-control windows allow, one frame per stream
        in turn (as servers share a connection between streams; a held stream's last DATA frame
        does not end it)."""
        sent, bulk_sent, progressed = 0, 0, True
        while self.pending and progressed:
            progressed = False
            for stream in list(self.pending):
                data = self.pending[stream]
                size = min(self.h2.local_flow_control_window(stream), self.h2.max_outbound_frame_size)
                if size <= 0:
                    continue
                chunk, data = data[:size], data[size:]
                if stream in self.bulk_streams:
                    bulk_sent += len(chunk)
                if not data and stream in self.bulk:    # a bulk body's next block follows
                    data = next(self.bulk[stream], b"")
                    if not data:
                        del self.bulk[stream]
                self.h2.send_data(stream, chunk, end_stream=not data and stream not in self.held)
                if not data and stream in self.reset_after_body:
                    self.h2.reset_stream(stream, self.reset_after_body.pop(stream))
                sent += len(chunk)
                progressed = True
                if data:
                    self.pending[stream] = data
                else:
                    del self.pending[stream]
        with self.c.origin.cond:
            self.c.origin.h2_sent += sent
            self.c.origin.bulk_sent += bulk_sent
            self.c.origin.h2_waiting[self.c.number] = sum(len(d) for d in self.pending.values())


# ---------------------------------------------------------------- main

def listen(origin, port):
    listeners = []
    for ip in origin.ips:
        s = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((ip, port))
        s.listen(1024)
        port = s.getsockname()[1]
        listeners.append((s, ip))
    for s, ip in listeners:
        threading.Thread(target=accept_loop, args=(origin, s, ip), daemon=True).start()
    return port


def accept_loop(origin, listener, ip):
    while True:
        try:
            sock, peer = listener.accept()
        except OSError:
            return
        origin.record(origin.sources, ip, {"ip": peer[0]})
        threading.Thread(target=Conn(origin, sock, ip).serve, daemon=True).start()


def handle(origin, c):
    cmd = c.get("cmd")
    ip = c.get("ip", "*")
    if cmd == "rule":
        with origin.cond:
            origin.rules.append([ip, c.get("path", "*"), c["action"], c.get("times")])
        return {"ok": True}
    if cmd == "clear_rules":
        with origin.cond:
            origin.rules.clear()
        return {"ok": True}
    if cmd == "tls":
        origin.tls_mode[ip] = c["mode"]
        return {"ok": True}
    if cmd == "stats":
        return origin.stats()
    if cmd == "reset_stats":
        origin.reset_stats()
        return {"ok": True}
    if cmd in ("wait_closed", "wait_handshakes", "wait_open"):
        return origin.wait(cmd[5:], ip, c["count"], c.get("timeout", 5))
    if cmd == "close_idle":
        return {"closed": origin.command_idle(ip, {"kind": c.get("mode", "notify")}, c.get("count", 1))}
    if cmd == "send_idle":
        return {"sent": origin.command_idle(ip, {"kind": "send", "data": c.get("data", "")}, c.get("count", 1))}
    if cmd == "ping_idle":
        command = {"kind": "pings", "pings": c.get("pings", 1), "batch": c.get("batch", 1000), "interval_ms": c.get("interval_ms", 0),
                   "seconds": c.get("seconds")}
        return {"sent": origin.command_idle(ip, command, c.get("count", 1))}
    if cmd == "hear":
        return {"heard": origin.hear(ip, c.get("count", 1))}
    if cmd == "requests":
        return {"requests": origin.recent(origin.requests, ip, c.get("last", 1))}
    if cmd == "hellos":
        return {"hellos": origin.recent(origin.hellos, ip, c.get("last", 1))}
    if cmd == "h2_settings":
        origin.h2_max_streams = c["max_concurrent_streams"]
        return {"ok": True}
    if cmd == "h2_peaks":
        with origin.cond:
            return {"peaks": {str(k): v for k, v in origin.h2_peaks.items()}}
    if cmd == "bulk_sent":
        with origin.cond:
            return {"sent": origin.bulk_sent}
    if cmd == "h2_flow":
        with origin.cond:
            return {"sent": origin.h2_sent, "waiting": sum(origin.h2_waiting.values())}
    if cmd == "frames":
        return {"frames": origin.recent(origin.frames, ip, c.get("last", 1))}
    if cmd == "akamai":
        frames = origin.recent(origin.frames, ip, 1000 * len(origin.ips))
        if not frames:
            return {"error": "no HTTP/2 frames received on %s" % ip}
        conn = c.get("conn") or max(f["conn"] for f in frames)
        with origin.cond:
            names = origin.h2_pseudo.get(conn, [])
        return {"akamai": akamai([f for f in frames if f["conn"] == conn], names), "conn": conn}
    if cmd == "sources":
        return {"sources": [x["ip"] for x in origin.recent(origin.sources, ip, c.get("last", 1))]}
    return {"error": "unknown command %r" % cmd}



def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ips", default="127.0.0.2,127.0.0.3,127.0.0.4")
    parser.add_argument("--host", default="origin.hotpool.test")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--dir")
    args = parser.parse_args()
    ips = args.ips.split(",")
    directory = args.dir or tempfile.mkdtemp(prefix="hotpool-origin-")
    make_certificates(directory, args.host, ips)
    origin = Origin(ips, directory)
    port = listen(origin, args.port)
    serve_commands({"ready": True, "port": port, "ca": os.path.join(directory, "ca.pem"), "dir": directory}, lambda command: handle(origin, command))


if __name__ == "__main__":
    main()
