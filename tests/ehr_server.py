"""A small EHR on loopback for the CDS Hooks tests, as a real process: its JWKS at /jwks.json
and a FHIR server under /fhir (Patient read, Observation search by patient and code tokens,
newest first, ``_count``) that wants ``Authorization: Bearer <token>``.

``python tests/ehr_server.py CONFIG PORT``: CONFIG is a JSON file {"jwks": {...}, "token":
"...", "resources": [...]}; each request is appended to CONFIG + ".log" as a JSON line.
"""

from __future__ import annotations

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from server import ChildProcess


class EHRProcess(ChildProcess):
    """``with EHRProcess(tmp, jwks, token, resources) as ehr:`` ehr.url + "/jwks.json"."""

    name = "ehr"
    health = "/health"

    def __init__(
        self, log_dir: Path, jwks: dict[str, Any], token: str, resources: list[dict[str, Any]]
    ) -> None:
        super().__init__(log_dir, dict(os.environ))
        self.config = log_dir / f"ehr-{self.port}.json"
        self.config.write_text(json.dumps({"jwks": jwks, "token": token, "resources": resources}))
        self.requests_log = Path(str(self.config) + ".log")

    def command(self) -> list[str]:
        return [sys.executable, __file__, str(self.config), str(self.port)]

    def requests(self) -> list[dict[str, Any]]:
        """The requests served so far (path, query, authorization header)."""
        if not self.requests_log.exists():
            return []
        return [json.loads(line) for line in self.requests_log.read_text().splitlines()]


def _newest_first(resource: dict[str, Any]) -> str:
    return str(resource.get("effectiveDateTime", ""))


class _Handler(BaseHTTPRequestHandler):
    config: dict[str, Any]
    log_path: Path

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the log file says enough
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        auth = self.headers.get("Authorization")
        with open(self.log_path, "a") as log:
            log.write(json.dumps({"path": url.path, "query": url.query, "auth": auth}) + "\n")
        if url.path == "/health":
            return self._send(200, {"status": "ok"})
        if url.path == "/jwks.json":
            return self._send(200, self.config["jwks"])
        if not url.path.startswith("/fhir/"):
            return self._send(404, _outcome("not found"))
        if auth != f"Bearer {self.config['token']}":
            return self._send(401, _outcome("invalid access token"))
        kind, _, ident = url.path.removeprefix("/fhir/").partition("/")
        resources = [r for r in self.config["resources"] if r["resourceType"] == kind]
        if ident:
            found = [r for r in resources if r.get("id") == ident]
            return self._send(200, found[0]) if found else self._send(404, _outcome("no such"))
        query = parse_qs(url.query)
        patient = query.get("patient", [""])[0]
        tokens = set(",".join(query.get("code", [])).split(",")) if "code" in query else None
        matches = [
            r
            for r in resources
            if r.get("subject", {}).get("reference") == f"Patient/{patient}"
            and (
                tokens is None
                or any(
                    f"{c.get('system')}|{c.get('code')}" in tokens
                    for c in r.get("code", {}).get("coding", [])
                )
            )
        ]
        matches.sort(key=_newest_first, reverse=True)
        if "_count" in query:
            matches = matches[: int(query["_count"][0])]
        return self._send(
            200,
            {
                "resourceType": "Bundle",
                "type": "searchset",
                "total": len(matches),
                "entry": [
                    {
                        "fullUrl": f"Observation/{r['id']}",
                        "resource": r,
                        "search": {"mode": "match"},
                    }
                    for r in matches
                ],
            },
        )


def _outcome(text: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "processing", "diagnostics": text}],
    }


def main(config: str, port: str) -> None:
    _Handler.config = json.loads(Path(config).read_text())
    _Handler.log_path = Path(config + ".log")
    ThreadingHTTPServer(("127.0.0.1", int(port)), _Handler).serve_forever()


if __name__ == "__main__":
    main(*sys.argv[1:3])
