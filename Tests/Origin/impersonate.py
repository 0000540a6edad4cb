#!/usr/bin/env python3
"""Requests the test origin as a browser would: curl_cffi (curl-impersonate) impersonating TARGET.

    python3 impersonate.py TARGET HOST PORT IP [--path P] [--repeat N]

Performs N (default 1) GETs of https://HOST:PORT/P, HOST resolved to IP (so the ClientHello
carries SNI), certificates not verified (the origin's CA is a test CA), each on a fresh
connection (the TLS session of the one before is offered for resumption), and prints one JSON
line: {"status": [...], "http_version": [...]} (curl's CURL_HTTP_VERSION numbers: 2 = HTTP/1.1,
3 = HTTP/2). Exits nonzero, with the reason on stderr, on any failure.
"""
import argparse, json, sys

from curl_cffi import CurlOpt, requests

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
for name in ("target", "host", "port", "ip"):
    parser.add_argument(name)
parser.add_argument("--path", default="/")
parser.add_argument("--repeat", type=int, default=1)
args = parser.parse_args()
url = "https://%s:%s/%s" % (args.host, args.port, args.path.lstrip("/"))
options = {CurlOpt.RESOLVE: ["%s:%s:%s" % (args.host, args.port, args.ip)], CurlOpt.FRESH_CONNECT: 1, CurlOpt.FORBID_REUSE: 1}
try:
    with requests.Session(impersonate=args.target, verify=False, curl_options=options) as session:
        responses = [session.get(url) for _ in range(args.repeat)]
except Exception as e:
    sys.exit("impersonate.py: %s: %s" % (args.target, e))
print(json.dumps({"status": [r.status_code for r in responses], "http_version": [int(r.http_version) for r in responses]}))
