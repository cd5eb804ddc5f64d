"""A merchant's webhook receiver (stdlib only besides the SDK).

Verifies ``X-Paycore-Signature`` over the raw body before believing anything,
answers 2xx only for a verified event (paycore retries otherwise), and
dedupes on ``event_id`` (delivery is at least once).

    PAYCORE_SECRET=… python webhook_receiver.py --port 8099
    # then create payments with notify_url=http://<host>:8099/paycore/webhook
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from paycore_client import WebhookVerificationError, verify_webhook


def make_server(port: int, secret: str | dict[str, str], host: str = "127.0.0.1") -> ThreadingHTTPServer:
    seen: set[str] = set()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:   # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                event = verify_webhook(self.headers, body, secret, tolerance=300)
            except WebhookVerificationError as e:
                report({"verified": False, "reason": str(e)})
                self._answer(400)
                return
            if event.event_id not in seen:   # act once per event
                seen.add(event.event_id)
                if event.settlement is not None:   # settlement.closed: the day's final totals
                    report({"verified": True, "event_id": event.event_id, "type": event.type,
                            "date": event.settlement.date, "net": event.settlement.net,
                            "file_sha256": event.settlement.file_sha256})
                else:
                    report({"verified": True, "event_id": event.event_id, "type": event.type,
                            "payment_id": event.payment.id, "status": event.payment.status,
                            "refund_id": event.refund.id if event.refund else None})
            self._answer(200)

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:   # quiet: report() prints what matters
            pass

    return ThreadingHTTPServer((host, port), Handler)


def report(line: dict) -> None:
    print(json.dumps(line), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8099)
    args = ap.parse_args()
    server = make_server(args.port, os.environ["PAYCORE_SECRET"])
    report({"listening": f"http://127.0.0.1:{server.server_address[1]}/paycore/webhook"})
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
