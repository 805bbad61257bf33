#!/usr/bin/python3
"""Time worker/model/tree beside xgboost 1.7.4 on the acceptance model.

    /usr/bin/python3 tools/bench_vs_xgboost.py

Trains a 200-tree depth-6 binary:logistic model on 10 features (10% missing)
into a temporary directory, times xgboost on one thread (inplace_predict for
block throughput, one-row inplace_predict, pred_contribs), then runs the Go
benchmarks of worker/model/tree on the same model file through
HOKUSAI_BENCH_MODEL and prints both with the ratios.
"""
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
import xgboost as xgb

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def best_of(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def train(path):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(20000, 10)).astype(np.float32)
    X[rng.random(X.shape) < 0.1] = np.nan
    Z = np.nan_to_num(X)
    y = (Z[:, 0] + Z[:, 1] * Z[:, 2] - 0.5 * Z[:, 3] + np.sin(2 * Z[:, 4])
         + 0.5 * rng.normal(size=len(Z)) > 0).astype(np.float32)
    params = {"objective": "binary:logistic", "max_depth": 6, "eta": 0.1,
              "tree_method": "hist", "nthread": 2}
    bst = xgb.train(params, xgb.DMatrix(X, label=y), 200)
    bst.save_model(path)
    return bst


def main():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.json")
        bst = train(path)
        bst.set_param({"nthread": 1})
        rng = np.random.default_rng(8)
        X = rng.normal(size=(20000, 10)).astype(np.float32)
        X[rng.random(X.shape) < 0.1] = np.nan
        bst.inplace_predict(X[:100])
        block = best_of(lambda: bst.inplace_predict(X), 5)
        xgb_rows = len(X) / block
        one = X[:1]
        single = best_of(lambda: [bst.inplace_predict(one) for _ in range(200)], 3) / 200
        dm = xgb.DMatrix(X[:500])
        contrib = best_of(lambda: bst.predict(dm, pred_contribs=True), 3) / 500

        env = dict(os.environ, HOKUSAI_BENCH_MODEL=path)
        cmd = ["go", "test", "-run", "^$", "-bench", ".", "-benchtime=2s", "-cpu", "1",
               "./worker/model/tree/"]
        print("$ HOKUSAI_BENCH_MODEL=" + path + " " + " ".join(cmd), flush=True)
        res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        print(res.stdout + res.stderr)
        if res.returncode != 0:
            sys.exit("go benchmarks failed")
        bench = {}
        for line in res.stdout.splitlines():
            m = re.match(r"Benchmark(\w+)\s+\d+\s+([\d.]+) ns/op(?:\s+([\d.]+) rows/s)?", line)
            if m:
                bench[m.group(1)] = (float(m.group(2)), float(m.group(3) or 0))
        go_single_us = bench["PredictRow"][0] / 1e3
        go_rows = bench["PredictBlock"][1]
        go_contrib_us = bench["Contributions"][0] / 1e3

    print(f"model: 200 trees, depth 6, 10 features, binary:logistic (xgboost {xgb.__version__})")
    print(f"block rows/s, 1 thread:   xgboost {xgb_rows:,.0f}   go {go_rows:,.0f}   go/xgboost = {go_rows / xgb_rows:.2f}x")
    print(f"single row us:            xgboost {single * 1e6:.1f}   go {go_single_us:.2f}   (target <= 5 us)")
    print(f"contributions us/row:     xgboost {contrib * 1e6:.1f}   go {go_contrib_us:.1f}   xgboost/go = {contrib * 1e6 / go_contrib_us:.2f}x")


if __name__ == "__main__":
    main()
