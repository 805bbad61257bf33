#!/usr/bin/python3
"""Train one small model per estimator kind tools/sklearn_convert.py handles,
convert each, and write what the Go test compares.

    /usr/bin/python3 worker/model/testdata/sklearn_cases.py OUT_DIR

For every case NAME it writes OUT_DIR/NAME.json (the converted model); then
OUT_DIR/cases.json lists the cases with the test rows (float32 values) and
sklearn's own outputs: predict_proba(X)[:, 1] for classifiers, predict(X)
for regressors. Refusals are checked here too, and when xgboost is
installed the converted files are also checked against xgboost itself.
"""
import json
import os
import sys

import numpy as np
from sklearn import ensemble, linear_model, tree

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "tools"))
import sklearn_convert  # noqa: E402

N_FEATURES = 5


def data(rng, n):
    X = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
    # Repeated values put sklearn thresholds at midpoints of ties.
    X[:, 4] = np.round(X[:, 4] * 2) / 2
    s = 1.2 * X[:, 0] - X[:, 1] + 0.7 * X[:, 2] * X[:, 3] + 0.4 * X[:, 4]
    return X, s


def cases(rng):
    X, s = data(rng, 800)
    yb = (s + 0.4 * rng.normal(size=len(s)) > 0).astype(int)
    yr = s + 0.2 * rng.normal(size=len(s))
    return X, s, [
        ("decision_tree_classifier", tree.DecisionTreeClassifier(max_depth=6, random_state=1), yb),
        ("random_forest_classifier", ensemble.RandomForestClassifier(n_estimators=30, max_depth=7, random_state=1), yb),
        ("extra_trees_classifier", ensemble.ExtraTreesClassifier(n_estimators=30, max_depth=7, random_state=1), yb),
        ("gradient_boosting_classifier", ensemble.GradientBoostingClassifier(n_estimators=40, max_depth=3, random_state=1), yb),
        ("decision_tree_regressor", tree.DecisionTreeRegressor(max_depth=6, random_state=1), yr),
        ("random_forest_regressor", ensemble.RandomForestRegressor(n_estimators=30, max_depth=7, random_state=1), yr),
        ("extra_trees_regressor", ensemble.ExtraTreesRegressor(n_estimators=30, max_depth=7, random_state=1), yr),
        ("gradient_boosting_regressor", ensemble.GradientBoostingRegressor(n_estimators=40, max_depth=3, random_state=1), yr),
        ("logistic_regression", linear_model.LogisticRegression(C=0.5), yb),
    ]


def check_refusals(X, s):
    y3 = np.digitize(s, [-0.5, 0.5])
    for model in (ensemble.RandomForestClassifier(n_estimators=3).fit(X, y3),
                  linear_model.LogisticRegression().fit(X, y3)):
        try:
            sklearn_convert.convert(model)
        except sklearn_convert.ConvertError as e:
            assert "multi-class" in str(e), e
        else:
            raise AssertionError(f"multi-class {type(model).__name__} was converted")


def main():
    out = sys.argv[1]
    rng = np.random.default_rng(7)
    X, s, specs = cases(rng)
    X_test, _ = data(rng, 200)
    check_refusals(X, s)
    written = []
    for name, model, y in specs:
        model.fit(X, y)
        path = os.path.join(out, name + ".json")
        sklearn_convert.save(model, path)
        if hasattr(model, "predict_proba"):
            want = model.predict_proba(X_test)[:, 1]
        else:
            want = model.predict(X_test)
        try:
            import xgboost as xgb
        except ImportError:
            pass
        else:
            got = xgb.Booster(model_file=path).predict(xgb.DMatrix(X_test))
            assert np.max(np.abs(got - want)) < 1e-5, (name, np.max(np.abs(got - want)))
        written.append({"name": name, "file": name + ".json", "want": want.tolist()})
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump({"features": N_FEATURES, "rows": X_test.astype(float).tolist(), "cases": written}, f)


if __name__ == "__main__":
    main()
