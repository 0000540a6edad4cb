"""The control loop both test servers (server.py, dns.py) share: the ready line, then one JSON
command a line on stdin and one JSON reply a line on stdout, until "quit" or the end of stdin."""
import json
import os
import sys


def serve_commands(ready, handle):
    """Prints `ready`, then answers each command with handle(command); never returns."""
    print(json.dumps(ready), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        command = json.loads(line)
        if command.get("cmd") == "quit":
            break
        try:
            reply = handle(command)
        except Exception as e:  # a bad command must not kill the server
            reply = {"error": repr(e)}
        print(json.dumps(reply), flush=True)
    os._exit(0)
