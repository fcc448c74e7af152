"""Benchmark: ``medseg serve`` under a bounded load on loopback, against ``medseg predict`` on
the same files.

1. ``medseg predict`` (`predict_paths`) on the distinct input files, in this process: the
   warm time per case is (time for all N − time for one) / (N − 1), so the model load is
   left out, as it is for a running server.
2. ``medseg serve RUN --workers W`` in a subprocess, a fresh data folder and key; ``--clients``
   threads each submit their share of ``--jobs`` jobs one after another (submit, poll every
   ``--poll`` seconds (0.5, as `Client.wait`), download the label map). The clients run in
   this process, on the same cores as the server. Latency is submit-to-downloaded;
   throughput is jobs per wall second; the server's peak memory is the largest sum of the
   resident memory of the server and its workers, sampled every 0.2 s from /proc.
3. With ``--kill``, the server is killed with SIGKILL (with its workers) once half the jobs
   are done and started again at once; clients retry while it is down. Every job must end
   ``done`` exactly once (the ``events`` table), none lost, none duplicated.

The time per job on the server is the manifest's read + predict + write seconds (what the
worker spent), beside the client's latency (which adds queueing and HTTP).

Usage: python bench/serve.py RUN_DIR IMAGES_DIR [--jobs 200] [--clients 20] [--workers 1]
       [--files 40] [--poll 0.5] [--kill]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from medseg.infer import predict_paths
from medseg.serve.client import Client
from medseg.serve.keys import KeyStore
from medseg.serve.store import JobStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("images", type=Path)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--kill", action="store_true")
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between polls")
    args = parser.parse_args()
    files = sorted(p for p in args.images.iterdir() if p.name.endswith(".nii.gz"))[: args.files]
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        warm = _predict_per_case(args.run, files, scratch)
        print(f"medseg predict: {warm:.3f} s per case, warm ({len(files)} files)")
        result = _load_test(args, files, scratch / "data")
    seconds, latencies, server_seconds, peak, lost, duplicated = result
    print(f"medseg serve ({args.workers} worker(s), {args.clients} clients, {args.jobs} jobs"
          f"{', one kill -9 and restart' if args.kill else ''}):")  # fmt: skip
    print(f"  throughput {args.jobs / seconds:.2f} jobs/s ({seconds:.1f} s in all)")
    p50, p95 = np.percentile(latencies, [50, 95])
    print(f"  latency p50 {p50:.2f} s, p95 {p95:.2f} s")
    print(f"  worker time per job {np.mean(server_seconds):.3f} s (medseg predict {warm:.3f} s: "
          f"ratio {np.mean(server_seconds) / warm:.2f})")  # fmt: skip
    print(f"  peak memory of server and workers {peak / 2**20:.0f} MiB")
    print(f"  jobs lost {lost}, completed more than once {duplicated}")


def _predict_per_case(run: Path, files: list[Path], scratch: Path) -> float:
    start = time.perf_counter()
    predict_paths(run, files[:1], scratch / "one", device="cpu", quiet=True)
    one = time.perf_counter() - start
    start = time.perf_counter()
    predict_paths(run, files, scratch / "all", device="cpu", quiet=True)
    return (time.perf_counter() - start - one) / (len(files) - 1)


def _start_server(run: Path, data: Path, port: int, workers: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "medseg", "serve", f"model={run}", "--data", str(data),
               "--port", str(port), "--workers", str(workers), "--device", "cpu"]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).json()["workers"] == workers:
                return server
        except (httpx.HTTPError, ValueError):
            time.sleep(0.2)
    raise RuntimeError("the server did not start")


def _load_test(args, files: list[Path], data: Path):
    port = _free_port()
    key = KeyStore(data).add("bench")
    server = [_start_server(args.run, data, port, args.workers)]
    url = f"http://127.0.0.1:{port}"
    latencies: list[float] = []
    ids: list[str] = []
    lock = threading.Lock()
    peak = [0]
    done = threading.Event()
    threading.Thread(target=_watch_memory, args=(server, peak, done), daemon=True).start()

    def one_job(client: Client, path: Path) -> None:
        start = time.perf_counter()
        job = _retry(lambda: client.submit(path, "model"))
        with lock:
            ids.append(job)
        while _retry(lambda: client.status(job))["state"] in ("queued", "running"):
            time.sleep(args.poll)
        _retry(lambda: client.download(job, data / "downloads", job))
        with lock:
            latencies.append(time.perf_counter() - start)
            finished = len(latencies)
        if args.kill and finished == args.jobs // 2:
            os.killpg(server[0].pid, signal.SIGKILL)
            server[0].wait()
            server[0] = _start_server(args.run, data, port, args.workers)

    def client_loop(number: int) -> None:
        client = Client(url, key)
        for k in range(number, args.jobs, args.clients):
            one_job(client, files[k % len(files)])

    start = time.perf_counter()
    threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    done.set()
    store = JobStore(data)
    counts = [store.completions(job) for job in ids]
    server_seconds = [_worker_seconds(data, job) for job in ids]
    os.killpg(server[0].pid, signal.SIGKILL)
    lost = sum(c == 0 for c in counts) + (args.jobs - len(ids))
    return seconds, latencies, server_seconds, peak[0], lost, sum(c > 1 for c in counts)


def _worker_seconds(data: Path, job: str) -> float:
    import json

    manifest = json.loads((data / "jobs" / job / "result" / "manifest.json").read_text())
    return sum(manifest["seconds"].values())


def _retry(call, attempts: int = 600):
    for _ in range(attempts):
        try:
            return call()
        except httpx.TransportError:  # the server is restarting
            time.sleep(0.1)
    return call()


def _watch_memory(server: list, peak: list, done: threading.Event) -> None:
    while not done.wait(0.2):
        root = server[0].pid
        total = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                status = (entry / "status").read_text()
            except OSError:
                continue
            if int(entry.name) == root or int(stat[1]) == root:  # the server or a worker
                rss = next(line for line in status.splitlines() if line.startswith("VmRSS"))
                total += int(rss.split()[1]) * 1024
        peak[0] = max(peak[0], total)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


if __name__ == "__main__":
    main()
