"""What the compiled-core cache saves a session, under mono. Prints, asserts nothing.

    python bench/agent_compile.py [--repeat 3]

Without the cache every session compiles the agent's C# core (the shim's Add-Type); with it a
later session reads `<source>-<sha256>.dll`, hashes it and loads the bytes (the shim's
Import-PiCore). Here mcs stands for csc: the compile is `mcs -langversion:5` as the tests run
it, the load is a small mono program timing File.ReadAllBytes + SHA256CryptoServiceProvider +
Assembly.Load(byte[]) + resolving `Pushinstall.Agent.Core`, inside one process (process start
is not counted: a PowerShell session is already running). Medians of `--repeat` runs.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from agent_host import compile_core, mcs_command  # noqa: E402

LOADER = """
using System;
using System.Diagnostics;
using System.IO;
using System.Reflection;
using System.Security.Cryptography;
public static class Loader
{
    public static int Main(string[] argv)
    {
        Stopwatch watch = Stopwatch.StartNew();
        byte[] bytes = File.ReadAllBytes(argv[0]);
        string hash = BitConverter.ToString(new SHA256CryptoServiceProvider().ComputeHash(bytes));
        Type core = Assembly.Load(bytes).GetType("Pushinstall.Agent.Core", true);
        watch.Stop();
        double ms = watch.Elapsed.TotalMilliseconds;
        Console.WriteLine(ms.ToString("F1") + " " + hash.Length + " " + core.Name);
        return 0;
    }
}
"""


def main() -> None:
    """Time the compile and the cached load; print both and the saving."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pushinstall-bench-compile-"))
    compiles = []
    for index in range(args.repeat):
        folder = work / f"c{index}"
        folder.mkdir()
        started = time.monotonic()
        dll, _ = compile_core(folder, with_host=False)
        compiles.append(time.monotonic() - started)
    source = work / "Loader.cs"
    source.write_text(LOADER, encoding="utf-8")
    loader = work / "Loader.exe"
    subprocess.run(mcs_command([source], loader, "exe"), check=True, capture_output=True)
    loads = []
    for _ in range(args.repeat):
        done = subprocess.run(["mono", str(loader), str(dll)], check=True, capture_output=True,
                              text=True)
        loads.append(float(done.stdout.split()[0]) / 1000)
    compile_s, load_s = statistics.median(compiles), statistics.median(loads)
    print(f"core source {dll.stat().st_size:,} bytes of DLL")
    print(f"compile (mcs, no cache)        {compile_s * 1000:8.0f} ms   (median of {args.repeat})")
    print(f"cached load (hash + Load)      {load_s * 1000:8.1f} ms")
    print(f"saved per later session        {(compile_s - load_s) * 1000:8.0f} ms under mono")


if __name__ == "__main__":
    main()
