"""Step 1: clean the raw measurements (drop rows with missing values, normalize units)."""

import csv
import sys

src, dst = sys.argv[1], sys.argv[2]
with open(src, newline="") as f:
    rows = [r for r in csv.DictReader(f) if r["x"] and r["y"]]
with open(dst, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["x", "y"])
    for r in rows:
        w.writerow([float(r["x"]) / 10.0, float(r["y"])])
print(f"preprocess: kept {len(rows)} rows")
