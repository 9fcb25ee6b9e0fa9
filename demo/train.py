"""Step 2: fit y = a*x + b by least squares and save the model."""

import csv
import json
import sys

src, dst = sys.argv[1], sys.argv[2]
with open(src, newline="") as f:
    pts = [(float(r["x"]), float(r["y"])) for r in csv.DictReader(f)]
n = len(pts)
mx = sum(x for x, _ in pts) / n
my = sum(y for _, y in pts) / n
a = sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)
b = my - a * mx
tmp = dst + ".tmp"
with open(tmp, "w") as f:
    json.dump({"a": a, "b": b, "n": n}, f)
import os  # noqa: E402

os.replace(tmp, dst)  # written to a temp name, renamed into place
print(f"train: a={a:.3f} b={b:.3f}")
