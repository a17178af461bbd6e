"""A small recorder of the Kubernetes API: stores the Jobs a K8sRunLauncher creates and answers
its status reads, so the real launcher runs against it. It schedules nothing: the test runs a
recorded Job's pod spec itself (identity_data_tests/deploy/pods.py)."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

_JOBS = re.compile(r"^/apis/batch/v1/namespaces/(?P<ns>[^/]+)/jobs(?:/(?P<name>[^/?]+))?")


class KubeRecorder:
    def __init__(self) -> None:
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def _answer(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                recorder.requests.append(("POST", self.path))
                match = _JOBS.match(self.path)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if not match or match["name"]:
                    self._answer(404, {"kind": "Status", "code": 404})
                    return
                body.setdefault("metadata", {})["namespace"] = match["ns"]
                with recorder._lock:
                    recorder.jobs[(match["ns"], body["metadata"]["name"])] = body
                self._answer(201, body)

            def do_GET(self) -> None:
                recorder.requests.append(("GET", self.path))
                match = _JOBS.match(self.path)
                job = match and recorder.jobs.get((match["ns"], match["name"] or ""))
                if not job:
                    self._answer(404, {"kind": "Status", "code": 404, "reason": "NotFound"})
                    return
                # Admitted and running as far as run monitoring can tell.
                self._answer(200, {**job, "status": {"active": 1}})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def write_kubeconfig(self, path: Path) -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "recorder", "cluster": {"server": self.url}}],
            "users": [{"name": "recorder", "user": {"token": "unused"}}],
            "contexts": [
                {"name": "recorder", "context": {"cluster": "recorder", "user": "recorder"}}
            ],
            "current-context": "recorder",
        }
        path.write_text(yaml.safe_dump(config))
        return path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
