// Package tree holds Hokusai's compiled tree-ensemble engine and the loaders
// that turn XGBoost and LightGBM model files into it.
//
// Every supported format (XGBoost JSON and UBJSON from Booster.save_model, in
// the 1.x and 2.x layouts, with gbtree, dart and gblinear boosters; LightGBM
// text models with header version=v3 or v4) compiles into one [Model]: one
// flat array of 16-byte nodes for all trees, laid out breadth first with
// sibling children adjacent, missing-value default directions and
// categorical bitsets, trees grouped per output, per-tree weights (dart)
// folded into the leaf values, and a base margin per output. A linear
// booster keeps a weight per feature and output plus a bias.
//
// Loading:
//
//	m, err := tree.Load("model.json")       // .json, .ubj or .txt (LightGBM)
//	m, err := tree.LoadXGBoostJSON(r)       // or LoadXGBoostUBJ, LoadLightGBM
//
// Pickles (.pkl, .pickle, .joblib) are refused with an error wrapping
// [ErrPickle]: unpickling runs arbitrary code, and the caller names the
// converter that turns such a model into a supported file.
//
// Evaluating (x holds NumFeatures() values; NaN means missing):
//
//	m.MarginRow(x, margin)        // NumOutputs() raw scores
//	m.PredictRow(x, pred)         // PredictWidth() transformed values
//	m.MarginBlock(X, margins)     // n rows, row-major, NumOutputs() each
//	m.PredictBlock(X, preds)      // n rows, row-major, PredictWidth() each
//	m.Contributions(x, contribs)  // NumOutputs() x (NumFeatures()+1), bias last
//
// Metadata: NumFeatures, NumOutputs (classes for multi-class, else 1),
// PredictWidth, Objective (as the file spells it), NumTrees and
// FeatureNames (nil when the file has none).
//
// Outputs follow xgboost: margins are the sum of tree outputs (times the dart
// tree weights) plus the base margin; PredictRow applies the objective's
// transform (identity, sigmoid, exp, softmax, or argmax for multi:softmax,
// where PredictWidth is 1 and the value is the class index). Contributions
// are path-dependent TreeSHAP using node covers (xgboost sum_hessian,
// LightGBM data counts), identical in definition to xgboost's
// pred_contribs=True: per output, one value per feature plus the bias, summing
// to the margin. For gblinear a feature contributes w*x (0 if missing) and
// the bias holds the bias plus the base margin.
//
// Contributions reads per-leaf tables (see shaptable.go) that its first
// call builds: for a leaf whose path has n distinct features, 2^n values
// indexed by the set of those features the row follows, so a row costs one
// step per split and n products per leaf (fewer for two sibling leaves,
// which share a table) instead of the path algebra. A tree gets tables
// only if its paths have at most 12 distinct features and no cover share
// the tables divide by is below 2^-64, and a model's tables stop at 64 MiB;
// other trees are computed per row as before. The 200-tree depth-6
// benchmark model needs 3.8 MiB of tables.
//
// None of the evaluation methods allocates once warm (per-call scratch is
// pooled). A Model is immutable once loaded and safe for concurrent use.
// The evaluation methods panic if a slice is shorter than documented, as
// that is a programming error, never a data error.
//
// Split rules, per source format:
//   - XGBoost numeric: left if x < threshold (float32 compare); NaN follows
//     default_left. Categorical: a category in the node's set goes right;
//     NaN follows the default; negative, too large or absent categories go
//     left.
//   - LightGBM numeric: left if x <= threshold (the double threshold is
//     turned into an exact float32 "x < t" bound at load time). Missing type
//     None sends NaN where 0 goes; Zero sends NaN and |x| <= 1e-35 to the
//     default side; NaN sends NaN to the default side. Categorical: a
//     category in the bitset goes left; NaN and negative values go right
//     (LightGBM v4 semantics).
//
// Loaders validate every index (children, features, categorical bitsets),
// reject cycles, shared nodes and trees deeper than 256 levels, so malformed
// input yields an error, never a panic or a hang.
//
// This package is pure computation over bytes and the standard library. It
// must never import Redis, HTTP, asynq, the Hub client or anything else that
// does I/O beyond reading the model it is handed.
package tree
