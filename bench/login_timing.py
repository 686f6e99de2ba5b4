#!/usr/bin/env python3
"""Login timing: does a wrong email cost the same as a wrong password?

An attacker who can tell "no such user" from "wrong password" by latency can
enumerate accounts. Tenantry verifies against a dummy argon2id hash when the
email is unknown; this measures both paths against a running server.

    make run                                   # in one terminal (prints the demo admin)
    bench/login_timing.py http://127.0.0.1:8080 admin@tenantry.local 40

Each request uses a fresh X-Forwarded-For only if the server trusts the
caller as a proxy; otherwise keep N within TENANTRY_LOGIN_RATE_PER_MINUTE or
raise it for the run (the rate limiter answers 429 fast and would skew the
figures; such samples are discarded and counted).
"""
import json
import statistics
import sys
import time
import urllib.error
import urllib.request


def attempt(base, email):
    body = json.dumps({"email": email, "password": "definitely-not-the-password"}).encode()
    req = urllib.request.Request(base + "/v1/auth/login", data=body, headers={"content-type": "application/json"})
    start = time.perf_counter()
    try:
        urllib.request.urlopen(req)
        status = 200
    except urllib.error.HTTPError as e:
        status = e.code
    return status, (time.perf_counter() - start) * 1000


def main():
    base, known, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    samples = {"unknown email": [], "wrong password": []}
    skipped = 0
    for i in range(n):
        for label, email in (("unknown email", f"nobody{i}@example.invalid"), ("wrong password", known)):
            status, ms = attempt(base, email)
            if status == 401:
                samples[label].append(ms)
            else:
                skipped += 1
    print("| path | n | median ms | mean ms | stdev ms |")
    print("|---|---|---|---|---|")
    for label, xs in samples.items():
        if xs:
            print(f"| {label} | {len(xs)} | {statistics.median(xs):.1f} | {statistics.mean(xs):.1f} | {statistics.pstdev(xs):.1f} |")
    print(f"\n{skipped} non-401 answers skipped (rate limit or lockout)")


if __name__ == "__main__":
    main()
