#!/usr/bin/env python3
"""A tiny local webhook receiver for the demo: prints each alert lifeboat posts (type and subject line) and
keeps the raw bodies in demo/state/webhooks/. Point the demo's [notify.demo-webhook] at your own endpoint
instead by setting LIFEBOAT_DEMO_WEBHOOK before running demo/run.sh."""
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

OUT = sys.argv[2] if len(sys.argv) > 2 else "demo/state/webhooks"
os.makedirs(OUT, exist_ok=True)
count = 0


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        global count
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        count += 1
        with open(os.path.join(OUT, f"{count:03d}.json"), "wb") as f:
            f.write(body)
        try:
            msg = json.loads(body)
            data = msg.get("data", {})
            line = f"{msg.get('type')}: {data.get('title') or data.get('drill') or data.get('asset')}"
        except ValueError:
            line = body[:120].decode("utf-8", "replace")
        signed = "signed" if self.headers.get("webhook-signature") else "unsigned"
        print(f"  webhook received ({signed}) {line}", flush=True)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
