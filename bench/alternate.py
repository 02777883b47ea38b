"""Run one benchmark from two checkouts in turn, before, after, before, after …, and compare them.

    .venv/bin/python bench/alternate.py --before /path/to/old --after /path/to/new --rounds 3
    .venv/bin/python bench/alternate.py --before A --after B --rounds 3 -- bench/inbound.py --contacts 1000

The machine's speed drifts, so two figures are comparable only when measured in one sitting,
interleaved. Each run starts from its own checkout (its working directory, its own
`.venv/bin/python` unless --python, --before-python or --after-python says otherwise) and holds the
bench lock (`flock /tmp/bench.lock`, see --lock) for its duration only: do not wrap this script in
flock itself. After each run its figures are read back from that checkout's results file
(bench/results/<script>.json, or the command's --output): for a file keyed by mode
(bench/broadcast.py) the entry the run wrote, otherwise the whole file. Figures: a broadcast
entry's "summary" numbers (fan-out, delivered/s, floor delivered/s and product ÷ floor where the
checkout has the floor phase, naive, RSS); bench/inbound.py's webhooks/s, p50 and p99; for any
other file, its top-level numbers. A figure a checkout does not report is left blank.

Prints each run's figures side by side, the medians of each side and after ÷ before, and writes
them to bench/results/<name>-alternating.json of this checkout (<name>: the script's name unless
--name). Environment variables (DATABASE_URL, CELERY_BROKER_URL, REDIS_URL ...) are passed to
every run unchanged. Each run also writes its own results file in its checkout, as it would alone.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_COMMAND = "bench/broadcast.py --smoke"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, type=Path, help="checkout measured first in each round")
    parser.add_argument("--after", required=True, type=Path, help="checkout measured second in each round")
    parser.add_argument("--python", help="interpreter for both checkouts (default: each checkout's .venv/bin/python)")
    parser.add_argument("--before-python", help="interpreter for the before checkout")
    parser.add_argument("--after-python", help="interpreter for the after checkout")
    parser.add_argument("--rounds", type=int, default=3, help="before + after pairs (default 3)")
    parser.add_argument("--lock", default="/tmp/bench.lock", help="the bench lock each run holds")
    parser.add_argument("--timeout", type=float, default=4 * 3600.0, help="seconds allowed per run, lock wait included")
    parser.add_argument("--name", help="results name (default: the benchmark script's name)")
    parser.add_argument("--output", type=Path, help="default bench/results/<name>-alternating.json of this checkout")
    parser.add_argument("--command", dest="command_line", help=f"benchmark script and its arguments as one string "
                        f"(default: {DEFAULT_COMMAND!r}); or give them after --")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="benchmark script and its arguments, after --")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if command and args.command_line:
        parser.error("give the benchmark command either with --command or after --, not both")
    args.command = command or shlex.split(args.command_line or DEFAULT_COMMAND)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    for side in ("before", "after"):
        checkout = getattr(args, side).resolve()
        setattr(args, side, checkout)
        python = getattr(args, f"{side}_python") or args.python or str(checkout / ".venv" / "bin" / "python")
        if not (checkout / args.command[0]).is_file():
            parser.error(f"{checkout / args.command[0]} does not exist")
        if not Path(python).exists():
            parser.error(f"no interpreter {python} for {checkout} (give --python or --{side}-python)")
        setattr(args, f"{side}_python", python)
    return args


# --- figures --------------------------------------------------------------------------------


def results_path(checkout: Path, command: list[str]) -> Path:
    """Where the benchmark writes its figures: its --output, else bench/results/<script>.json."""
    for i, arg in enumerate(command):
        if arg == "--output" and i + 1 < len(command):
            path = Path(command[i + 1])
            return path if path.is_absolute() else checkout / path
        if arg.startswith("--output="):
            path = Path(arg.split("=", 1)[1])
            return path if path.is_absolute() else checkout / path
    return checkout / "bench" / "results" / f"{Path(command[0]).stem}.json"


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def keyed_by_mode(data) -> bool:
    return isinstance(data, dict) and bool(data) and all(isinstance(v, dict) and "mode" in v for v in data.values())


def written_entry(before, after) -> tuple[str | None, dict | None]:
    """(mode, entry) the run wrote: the entry of a mode-keyed file that changed, else the whole file if it changed."""
    if not isinstance(after, dict) or after == before:
        return None, None
    if keyed_by_mode(after):
        previous = before if isinstance(before, dict) else {}
        changed = [mode for mode, entry in after.items() if previous.get(mode) != entry]
        if not changed:
            return None, None
        # One run writes one mode; should several differ, the one that started last.
        mode = max(changed, key=lambda m: str(after[m].get("started_at") or ""))
        return mode, after[mode]
    return None, after


def numbers(mapping: dict) -> dict:
    return {k: v for k, v in mapping.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def figures(entry: dict | None) -> dict:
    """The figures to compare from one run's entry (see the module docstring)."""
    if not entry:
        return {}
    if isinstance(entry.get("summary"), dict):
        return numbers(entry["summary"])
    total = entry.get("total")
    if isinstance(total, dict) and "requests_per_second" in total:
        return {"webhooks_per_second": total.get("requests_per_second"), "p50_ms": total.get("p50_ms"),
                "p99_ms": total.get("p99_ms")}
    return numbers(entry)


# --- runs -----------------------------------------------------------------------------------


def git_head(checkout: Path) -> dict:
    def git(*argv):
        try:
            done = subprocess.run(["git", "-C", str(checkout), *argv], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    return {"commit": git("rev-parse", "--short", "HEAD"), "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def run_once(side: str, round_no: int, checkout: Path, python: str, args) -> dict:
    path = results_path(checkout, args.command)
    previous = read_json(path)
    argv = ["flock", args.lock, python, *args.command]
    print(f"\n=== round {round_no} {side}: {checkout} $ {shlex.join(argv)}", flush=True)
    started_at = datetime.now(timezone.utc).isoformat()
    started = time.monotonic()
    # Its own process group, so a timeout or Ctrl-C stops the benchmark's own children too.
    process = subprocess.Popen(argv, cwd=checkout, start_new_session=True)
    try:
        rc = process.wait(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        print(f"  {side} run {round_no} exceeded {args.timeout:.0f} s: stopped", flush=True)
        rc = stop(process)
    except KeyboardInterrupt:
        stop(process)
        raise
    mode, entry = written_entry(previous, read_json(path))
    run = {"side": side, "round": round_no, "started_at": started_at, "seconds": round(time.monotonic() - started, 1),
           "rc": rc, "results": str(path), "mode": mode, "figures": figures(entry)}
    if not run["figures"]:
        print(f"  no figures from {path} after this run (exit {rc})", flush=True)
    return run


def stop(process: subprocess.Popen) -> int | None:
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            return process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    return process.poll()


# --- table ----------------------------------------------------------------------------------


def summarise(runs: list[dict]) -> dict:
    names = []
    for run in runs:
        names += [name for name in run["figures"] if name not in names]
    medians = {}
    for side in ("before", "after"):
        medians[side] = {}
        for name in names:
            values = [run["figures"][name] for run in runs if run["side"] == side and run["figures"].get(name) is not None]
            medians[side][name] = round(statistics.median(values), 3) if values else None
    ratio = {}
    for name in names:
        b, a = medians["before"][name], medians["after"][name]
        ratio[name] = round(a / b, 3) if a is not None and b else None
    return {"figures": names, "medians": medians, "after_over_before": ratio}


def table(runs: list[dict], summary: dict) -> str:
    def cell(value):
        if value is None:
            return "–"
        return f"{value:g}" if isinstance(value, float) else str(value)

    header = ["figure", *(f"{run['side'][0].upper()}{run['round']}" for run in runs), "median B", "median A", "A ÷ B"]
    rows = [header]
    for name in summary["figures"]:
        rows.append([name, *(cell(run["figures"].get(name)) for run in runs), cell(summary["medians"]["before"][name]),
                     cell(summary["medians"]["after"][name]), cell(summary["after_over_before"][name])])
    rows.append(["exit code", *(cell(run["rc"]) for run in runs), "", "", ""])
    rows.append(["run seconds", *(cell(run["seconds"]) for run in runs), "", "", ""])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(value.ljust(widths[i]) if i == 0 else value.rjust(widths[i]) for i, value in enumerate(row))
                     for row in rows)


def main():
    args = parse_args()
    name = args.name or Path(args.command[0]).stem
    output = args.output or ROOT / "bench" / "results" / f"{name}-alternating.json"
    report = {"benchmark": name, "command": args.command, "rounds": args.rounds,
              "started_at": datetime.now(timezone.utc).isoformat(), "machine": {"cpus": os.cpu_count()},
              "before": {"checkout": str(args.before), "python": args.before_python, **git_head(args.before)},
              "after": {"checkout": str(args.after), "python": args.after_python, **git_head(args.after)},
              "runs": []}

    def save():
        report.update(summarise(report["runs"]))
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(report, indent=2) + "\n")

    for round_no in range(1, args.rounds + 1):
        for side in ("before", "after"):
            report["runs"].append(run_once(side, round_no, getattr(args, side), getattr(args, f"{side}_python"), args))
            save()  # after every run: an interrupted sitting keeps what it measured
    report["finished_at"] = datetime.now(timezone.utc).isoformat()
    save()
    print(f"\nB = before {args.before} ({report['before']['commit']}), A = after {args.after} ({report['after']['commit']})")
    print(table(report["runs"], report))
    print(f"wrote {output}")
    if any(run["rc"] != 0 or not run["figures"] for run in report["runs"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
