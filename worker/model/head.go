package model

import (
	"math"
	"strconv"

	"github.com/hokusai-ai/inference-queue/internal/jsonw"
)

// Prediction is the head's answer for one row. Which fields are set
// depends on Task; MarshalJSON writes only those.
type Prediction struct {
	Task Task

	// Lead scoring. LeadScore is floor(score_scale x probability);
	// Recommendation compares it with the thresholds (Hot >= hot,
	// Warm >= warm, else Cold). Confidence, in [0, 1], says how firmly
	// the score sits inside its band: 0 on a threshold, 1 at the point
	// of the band farthest from any other band (the scale's ends for
	// Hot and Cold, the middle for Warm).
	LeadScore             int
	ConversionProbability float64
	Recommendation        string

	// Classification: the most probable class and every class's
	// probability, in Classes order. Confidence is the top probability.
	Label         string
	Classes       []string
	Probabilities []float64

	// Regression.
	Value float64

	// Confidence, for lead scoring and classification (see above).
	Confidence float64

	// Factors are the inputs that moved this prediction most, by the size
	// of their TreeSHAP contribution to the margin, largest first, as
	// readable text with the direction: "Demo requested (+)". For binary
	// models (and lead scoring) a "+" pushes towards the positive class;
	// for multi-class models, towards the predicted class. FactorDetails
	// carries the same factors for machines.
	Factors       []string
	FactorDetails []Factor
}

// Factor is one input's contribution to a prediction's margin (log-odds
// for logistic models).
type Factor struct {
	Feature      string  `json:"feature"`
	Contribution float64 `json:"contribution"`
}

// MarshalJSON writes the task's fields under the names partners already use.
func (p Prediction) MarshalJSON() ([]byte, error) { return p.AppendJSON(nil) }

// AppendJSON appends what MarshalJSON writes to b, without reflection: the
// worker writes a response per request, a batch one per row.
func (p Prediction) AppendJSON(b []byte) ([]byte, error) {
	var err error
	switch p.Task {
	case TaskLeadScoring:
		b = append(b, `{"lead_score":`...)
		b = strconv.AppendInt(b, int64(p.LeadScore), 10)
		b = append(b, `,"conversion_probability":`...)
		if b, err = jsonw.Float(b, p.ConversionProbability); err != nil {
			return nil, err
		}
		b = append(b, `,"recommendation":`...)
		b = jsonw.String(b, p.Recommendation)
		b = append(b, `,"confidence":`...)
		b, err = jsonw.Float(b, p.Confidence)
	case TaskClassification:
		b = append(b, `{"label":`...)
		b = jsonw.String(b, p.Label)
		b = append(b, `,"probabilities":{`...)
		for i, name := range p.Classes {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonw.String(b, name)
			b = append(b, ':')
			if b, err = jsonw.Float(b, p.Probabilities[i]); err != nil {
				return nil, err
			}
		}
		b = append(b, `},"confidence":`...)
		b, err = jsonw.Float(b, p.Confidence)
	default:
		b = append(b, `{"value":`...)
		b, err = jsonw.Float(b, p.Value)
	}
	if err != nil {
		return nil, err
	}
	b = append(b, `,"factors":[`...)
	for i, f := range p.Factors {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonw.String(b, f)
	}
	b = append(b, `],"factor_details":[`...)
	for i, f := range p.FactorDetails {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"feature":`...)
		b = jsonw.String(b, f.Feature)
		b = append(b, `,"contribution":`...)
		if b, err = jsonw.Float(b, f.Contribution); err != nil {
			return nil, err
		}
		b = append(b, '}')
	}
	return append(b, "]}"...), nil
}

// headWriter fills the Predictions of one PredictFeatures call, carving
// per-row slices out of buffers allocated once for the whole call.
type headWriter struct {
	m       *Model
	contrib []float64 // one row's contributions, all outputs
	top     []int     // feature indices of the current row's top factors
	factors []string
	details []Factor
	probs   []float64 // binary classification: 1-p, p per row
}

func newHeadWriter(m *Model, n int, explain bool) *headWriter {
	w := &headWriter{m: m}
	if k := min(m.head.topFactors, len(m.features)); explain && k > 0 {
		nf := m.engine.NumFeatures()
		w.contrib = make([]float64, m.engine.NumOutputs()*(nf+1))
		w.top = make([]int, 0, k)
		w.factors = make([]string, 0, n*k)
		w.details = make([]Factor, 0, n*k)
	}
	if m.task == TaskClassification && m.engine.NumOutputs() == 1 {
		w.probs = make([]float64, 0, 2*n)
	}
	return w
}

// fill sets the task's fields of p from the row's transformed outputs
// (the probability for one-output classifiers, the softmax for
// multi-class ones) and returns the output group its factors explain.
func (w *headWriter) fill(p *Prediction, out []float64) int {
	h := &w.m.head
	p.Task = w.m.task
	switch w.m.task {
	case TaskLeadScoring:
		prob := min(max(out[0], 0), 1)
		p.ConversionProbability = prob
		p.LeadScore = int(math.Floor(h.scale * prob))
		p.Recommendation, p.Confidence = h.recommend(p.LeadScore, h.scale*prob)
	case TaskRegression:
		p.Value = out[0]
	case TaskClassification:
		probs := out
		if len(out) == 1 {
			prob := min(max(out[0], 0), 1)
			w.probs = append(w.probs, 1-prob, prob)
			probs = w.probs[len(w.probs)-2:]
		}
		best := 0
		for i, v := range probs {
			if v > probs[best] {
				best = i
			}
		}
		p.Classes, p.Probabilities = h.classes, probs
		p.Label, p.Confidence = h.classes[best], probs[best]
		if len(out) > 1 {
			return best
		}
	}
	return 0
}

// recommend maps a score to its band and the confidence defined on
// Prediction; s is the unfloored score.
func (h *head) recommend(score int, s float64) (string, float64) {
	sc := float64(score)
	var label string
	var dist, room float64
	switch {
	case sc >= h.hot:
		label, dist, room = h.hotLabel, s-h.hot, h.scale-h.hot
	case sc >= h.warm:
		label, dist, room = h.warmLabel, min(s-h.warm, h.hot-s), (h.hot-h.warm)/2
	default:
		label, dist, room = h.cold, h.warm-s, h.warm
	}
	if room <= 0 {
		return label, 1
	}
	return label, min(max(dist/room, 0), 1)
}

// explain sets p's factors from the TreeSHAP contributions of row x to
// output group.
func (w *headWriter) explain(p *Prediction, x []float32, group int) {
	if w.contrib == nil {
		return
	}
	m := w.m
	nf := m.engine.NumFeatures()
	m.engine.Contributions(x, w.contrib)
	phi := w.contrib[group*(nf+1) : group*(nf+1)+nf]
	// Keep the k largest |contribution|, largest first; ties keep the
	// earlier feature first. k is small, so insertion beats sorting.
	top := w.top[:0]
	for f, c := range phi {
		a := math.Abs(c)
		if a == 0 {
			continue
		}
		if len(top) == cap(top) && a <= math.Abs(phi[top[len(top)-1]]) {
			continue
		}
		i := len(top)
		if i == cap(top) {
			i--
		} else {
			top = append(top, 0)
		}
		for i > 0 && a > math.Abs(phi[top[i-1]]) {
			top[i] = top[i-1]
			i--
		}
		top[i] = f
	}
	start := len(w.factors)
	for _, f := range top {
		enc := &m.features[f]
		text := enc.plus
		if phi[f] < 0 {
			text = enc.minus
		}
		w.factors = append(w.factors, text)
		w.details = append(w.details, Factor{Feature: enc.name, Contribution: phi[f]})
	}
	end := len(w.factors)
	p.Factors = w.factors[start:end:end]
	p.FactorDetails = w.details[start:end:end]
}

// softmax turns margins into probabilities in place.
func softmax(v []float64) {
	hi := v[0]
	for _, x := range v {
		hi = max(hi, x)
	}
	var sum float64
	for i, x := range v {
		v[i] = math.Exp(x - hi)
		sum += v[i]
	}
	for i := range v {
		v[i] /= sum
	}
}
