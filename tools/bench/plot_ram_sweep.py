#!/usr/bin/env python3
"""Draws the JSON of `airllm bench --ram-sweep --json` as a PNG: seconds per
token against the RAM budget, with the I/O floor (bytes read per token over
the disk's measured bandwidth) as a line.

    build/airllm bench MODEL --ram-sweep=8 --json -q > sweep.json
    python3 tools/bench/plot_ram_sweep.py sweep.json docs/img/ram-sweep.png

Needs matplotlib (pip install matplotlib).
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        d = json.load(f)
    pts = d["points"]
    gib = 1024 ** 3
    x = [p["pinned_bytes"] / gib for p in pts]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    ax.plot(x, [p["s_per_token"] for p in pts], "o-", label="measured s/token")
    ax.plot(x, [p["floor_s_per_token"] for p in pts], "--", color="gray",
            label=f"I/O floor (disk {d['disk_gb_per_s']:.2f} GB/s)")
    ax.set_xlabel("layers resident in RAM (GiB of %.2f GiB)" % (d["store_bytes"] / gib))
    ax.set_ylabel("seconds per token (decode)")
    ax.set_title(f"{d['model'].split('/')[-1]} ({d['compression']}): speed vs RAM")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(sys.argv[2])


if __name__ == "__main__":
    main()
