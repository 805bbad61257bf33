#!/usr/bin/python3
"""Convert a pickled scikit-learn model into an XGBoost JSON model file.

Hokusai never unpickles models (unpickling runs arbitrary code). Run this
once, on a pickle you trust, with Debian's interpreter (python3-sklearn,
python3-numpy, python3-joblib):

    /usr/bin/python3 tools/sklearn_convert.py model.pkl model.json

and ship model.json (format "xgboost-json" in config.json) instead of the
pickle. xgboost itself is not needed. Supported estimators, binary
classifiers (two classes) and single-output regressors only:

  DecisionTreeClassifier, RandomForestClassifier, ExtraTreesClassifier
      leaf = probability of the second class / number of trees,
      objective reg:squarederror, base_score 0: the prediction IS
      predict_proba(X)[:, 1] and TreeSHAP explains that probability.
  DecisionTreeRegressor, RandomForestRegressor, ExtraTreesRegressor
      leaf = value / number of trees, reg:squarederror, base_score 0.
  GradientBoostingClassifier (log-loss)
      the constant initial log-odds becomes base_score (as a probability),
      leaf = learning_rate * tree value, objective binary:logistic.
  GradientBoostingRegressor
      the constant initial prediction becomes base_score, reg:squarederror.
  LogisticRegression
      gblinear with the coefficients and intercept, binary:logistic.

Multi-class and multi-output models, GradientBoosting with the exponential
loss or a non-constant init estimator, and anything else are refused with an
error saying so.

Splits: sklearn sends x <= t left, comparing float32 inputs with a float64
threshold; XGBoost sends x < t' left with a float32 threshold. t' is the
float32 just above the largest float32 not greater than t, which makes the
two tests agree for every float32 input. Leaves and the base score are
float32 in the file, so outputs match sklearn to float32 precision. These
sklearn versions do not accept missing values; here a missing value (NaN)
follows the child that saw more training samples, and a linear model treats
it as 0 (xgboost gblinear).
"""
import json
import sys

import numpy as np

USAGE = "usage: sklearn_convert.py MODEL.pkl|MODEL.joblib OUT.json"


class ConvertError(Exception):
    """The model cannot be expressed as a file Hokusai's engine reads."""


def xgb_threshold(t):
    """float32 t' with (x < t') == (x <= t) for every float32 x."""
    f = np.float32(t)
    if float(f) > t:
        f = np.nextafter(f, np.float32(-np.inf))
    return float(np.nextafter(f, np.float32(np.inf)))


def f32(v):
    """v rounded to float32, as the Python float whose shortest text reads
    back as that float32 (xgboost stores float32 values)."""
    return float(np.format_float_positional(np.float32(v), unique=True, trim="-")) if np.isfinite(v) else float(v)


def breadth_first(left, right):
    """Old node ids in breadth-first order, so siblings get adjacent new ids:
    xgboost's predictor finds the right child at left + 1."""
    order = [0]
    for i in order:
        if left[i] != -1:
            order += [left[i], right[i]]
    return order


def convert_tree(est, leaf_value, tree_id):
    """One sklearn tree_ as an XGBoost JSON tree; leaf_value(node) gives leaves."""
    t = est.tree_
    left, right = t.children_left.tolist(), t.children_right.tolist()
    order = breadth_first(left, right)
    new_id = {old: new for new, old in enumerate(order)}
    n = len(order)
    cover = t.weighted_n_node_samples
    tree = {k: [] for k in ("left_children", "right_children", "parents", "split_conditions",
                            "split_indices", "default_left", "base_weights", "sum_hessian")}
    parents = {}
    for old in order:
        new = new_id[old]
        tree["parents"].append(parents.get(new, 2147483647))
        tree["sum_hessian"].append(f32(cover[old]))
        if left[old] == -1:
            v = f32(leaf_value(old))
            tree["left_children"].append(-1)
            tree["right_children"].append(-1)
            tree["split_conditions"].append(v)
            tree["split_indices"].append(0)
            tree["default_left"].append(0)
            tree["base_weights"].append(v)
            continue
        lo, hi = new_id[left[old]], new_id[right[old]]
        parents[lo] = parents[hi] = new
        tree["left_children"].append(lo)
        tree["right_children"].append(hi)
        tree["split_conditions"].append(xgb_threshold(float(t.threshold[old])))
        tree["split_indices"].append(int(t.feature[old]))
        tree["default_left"].append(int(cover[left[old]] >= cover[right[old]]))
        tree["base_weights"].append(0.0)
    tree.update({
        "categories": [], "categories_nodes": [], "categories_segments": [], "categories_sizes": [],
        "id": tree_id,
        "loss_changes": [0.0] * n,
        "split_type": [0] * n,
        "tree_param": {"num_deleted": "0", "num_feature": str(est.n_features_in_),
                       "num_nodes": str(n), "size_leaf_vector": "0"},
    })
    return dict(sorted(tree.items()))


def document(model, booster, objective, base_score):
    """The XGBoost 1.7 JSON document around one booster."""
    names = [str(s) for s in getattr(model, "feature_names_in_", [])]
    return {
        "learner": {
            "attributes": {},
            "feature_names": names,
            "feature_types": ["float"] * len(names),
            "gradient_booster": booster,
            "learner_model_param": {
                "base_score": repr(f32(base_score)), "boost_from_average": "0", "num_class": "0",
                "num_feature": str(model.n_features_in_), "num_target": "1",
            },
            "objective": {"name": objective, "reg_loss_param": {"scale_pos_weight": "1"}},
        },
        "version": [1, 7, 4],
    }


def gbtree(trees):
    return {
        "model": {
            "gbtree_model_param": {"num_parallel_tree": "1", "num_trees": str(len(trees)), "size_leaf_vector": "0"},
            "tree_info": [0] * len(trees),
            "trees": trees,
        },
        "name": "gbtree",
    }


def check_binary(model):
    classes = getattr(model, "classes_", None)
    if classes is not None and len(classes) != 2:
        raise ConvertError(f"{type(model).__name__} has {len(classes)} classes; only binary classifiers "
                           "convert (multi-class models are not supported)")


def check_single_output(model):
    if getattr(model, "n_outputs_", 1) != 1:
        raise ConvertError(f"{type(model).__name__} predicts {model.n_outputs_} outputs; only single-output models convert")


def averaged_trees(model, estimators, classifier):
    """Forest or single tree: the mean of the trees' outputs."""
    check_single_output(model)
    k = len(estimators)
    trees = []
    for i, est in enumerate(estimators):
        value = est.tree_.value[:, 0, :]
        if classifier:
            trees.append(convert_tree(est, lambda n, v=value: v[n, 1] / v[n].sum() / k, i))
        else:
            trees.append(convert_tree(est, lambda n, v=value: v[n, 0] / k, i))
    return document(model, gbtree(trees), "reg:squarederror", 0.0)


def gradient_boosting(model, classifier):
    from sklearn.dummy import DummyClassifier, DummyRegressor

    init = model.init_
    if not (init == "zero" or isinstance(init, (DummyClassifier, DummyRegressor))):
        raise ConvertError(f"GradientBoosting with init={type(init).__name__} has no constant initial "
                           "prediction; only the default (prior/mean) or 'zero' init converts")
    if classifier and model.loss not in ("log_loss", "deviance"):
        raise ConvertError(f"GradientBoostingClassifier with loss={model.loss!r} does not convert; use log_loss")
    # The initial raw prediction is a constant; read it through the model.
    x0 = np.zeros((1, model.n_features_in_), dtype=np.float32)
    raw = model.decision_function(x0) if classifier else model.predict(x0)
    init_margin = float(np.ravel(raw)[0]) - sum(
        model.learning_rate * float(est.predict(x0)[0]) for est in model.estimators_[:, 0])
    lr = model.learning_rate
    trees = [convert_tree(est, lambda n, v=est.tree_.value: lr * v[n, 0, 0], i)
             for i, est in enumerate(model.estimators_[:, 0])]
    if classifier:
        return document(model, gbtree(trees), "binary:logistic", 1 / (1 + np.exp(-init_margin)))
    return document(model, gbtree(trees), "reg:squarederror", init_margin)


def logistic_regression(model):
    coef = np.ravel(model.coef_)
    booster = {
        "model": {"boosted_rounds": 1,
                  "weights": [f32(w) for w in coef] + [f32(np.ravel(model.intercept_)[0])]},
        "name": "gblinear",
    }
    return document(model, booster, "binary:logistic", 0.5)


def convert(model):
    """XGBoost JSON document (a dict) equivalent to a fitted sklearn model."""
    from sklearn import ensemble, linear_model, tree

    name = type(model).__name__
    if isinstance(model, (tree.DecisionTreeClassifier, ensemble.RandomForestClassifier,
                          ensemble.ExtraTreesClassifier)):
        check_binary(model)
        estimators = getattr(model, "estimators_", [model])
        return averaged_trees(model, estimators, classifier=True)
    if isinstance(model, (tree.DecisionTreeRegressor, ensemble.RandomForestRegressor,
                          ensemble.ExtraTreesRegressor)):
        return averaged_trees(model, getattr(model, "estimators_", [model]), classifier=False)
    if isinstance(model, ensemble.GradientBoostingClassifier):
        check_binary(model)
        return gradient_boosting(model, classifier=True)
    if isinstance(model, ensemble.GradientBoostingRegressor):
        return gradient_boosting(model, classifier=False)
    if isinstance(model, linear_model.LogisticRegression):
        check_binary(model)
        return logistic_regression(model)
    raise ConvertError(f"{name} is not supported; convertible: DecisionTree, RandomForest, ExtraTrees "
                       "and GradientBoosting classifiers (binary) and regressors, LogisticRegression (binary)")


def save(model, path):
    with open(path, "w") as f:
        json.dump(convert(model), f)
        f.write("\n")


def main(argv):
    if len(argv) != 3:
        print(USAGE, file=sys.stderr)
        return 2
    import joblib  # reads both joblib files and plain pickles

    model = joblib.load(argv[1])
    try:
        save(model, argv[2])
    except ConvertError as e:
        print(f"sklearn_convert: {argv[1]}: {e}", file=sys.stderr)
        return 1
    print(f"wrote {argv[2]} from {type(model).__name__} ({model.n_features_in_} features)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
