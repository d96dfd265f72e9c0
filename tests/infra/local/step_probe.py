"""A stand-in step for the step server's tests: reports where and how it ran, then exits with a chosen code."""

from __future__ import annotations

import json
import os
import sys
import time

if __name__ == "__main__":
    request = json.loads(sys.stdin.readline())
    print(json.dumps({"pid": os.getpid(), "ppid": os.getppid(), "argv": sys.argv[1:], "cwd": os.getcwd(),
                      "env": os.environ.get("STEP_PROBE"), "stdin": request}), flush=True)
    print("to stderr", file=sys.stderr, flush=True)
    time.sleep(float(request.get("sleep", 0)))
    sys.exit(int(request.get("code", 0)))
