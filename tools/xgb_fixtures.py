#!/usr/bin/python3
"""Train small XGBoost models and write golden fixtures for worker/model/tree.

Run with Debian's interpreter (python3-xgboost 1.7.4):

    /usr/bin/python3 tools/xgb_fixtures.py [OUT_DIR]

OUT_DIR defaults to worker/model/tree/testdata/xgb. For every case NAME it
writes NAME.json (Booster.save_model), NAME.ubj (UBJSON, same model) and
NAME.golden.json holding the test inputs (null = missing) and xgboost's own
predictions, margins (output_margin=True) and contributions
(pred_contribs=True), all flattened row-major.
"""
import json
import os
import sys

import numpy as np
import xgboost as xgb

ROWS_TRAIN = 600
ROWS_TEST = 100
N_FEATURES = 6
MISSING = 0.10


def features(rng, n, n_features=N_FEATURES):
    X = rng.normal(size=(n, n_features)).astype(np.float32)
    return X


def with_missing(rng, X):
    X = X.copy()
    X[rng.random(X.shape) < MISSING] = np.nan
    return X


def signal(X):
    Z = np.nan_to_num(X)
    return 1.5 * Z[:, 0] - Z[:, 1] + 0.8 * Z[:, 2] * Z[:, 3] + 0.5 * np.sin(3 * Z[:, 4])


def labels(rng, X, kind):
    s = signal(X) + 0.3 * rng.normal(size=len(X))
    if kind == "binary":
        return (s > 0).astype(np.float32)
    if kind == "regression":
        return s.astype(np.float32)
    if kind == "unit":
        return (1 / (1 + np.exp(-s))).astype(np.float32)
    if kind == "count":
        return rng.poisson(np.exp(0.4 * s)).astype(np.float32)
    if kind == "multi":
        return np.digitize(s, [-0.7, 0.7]).astype(np.float32)
    raise ValueError(kind)


CASES = [
    # name, label kind, params, rounds
    ("binary_logistic", "binary",
     {"objective": "binary:logistic", "max_depth": 4, "eta": 0.3, "base_score": 0.3}, 30),
    ("binary_logitraw", "binary",
     {"objective": "binary:logitraw", "max_depth": 3, "eta": 0.3}, 20),
    ("reg_squarederror", "regression",
     {"objective": "reg:squarederror", "max_depth": 4, "eta": 0.2, "base_score": 1.5}, 30),
    ("reg_logistic", "unit",
     {"objective": "reg:logistic", "max_depth": 3, "eta": 0.3}, 20),
    ("count_poisson", "count",
     {"objective": "count:poisson", "max_depth": 3, "eta": 0.2, "base_score": 2.0}, 25),
    ("multi_softprob", "multi",
     {"objective": "multi:softprob", "num_class": 3, "max_depth": 3, "eta": 0.3}, 15),
    ("multi_softmax", "multi",
     {"objective": "multi:softmax", "num_class": 3, "max_depth": 3, "eta": 0.3}, 15),
    ("gblinear_logistic", "binary",
     {"booster": "gblinear", "objective": "binary:logistic", "eta": 0.5, "base_score": 0.4}, 20),
    ("gblinear_multi", "multi",
     {"booster": "gblinear", "objective": "multi:softprob", "num_class": 3, "eta": 0.5}, 20),
    ("dart_logistic", "binary",
     {"booster": "dart", "objective": "binary:logistic", "max_depth": 3, "eta": 0.3,
      "rate_drop": 0.2, "skip_drop": 0.0, "seed": 7}, 20),
]


def to_list(a):
    """Flatten to float32-exact Python floats; NaN becomes None (JSON null)."""
    out = []
    for v in np.asarray(a, dtype=np.float32).ravel():
        out.append(None if np.isnan(v) else float(v))
    return out


def write(out_dir, name, bst, dtest, X_test, n_features):
    bst.save_model(os.path.join(out_dir, name + ".json"))
    bst.save_model(os.path.join(out_dir, name + ".ubj"))
    golden = {
        "xgboost_version": xgb.__version__,
        "num_features": n_features,
        "rows": int(X_test.shape[0]),
        "inputs": to_list(X_test),
        "predictions": to_list(bst.predict(dtest)),
        "margins": to_list(bst.predict(dtest, output_margin=True)),
        "contributions": to_list(bst.predict(dtest, pred_contribs=True)),
    }
    with open(os.path.join(out_dir, name + ".golden.json"), "w") as f:
        json.dump(golden, f, separators=(",", ":"))
        f.write("\n")


def categorical_case(out_dir, rng, name, rounds, depth):
    """Two categorical features: 8 levels (partition splits) and 3 levels (one-hot)."""
    n = ROWS_TRAIN + ROWS_TEST
    X = features(rng, n, 5)
    X[:, 3] = rng.integers(0, 8, size=n)
    X[:, 4] = rng.integers(0, 3, size=n)
    effect = np.array([1.2, -0.8, 0.3, -1.5, 0.9, 0.0, -0.4, 1.0])
    s = X[:, 0] - 0.5 * X[:, 1] + effect[X[:, 3].astype(int)] + 0.7 * (X[:, 4] == 1)
    y = (s + 0.3 * rng.normal(size=n) > 0).astype(np.float32)
    X = with_missing(rng, X)
    types = ["q", "q", "q", "c", "c"]
    dtrain = xgb.DMatrix(X[:ROWS_TRAIN], label=y[:ROWS_TRAIN], feature_types=types,
                         enable_categorical=True)
    dtest = xgb.DMatrix(X[ROWS_TRAIN:], feature_types=types, enable_categorical=True)
    params = {"objective": "binary:logistic", "tree_method": "hist", "max_depth": depth,
              "eta": 0.3, "max_cat_to_onehot": 4, "nthread": 1}
    bst = xgb.train(params, dtrain, rounds)
    write(out_dir, name, bst, dtest, X[ROWS_TRAIN:], 5)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        here, "..", "worker", "model", "tree", "testdata", "xgb")
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(20261123)
    for name, kind, params, rounds in CASES:
        X = with_missing(rng, features(rng, ROWS_TRAIN + ROWS_TEST))
        y = labels(rng, X, kind)
        dtrain = xgb.DMatrix(X[:ROWS_TRAIN], label=y[:ROWS_TRAIN])
        dtest = xgb.DMatrix(X[ROWS_TRAIN:])
        bst = xgb.train(dict(params, nthread=1), dtrain, rounds)
        write(out_dir, name, bst, dtest, X[ROWS_TRAIN:], N_FEATURES)
    categorical_case(out_dir, rng, "categorical", rounds=25, depth=4)
    # Small enough to seed the fuzz corpus of the loaders.
    categorical_case(out_dir, rng, "tiny_categorical", rounds=2, depth=2)
    total = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))
    print(f"wrote fixtures to {out_dir} ({total} bytes)")


if __name__ == "__main__":
    main()
