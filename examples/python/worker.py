#!/usr/bin/env python3
"""A qron worker in Python, with the standard library only.

Leases due jobs of one executor from qron's HTTP API (`qron::http::router`), runs each, and
reports the outcomes, each guarded by its lease. Usage:

    python3 worker.py http://localhost:8080/qron greet [--once]

`--once` stops when no job is due (for tests); otherwise it polls every second.
"""
import json
import sys
import time
import urllib.request


def call(base, path, body):
    req = urllib.request.Request(
        f"{base}/workers/{path}",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)


def handle(job):
    """The work: greet the payload's name; a job without one fails for good."""
    name = (job["payload"] or {}).get("name")
    if not name:
        return {"result": "fail", "error": "no name to greet"}
    return {"result": "commit", "payload": {"name": name, "greeting": f"Hello, {name}!"}}


def main(base, executor, once):
    while True:
        jobs = call(base, "lease", {"executor": executor, "limit": 10, "lease_seconds": 60,
                                    "worker": "python"})["jobs"]
        if not jobs:
            if once:
                return
            time.sleep(1)
            continue
        outcomes = []
        for job in jobs:
            try:
                outcome = handle(job)
            except Exception as e:  # any error: run it again later, counting the attempt
                outcome = {"result": "retry", "error": repr(e)}
            outcomes.append({"id": job["id"], "token": job["token"], **outcome})
        for r in call(base, "complete", {"outcomes": outcomes})["reported"]:
            if not r["applied"]:
                print(f"job {r['id']}: lease lost, outcome dropped", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], "--once" in sys.argv[3:])
