// Package model loads Hokusai model folders and turns validated inputs into
// predictions.
//
// A model folder holds config.json and one model file. config.json carries
// a "hokusai" object:
//
//	{"hokusai": {
//	  "task": "lead-scoring",              // or "classification", "regression"
//	  "name": "Sales Lead Scoring",
//	  "model_file": "model.json",          // relative to the folder
//	  "format": "xgboost-json",            // xgboost-ubj, lightgbm-text; default from the extension
//	  "features": [                        // in the model's feature order
//	    {"name": "engagement_score", "type": "number", "label": "Engagement score", "min": 0, "max": 100},
//	    {"name": "demo_requested", "type": "boolean", "label": "Demo requested", "default": false},
//	    {"name": "industry", "type": "category", "values": {"Technology": 0, "Finance": 1, "Other": 2}, "default": "Other"},
//	    {"name": "title", "type": "text", "label": "Title seniority",
//	     "rules": [{"keywords": ["chief", "vp", "vice president"], "code": 3}, {"keywords": ["director"], "code": 2}],
//	     "default_code": 0}
//	  ],
//	  "head": {"score_scale": 100, "thresholds": {"hot": 70, "warm": 40},
//	           "labels": {"hot": "Hot", "warm": "Warm", "cold": "Cold"}, "top_factors": 3}
//	}}
//
// Features: every one may set "description", "required" and "default" (the
// JSON value used when the input is absent; an input with neither is given
// to the model as missing, NaN). Numbers may set "min" and "max". A
// category maps each allowed value (matched case-insensitively) to the code
// the model was trained on. A text input is split into lower-case words
// and the first rule with a keyword whose words appear consecutively gives
// the code ("cto" does not match "director"); no match gives
// "default_code", or missing when it is absent. "label" names the input
// in factors (default: the name).
//
// Head: lead-scoring needs a one-output model whose prediction is the
// conversion probability and answers lead_score, conversion_probability,
// recommendation, confidence and factors (see [Prediction]);
// classification answers a label and per-class probabilities ("classes"
// names them, default "0", "1", ...); regression answers a value.
// "top_factors" (default 3, 0 for none) sets how many TreeSHAP factors
// every prediction carries.
//
// The input schema is a [jobs.Schema], so the API validates requests
// without linking this package; [Model.Encode] turns a validated
// [jobs.Row] into the feature vector, and the engine in package tree does
// the arithmetic. Pickled models are refused with an error naming
// tools/sklearn_convert.py.
//
// This package reads files and computes; it must never import Redis, HTTP,
// asynq, the Hub client or the API.
package model
