"""Step 3: score the model on the cleaned data."""

import csv
import json
import sys

data, model, dst = sys.argv[1], sys.argv[2], sys.argv[3]
with open(model) as f:
    m = json.load(f)
with open(data, newline="") as f:
    pts = [(float(r["x"]), float(r["y"])) for r in csv.DictReader(f)]
mse = sum((m["a"] * x + m["b"] - y) ** 2 for x, y in pts) / len(pts)
with open(dst, "w") as f:
    json.dump({"mse": mse, "rows": len(pts)}, f)
print(f"evaluate: mse={mse:.4f}")
