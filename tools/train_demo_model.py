#!/usr/bin/python3
"""Train the demo Sales Lead Scoring model on synthetic leads.

Run with Debian's interpreter (python3-xgboost 1.7.4, python3-numpy):

    /usr/bin/python3 tools/train_demo_model.py [MODEL_DIR] [GOLDEN_FILE]

MODEL_DIR defaults to models/sales-lead-scoring: the script writes
config.json (the hokusai input schema and head) and model.json (XGBoost JSON,
binary:logistic) there. GOLDEN_FILE defaults to
worker/model/testdata/sales_lead_golden.json: named inputs of held-out leads
with xgboost's own probabilities and contributions, which the Go tests compare
against. Everything is derived from one seed, so a rerun writes the same
files.

The leads are synthetic: a plausible latent propensity (demo requested,
budget confirmed, engagement, senior titles and short decision timelines
raise conversion; mid-sized companies convert best) drives a Bernoulli label.
The inputs are encoded with the same rules the Go runtime applies to
config.json (category value maps, first matching keyword rule for titles),
so training and serving cannot drift apart.
"""
import json
import math
import os
import re
import sys

import numpy as np
import xgboost as xgb

SEED = 21
N_LEADS = 20000
TEST_FRACTION = 0.2
N_GOLDEN = 40
PARAMS = {
    "objective": "binary:logistic",
    "eval_metric": "auc",
    "tree_method": "hist",
    "max_depth": 5,
    "eta": 0.05,
    "subsample": 0.8,
    "colsample_bytree": 0.9,
    "min_child_weight": 5,
    "max_cat_to_onehot": 1,
    "seed": SEED,
}
ROUNDS = 200

INDUSTRIES = ["Technology", "Finance", "Healthcare", "Manufacturing", "Retail", "Education", "Other"]
INDUSTRY_EFFECT = [0.35, 0.25, 0.1, -0.1, -0.2, -0.35, -0.1]
TIMELINES = ["Immediate", "1-3 months", "3-6 months", "6-12 months", "12+ months"]
# Upper bounds in months of each timeline bucket but the last (config.json buckets).
TIMELINE_MAX_MONTHS = [1, 3, 6, 12, None]
TIMELINE_EFFECT = [0.9, 0.5, 0.0, -0.5, -1.0]
# Titles as leads type them, with the seniority code the rules should give.
TITLES = [
    ("CEO", 3), ("Chief Revenue Officer", 3), ("VP of Sales", 3), ("Vice President, Marketing", 3),
    ("Founder & CTO", 3), ("Owner", 3), ("SVP Operations", 3),
    ("Director of IT", 2), ("Head of Procurement", 2), ("Sales Director", 2),
    ("Marketing Manager", 1), ("Engineering Manager", 1), ("Team Lead", 1), ("Senior Analyst", 1),
    ("Analyst", 0), ("Software Engineer", 0), ("Sales Representative", 0), ("Intern", 0),
    ("Consultant", 0), ("Coordinator", 0),
]
TITLE_EFFECT = [-0.3, 0.0, 0.45, 0.8]

CONFIG = {
    "hokusai": {
        "task": "lead-scoring",
        "name": "Sales Lead Scoring (demo)",
        "model_file": "model.json",
        "format": "xgboost-json",
        "features": [
            {"name": "company_size", "type": "number", "integer": True, "label": "Company size",
             "description": "Number of employees", "min": 0},
            {"name": "engagement_score", "type": "number", "label": "Engagement score",
             "description": "Marketing engagement score, 0 to 100", "min": 0, "max": 100},
            {"name": "website_visits", "type": "number", "integer": True, "label": "Website visits",
             "description": "Visits in the last 90 days", "min": 0},
            {"name": "email_opens", "type": "number", "integer": True, "label": "Email opens",
             "description": "Marketing emails opened in the last 90 days", "min": 0},
            {"name": "content_downloads", "type": "number", "integer": True, "label": "Content downloads",
             "description": "Whitepapers, case studies and the like downloaded", "min": 0},
            {"name": "demo_requested", "type": "boolean", "label": "Demo requested",
             "description": "The lead asked for a product demo", "default": False},
            {"name": "budget_confirmed", "type": "boolean", "label": "Budget confirmed",
             "description": "The lead confirmed a budget", "default": False},
            {"name": "industry", "type": "category", "label": "Industry",
             "description": "Industry of the lead's company",
             "values": {name: code for code, name in enumerate(INDUSTRIES)}, "default": "Other"},
            {"name": "decision_timeline", "type": "timeline", "label": "Decision timeline",
             "description": "When the lead expects to decide: a bucket name, a quarter (\"Q2 2025\"), "
                            "a month range, a date; read as months from the request's time",
             "buckets": [dict({"value": name, "code": code}, **({"max_months": bound} if bound else {}))
                         for code, (name, bound) in enumerate(zip(TIMELINES, TIMELINE_MAX_MONTHS))]},
            {"name": "title", "type": "text", "label": "Title seniority",
             "description": "Job title, free text; mapped to a seniority level by keyword rules",
             "rules": [
                 {"keywords": ["chief", "ceo", "cto", "cfo", "coo", "cmo", "cio", "cxo", "founder", "owner",
                               "president", "vp", "svp", "evp", "vice president"], "code": 3},
                 {"keywords": ["director", "head"], "code": 2},
                 {"keywords": ["manager", "lead", "principal", "senior"], "code": 1},
             ],
             "default_code": 0},
        ],
        "head": {
            "score_scale": 100,
            "thresholds": {"hot": 70, "warm": 40},
            "labels": {"hot": "Hot", "warm": "Warm", "cold": "Cold"},
            "top_factors": 3,
        },
    }
}


def words(text):
    """Lower-case runs of letters and digits, as the Go runtime splits text."""
    return re.findall(r"[^\W_]+", text.lower())


def title_code(feature, text):
    """First rule with a keyword whose words appear consecutively in text."""
    tokens = words(text)
    for rule in feature["rules"]:
        for keyword in rule["keywords"]:
            kw = words(keyword)
            if any(tokens[i:i + len(kw)] == kw for i in range(len(tokens) - len(kw) + 1)):
                return rule["code"]
    return feature["default_code"]


def encode(lead):
    """Feature vector of one lead (a dict of named raw inputs), NaN = missing."""
    x = []
    for f in CONFIG["hokusai"]["features"]:
        v = lead.get(f["name"], f.get("default"))
        if v is None:
            x.append(math.nan)
        elif f["type"] == "category":
            x.append(float(f["values"][v]))
        elif f["type"] == "timeline":
            x.append(float(next(b["code"] for b in f["buckets"] if b["value"] == v)))
        elif f["type"] == "text":
            x.append(float(title_code(f, v)))
        else:
            x.append(float(v))
    return x


def synthesize(rng, n):
    """Raw leads (dicts as a partner would send them) and conversion labels."""
    leads, labels = [], []
    for _ in range(n):
        size = int(min(100000, max(1, round(math.exp(rng.normal(4.6, 1.7))))))
        engagement = float(np.clip(rng.normal(45, 22), 0, 100))
        visits = int(rng.poisson(1 + engagement / 8))
        opens = int(rng.poisson(2 + engagement / 10))
        downloads = int(rng.poisson(0.2 + engagement / 40))
        demo = bool(rng.random() < 0.08 + engagement / 250)
        budget = bool(rng.random() < 0.15 + 0.25 * demo)
        industry = int(rng.integers(len(INDUSTRIES)))
        timeline = int(rng.integers(len(TIMELINES)))
        title, seniority = TITLES[int(rng.integers(len(TITLES)))]

        z = (-3.3 + 1.7 * demo + 1.2 * budget + 0.03 * (engagement - 45)
             + 0.35 * math.log1p(visits) + 0.08 * opens + 0.25 * downloads
             - 0.12 * (math.log(size) - 5.5) ** 2 + 0.4
             + INDUSTRY_EFFECT[industry] + TIMELINE_EFFECT[timeline] + TITLE_EFFECT[seniority]
             + rng.normal(0, 0.5))
        labels.append(float(rng.random() < 1 / (1 + math.exp(-z))))

        lead = {
            "company_size": size, "engagement_score": round(engagement, 1), "website_visits": visits,
            "email_opens": opens, "content_downloads": downloads, "demo_requested": demo,
            "budget_confirmed": budget, "industry": INDUSTRIES[industry],
            "decision_timeline": TIMELINES[timeline], "title": title,
        }
        # CRM exports are patchy: some fields never arrive.
        for name in ("company_size", "engagement_score", "website_visits", "email_opens", "content_downloads",
                     "industry", "decision_timeline", "title"):
            if rng.random() < 0.06:
                del lead[name]
        leads.append(lead)
    return leads, np.array(labels, dtype=np.float32)


def auc(y, p):
    """Area under the ROC curve from ranks (ties share the average rank)."""
    order = np.argsort(p, kind="mergesort")
    ranks = np.empty(len(p))
    sorted_p = p[order]
    i = 0
    while i < len(p):
        j = i
        while j + 1 < len(p) and sorted_p[j + 1] == sorted_p[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    pos = y == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return (ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def main():
    model_dir = sys.argv[1] if len(sys.argv) > 1 else "models/sales-lead-scoring"
    golden_file = sys.argv[2] if len(sys.argv) > 2 else "worker/model/testdata/sales_lead_golden.json"
    rng = np.random.default_rng(SEED)
    leads, y = synthesize(rng, N_LEADS)
    X = np.array([encode(lead) for lead in leads], dtype=np.float32)
    features = CONFIG["hokusai"]["features"]
    names = [f["name"] for f in features]
    types = ["c" if f["type"] == "category" and f["name"] == "industry" else "q" for f in features]

    n_test = int(N_LEADS * TEST_FRACTION)
    train = xgb.DMatrix(X[n_test:], label=y[n_test:], feature_names=names, feature_types=types,
                        enable_categorical=True)
    test = xgb.DMatrix(X[:n_test], label=y[:n_test], feature_names=names, feature_types=types,
                       enable_categorical=True)
    booster = xgb.train(PARAMS, train, ROUNDS)
    p_test = booster.predict(test)

    os.makedirs(model_dir, exist_ok=True)
    model_path = os.path.join(model_dir, "model.json")
    booster.save_model(model_path)
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
        f.write("\n")

    golden = xgb.DMatrix(X[:N_GOLDEN], feature_names=names, feature_types=types, enable_categorical=True)
    os.makedirs(os.path.dirname(golden_file), exist_ok=True)
    with open(golden_file, "w") as f:
        json.dump({
            "inputs": leads[:N_GOLDEN],
            "probabilities": booster.predict(golden).tolist(),
            "contributions": booster.predict(golden, pred_contribs=True).tolist(),
        }, f)
        f.write("\n")

    size = sum(os.path.getsize(os.path.join(model_dir, n)) for n in ("model.json", "config.json"))
    print(f"leads={N_LEADS} positive_rate={y.mean():.3f} trees={ROUNDS} max_depth={PARAMS['max_depth']}")
    print(f"held_out_rows={n_test} held_out_auc={auc(y[:n_test], p_test):.4f} files_bytes={size}")


if __name__ == "__main__":
    main()
