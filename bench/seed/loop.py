#!/usr/bin/env python3
# The seed's loop for the bench's `cmdlet` scenario: ai_request() of ai_failover_client.py, timed per request.
# Protocol (stdin/stdout, one line each): the bench writes "N <prompt>", this runs N sequential ai_request() calls
# and answers with their durations in microseconds, space-separated, or "ERR <text>". An empty line ends it.
import sys
import time

try:
    import ai_failover_client as seed
except ImportError as e:  # requests missing
    print("ERR " + str(e), flush=True)
    sys.exit(0)

print("READY", flush=True)
for line in sys.stdin:
    line = line.rstrip("\n")
    if not line:
        break
    n, prompt = line.split(" ", 1)
    out = []
    for _ in range(int(n)):
        t0 = time.perf_counter_ns()
        r = seed.ai_request([{"role": "user", "content": prompt}])
        t1 = time.perf_counter_ns()
        if r["backend"] != "cloud":
            print("ERR served by " + r["backend"], flush=True)
            break
        out.append("%.1f" % ((t1 - t0) / 1000.0))
    else:
        print(" ".join(out), flush=True)
