#!/usr/bin/env python3
"""Posts signed Stripe `invoice.paid` renewals (one per seeded subscription
`sub_bench{i}`, plus DUP% replays of ids already sent) from C threads with
keep-alive connections; prints one result-table row.

    stripe_webhooks.py URL SECRET N C DUP
"""
import hashlib, hmac, http.client, json, random, statistics, sys, threading, time, urllib.parse

url, secret, n, c, dup = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
u = urllib.parse.urlparse(url)
now = int(time.time())

def event(i):
    sub = f"sub_bench{i}"
    return {"id": f"evt_bench{i}", "object": "event", "type": "invoice.paid", "api_version": "2026-07-29.dahlia",
            "created": now, "livemode": False, "data": {"object": {
                "id": f"in_bench{i}", "object": "invoice", "customer": f"cus_bench{i}", "billing_reason": "subscription_cycle",
                "currency": "usd", "amount_paid": 2900, "status": "paid", "metadata": {},
                "parent": {"type": "subscription_details", "subscription_details": {"subscription": sub, "metadata": {}}},
                "lines": {"data": [{"amount": 2900, "period": {"start": now, "end": now + 30 * 86400},
                                     "parent": {"type": "subscription_item_details"}}]}}}}

bodies = [json.dumps(event(i)).encode() for i in range(1, n + 1)]
work = list(range(n)) + [random.randrange(n) for _ in range(n * dup // 100)]
random.seed(7)
# Replays come after their original (a duplicate delivery), in random order among the rest.
work = list(range(n)) + sorted(work[n:])
lock = threading.Lock()
latencies, statuses = [], {}
cursor = [0]

def worker():
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    while True:
        with lock:
            if cursor[0] >= len(work):
                return
            i = work[cursor[0]]; cursor[0] += 1
        body = bodies[i]
        t = int(time.time())
        sig = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        start = time.perf_counter()
        conn.request("POST", u.path, body, {"content-type": "application/json", "stripe-signature": f"t={t},v1={sig}"})
        r = conn.getresponse(); r.read()
        ms = (time.perf_counter() - start) * 1000
        with lock:
            latencies.append(ms); statuses[r.status] = statuses.get(r.status, 0) + 1

started = time.perf_counter()
threads = [threading.Thread(target=worker) for _ in range(c)]
for t in threads: t.start()
for t in threads: t.join()
secs = time.perf_counter() - started
latencies.sort()
p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
print(f"statuses: {statuses}", file=sys.stderr)
print("| deliveries (new + replays) | clients | seconds | deliveries/s | p50 ms | p99 ms | max ms |")
print("|---|---|---|---|---|---|---|")
print(f"| {n} + {len(work) - n} | {c} | {secs:.2f} | {len(work) / secs:.0f} | {p(0.5):.1f} | {p(0.99):.1f} | {latencies[-1]:.1f} |")
if set(statuses) != {200}:
    sys.exit("non-200 answers")
