#!/usr/bin/python3
"""HotPool's test DNS server: authoritative answers from a table the test sets, independent of HotPool.

It listens on 127.0.0.1, UDP and TCP on one port, and answers A and AAAA queries for the names in
its table, TTL 1: A records for the name's IPv4 literals, AAAA for its IPv6 ones, NOERROR with no
answer when the name has no record of the asked type, NXDOMAIN for a name not in the table. Names
are compared case-insensitively, a trailing dot ignored. It prints {"ready": true, "port": N}, then
is driven by JSON lines on stdin (one reply line each on stdout):

  {"cmd":"set","name":NAME,"ips":[IP, ...]}   the name's records, replacing those it had
  {"cmd":"remove","name":NAME}               the name leaves the table (NXDOMAIN)
  {"cmd":"down"}                             closes both sockets: no answers (ICMP port unreachable,
                                             TCP connection refused) until
  {"cmd":"up"}                               binds the same port again, answering as before
  {"cmd":"queries","name":NAME}              {"queries": N}: queries for NAME (any type) answered
                                             since start
  {"cmd":"quit"}  (or EOF on stdin)

Each query is served by its own thread (dnslib's threading socketservers). dnslib is Debian's
python3-dnslib, installed for /usr/bin/python3 (not a pyenv python3 earlier on PATH): hence the
interpreter line, and OriginControl's DNSServer runs this with /usr/bin/python3.
"""
import argparse, ipaddress, sys, threading

from dnslib import AAAA, QTYPE, RCODE, RR, A
from dnslib.server import BaseResolver, DNSLogger, DNSServer
from control import serve_commands

ADDRESS = "127.0.0.1"
LOGGER = DNSLogger("error", prefix=False, logf=lambda text: print(text, file=sys.stderr, flush=True))


def key(name):
    return str(name).rstrip(".").lower()


class Table(BaseResolver):
    """The names' records and the count of queries answered per name; resolve() runs on the
    query's thread."""

    def __init__(self):
        self.lock = threading.Lock()
        self.records = {}                               # name -> [(qtype, rdata)]
        self.queries = {}                               # name -> queries answered

    def set(self, name, ips):
        addresses = [ipaddress.ip_address(ip) for ip in ips]
        records = [(QTYPE.A, A(str(a))) if a.version == 4 else (QTYPE.AAAA, AAAA(str(a))) for a in addresses]
        with self.lock:
            self.records[key(name)] = records

    def remove(self, name):
        with self.lock:
            self.records.pop(key(name), None)

    def count(self, name):
        with self.lock:
            return self.queries.get(key(name), 0)

    def resolve(self, request, handler):
        reply = request.reply()                         # aa=1
        name, qtype = request.q.qname, request.q.qtype
        with self.lock:
            records = self.records.get(key(name))
            self.queries[key(name)] = self.queries.get(key(name), 0) + 1
        if records is None:
            reply.header.rcode = RCODE.NXDOMAIN
        for rtype, rdata in records or []:
            if qtype in (rtype, QTYPE.ANY):
                reply.add_answer(RR(name, rtype, rdata=rdata, ttl=1))
        return reply


class Listener:
    """The UDP and the TCP server on one port, which down() closes and up() binds again."""

    def __init__(self, table, port):
        self.table, self.port, self.servers = table, port, []
        self.up()

    def up(self):
        """Binds UDP, then TCP on the same port (with port 0, retried until both get one)."""
        for attempt in range(20):
            if self.servers:
                return
            udp = DNSServer(self.table, ADDRESS, self.port, logger=LOGGER)
            try:
                tcp = DNSServer(self.table, ADDRESS, udp.server.server_address[1], tcp=True, logger=LOGGER)
            except OSError:
                udp.server.server_close()
                if self.port or attempt == 19:
                    raise
                continue
            self.port = udp.server.server_address[1]
            self.servers = [udp, tcp]
            for s in self.servers:                      # a 50 ms poll, so that down() is quick
                threading.Thread(target=s.server.serve_forever, args=(0.05,), daemon=True).start()

    def down(self):
        for s in self.servers:
            s.server.shutdown()                         # waits until serve_forever has returned
            s.server.server_close()
        self.servers = []


def handle(table, listener, c):
    cmd = c.get("cmd")
    if cmd == "set":
        table.set(c["name"], c["ips"])
    elif cmd == "remove":
        table.remove(c["name"])
    elif cmd == "down":
        listener.down()
    elif cmd == "up":
        listener.up()
    elif cmd == "queries":
        return {"queries": table.count(c["name"])}
    else:
        return {"error": "unknown command %r" % cmd}
    return {"ok": True}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    table = Table()
    listener = Listener(table, args.port)
    serve_commands({"ready": True, "port": listener.port}, lambda command: handle(table, listener, command))


if __name__ == "__main__":
    main()
