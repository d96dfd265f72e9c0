r"""SLO gate for any scenario: after a headless run, set Locust's exit code to 1 if an objective was missed.

Imported by every scenario file; its options appear in ``locust --help``::

    locust -f loadtest/locustfile.py OpenInferenceUser --headless -u 20 -r 20 -t 30s --host http://127.0.0.1:8080 \\
        --slo-p99-ms 250 --slo-max-failure-ratio 0.001 --slo-min-rps 100
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from locust import events

logger = logging.getLogger("kfops.slo")


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--slo-p95-ms", type=float, default=0.0, help="Max 95th-percentile latency (0: no gate).")
    parser.add_argument("--slo-p99-ms", type=float, default=0.0, help="Max 99th-percentile latency (0: no gate).")
    parser.add_argument("--slo-max-failure-ratio", type=float, default=0.0,
                        help="Max share of failed requests (default 0: every failure fails the run).")
    parser.add_argument("--slo-min-rps", type=float, default=0.0, help="Min requests per second (0: no gate).")
    parser.add_argument("--slo-verdict-file", default="",
                        help="Also write the verdict (objectives, figures, what was missed) to this JSON file.")


def violations(stats: Any, options: Any) -> list[str]:
    """The objectives ``stats`` (Locust's aggregated totals) misses."""
    missed = []
    if stats.num_requests == 0:
        return ["no request was made"]
    if stats.fail_ratio > options.slo_max_failure_ratio:
        missed.append(f"failure ratio {stats.fail_ratio:.4f} > {options.slo_max_failure_ratio}")
    for percentile, limit in ((0.95, options.slo_p95_ms), (0.99, options.slo_p99_ms)):
        value = stats.get_response_time_percentile(percentile)
        if limit and value > limit:
            missed.append(f"p{round(percentile * 100)} {value:.0f} ms > {limit:.0f} ms")
    if options.slo_min_rps and stats.total_rps < options.slo_min_rps:
        missed.append(f"{stats.total_rps:.1f} requests/s < {options.slo_min_rps:.1f}")
    return missed


def verdict(stats: Any, options: Any) -> dict[str, Any]:
    """The SLO verdict as data: objectives, the measured figures and what was missed."""
    total = stats.num_requests
    return {
        "met": not violations(stats, options),
        "missed": violations(stats, options),
        "objectives": {"p95_ms": options.slo_p95_ms, "p99_ms": options.slo_p99_ms,
                       "max_failure_ratio": options.slo_max_failure_ratio, "min_rps": options.slo_min_rps},
        "measured": {"requests": total, "failures": stats.num_failures, "rps": stats.total_rps,
                     "p50_ms": stats.get_response_time_percentile(0.50) if total else None,
                     "p95_ms": stats.get_response_time_percentile(0.95) if total else None,
                     "p99_ms": stats.get_response_time_percentile(0.99) if total else None},
    }


@events.quitting.add_listener
def _gate(environment: Any, **_kwargs: Any) -> None:
    options = environment.parsed_options
    missed = violations(environment.stats.total, options)
    if options.slo_verdict_file:
        Path(options.slo_verdict_file).write_text(json.dumps(verdict(environment.stats.total, options), indent=1))
    if missed:
        logger.error("SLO missed: %s", "; ".join(missed))
        environment.process_exit_code = 1
    else:
        logger.info("SLOs met (%d requests, %.1f/s)", environment.stats.total.num_requests,
                    environment.stats.total.total_rps)
