"""An Arkouda pipeline step: summarise each file of numbers in the input folder.

`arkouda-k8s run` runs it with `ak` (connected to the deployment), `np`, `input_dir` and
`output_dir` bound. Each input file holds one integer a line; for each, the step writes
`<file>.json` with the count, sum, min, max and mean computed on the Arkouda server.
"""

import json

for path in sorted(p for p in input_dir.rglob("*") if p.is_file()):
    values = ak.array(np.loadtxt(path, dtype=np.int64, ndmin=1))
    total = int(values.sum())
    summary = {
        "count": int(values.size),
        "sum": total,
        "min": int(values.min()),
        "max": int(values.max()),
        "mean": total / max(1, int(values.size)),
    }
    (output_dir / f"{path.name}.json").write_text(json.dumps(summary, sort_keys=True))
    print(path.name, summary)
