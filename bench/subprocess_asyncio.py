# SPDX-License-Identifier: MIT
"""asyncio's side of `async_bench subprocess[-50] N`: spawn and wait for N
`true` children with create_subprocess_exec, WIDTH at a time.

    python3 bench/subprocess_asyncio.py N WIDTH
"""
import asyncio
import sys
import time


async def worker(left):
    while left[0] > 0:
        left[0] -= 1
        p = await asyncio.create_subprocess_exec("true")
        if await p.wait() != 0:
            raise SystemExit("a child failed")


async def main(n, width):
    left = [n]
    await asyncio.gather(*(worker(left) for _ in range(width)))


n, width = int(sys.argv[1]), int(sys.argv[2])
t0, c0 = time.monotonic(), time.process_time()
asyncio.run(main(n, width))
secs, cpu = time.monotonic() - t0, time.process_time() - c0
print(f"BENCH workload=subprocess impl=asyncio n={n} width={width} "
      f"secs={secs:.3f} ns_per_op={secs * 1e9 / n:.1f} "
      f"parent_cpu_ns_per_op={cpu * 1e9 / n:.1f}")
