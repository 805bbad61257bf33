package jobs

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// FieldType is the type of one model input.
type FieldType string

// The input types a model schema can declare.
const (
	FieldNumber   FieldType = "number"
	FieldBoolean  FieldType = "boolean"
	FieldCategory FieldType = "category"
	FieldText     FieldType = "text"
	// FieldTimeline is a decision timeline: text in the forms partners
	// write ("Q2 2025", "1-3 months", an ISO date; see ParseTimeline) read as
	// months from the request's reference time, then put in the first of
	// Values whose MaxMonths bound holds it.
	FieldTimeline FieldType = "timeline"
)

// Field describes one named model input. The order of fields in a Schema is
// the order of values in a Row.
type Field struct {
	Name        string    `json:"name"`
	Type        FieldType `json:"type"`
	Description string    `json:"description,omitempty"`
	Required    bool      `json:"required,omitempty"`
	// Values lists the allowed values of a category field, matched
	// case-insensitively; the Row carries the spelling given here. For a
	// timeline field they are its buckets, nearest first.
	Values []string `json:"values,omitempty"`
	// MaxMonths bounds each bucket of a timeline field but the last, which
	// takes everything further out: a timeline of m months falls in the first
	// bucket i with m <= MaxMonths[i].
	MaxMonths []float64 `json:"max_months,omitempty"`
	// Default is the JSON value used when the field is absent or null and,
	// when parsing is lax, in place of a category or timeline value the
	// model does not know. A field with neither Default nor Required is
	// passed to the model as missing.
	Default any `json:"default,omitempty"`
	// Min and Max bound a number field, inclusive, when set.
	Min *float64 `json:"min,omitempty"`
	Max *float64 `json:"max,omitempty"`
	// Integer makes a number field take whole numbers only (10 or 10.0,
	// not 10.5).
	Integer bool `json:"integer,omitempty"`
}

// Schema is the input contract of a model, published by the worker that loads it.
type Schema struct {
	Fields []Field `json:"fields"`
	// Strict makes every request to the model parse strictly, whatever its
	// options say (see Mode).
	Strict bool `json:"strict,omitempty"`

	index map[string]int
}

// Kind says which member of a Value is set.
type Kind uint8

// Value kinds. KindMissing means the model sees a missing value (NaN).
const (
	KindMissing Kind = iota
	KindNumber
	KindBool
	KindString
)

// Value is one validated input. Numbers and booleans (0 or 1) live in Num;
// categories and timelines (the canonical spelling of their value) and text
// live in Str.
type Value struct {
	Kind Kind
	Num  float64
	Str  string
}

// Row holds one validated input per Schema field, in Schema order.
type Row []Value

// Field error codes, stable for clients.
const (
	CodeUnknownField = "unknown_field"
	CodeInvalidType  = "invalid_type"
	CodeInvalidValue = "invalid_value"
	CodeMissingField = "missing_field"
	CodeOutOfRange   = "out_of_range"
	// CodeTooManyFields and CodeFieldNameTooLong refuse a row that is no
	// row of any model (see MaxRowFields), whatever the mode.
	CodeTooManyFields    = "too_many_fields"
	CodeFieldNameTooLong = "field_name_too_long"
)

// Bounds on one row, in both modes: more fields than MaxRowFields, or a
// field name longer than MaxFieldNameBytes, and the row is refused as a
// whole, without a report on each field.
const (
	MaxRowFields      = 1024
	MaxFieldNameBytes = 256
)

// Warning codes, stable for clients: what lax parsing assumed in order to
// score a row. CodeUnknownField is also a warning code: a field the model
// does not take is ignored.
const (
	// CodeUnknownValue: a category or timeline value the model does not
	// know was scored as the field's default, or as missing.
	CodeUnknownValue = "unknown_value"
	// CodeTimelinePast: a timeline that ended before the reference time was
	// scored as the nearest bucket.
	CodeTimelinePast = "timeline_past"
	// CodeTimelineFar: a timeline more than ten years out (a typo, most
	// likely) was scored as the furthest bucket.
	CodeTimelineFar = "timeline_far"
)

// FieldError says why one input field was refused.
type FieldError struct {
	// Row is the 0-based position of the row in a list input or a batch file;
	// nil for a single-object input.
	Row    *int   `json:"row,omitempty"`
	Field  string `json:"field"`
	Code   string `json:"code"`
	Detail string `json:"detail"`
}

func (e FieldError) Error() string { return e.Field + ": " + e.Detail }

// Warning says what lax parsing assumed about one input of a row it scored.
type Warning struct {
	// Row is the 0-based position of the row in a list input; nil for a
	// single-object input and in batch results, whose rows carry their own.
	Row    *int   `json:"row,omitempty"`
	Field  string `json:"field"`
	Code   string `json:"code"`
	Detail string `json:"detail"`
}

// Mode is how a request's inputs are read.
type Mode struct {
	// Strict refuses what lax parsing scores with a warning: numbers sent
	// as strings, fields the model does not take, values it does not know,
	// and timelines that are guesses. Lax parsing is pydantic's default,
	// which the old API's partners wrote their requests against.
	Strict bool
	// AsOf is the reference time of timeline inputs: when the request
	// arrived, unless its options say otherwise.
	AsOf time.Time
}

// Reporting bounds: a row names at most maxUnknownNamed fields the model
// does not take, then counts the rest, and quotes at most maxQuoted bytes of
// any value or name, so an error or warning stays small whatever is sent.
const (
	maxUnknownNamed = 5
	maxQuoted       = 64
)

// Init checks the schema and prepares its name index. It must be called once
// before Parse when a Schema is built by hand; UnmarshalJSON calls it.
func (s *Schema) Init() error {
	s.index = make(map[string]int, len(s.Fields))
	for i := range s.Fields {
		f := &s.Fields[i]
		if f.Name == "" {
			return fmt.Errorf("field %d has no name", i)
		}
		if _, dup := s.index[f.Name]; dup {
			return fmt.Errorf("field %q is declared twice", f.Name)
		}
		if err := f.check(); err != nil {
			return err
		}
		if f.Default != nil {
			if _, fe := f.parse(f.Default, Mode{Strict: true}, nil); fe != nil {
				return fmt.Errorf("default of field %q: %s", f.Name, fe.Detail)
			}
		}
		s.index[f.Name] = i
	}
	return nil
}

func (f *Field) check() error {
	switch f.Type {
	case FieldNumber, FieldBoolean, FieldText:
	case FieldCategory:
		if len(f.Values) == 0 {
			return fmt.Errorf("category field %q lists no values", f.Name)
		}
	case FieldTimeline:
		if len(f.Values) == 0 || len(f.MaxMonths) != len(f.Values)-1 {
			return fmt.Errorf("timeline field %q needs buckets, each but the last with a max_months bound", f.Name)
		}
		for i, m := range f.MaxMonths {
			if math.IsNaN(m) || m < 0 || (i > 0 && m <= f.MaxMonths[i-1]) {
				return fmt.Errorf("timeline field %q: max_months must be 0 or more and increase from bucket to bucket", f.Name)
			}
		}
	default:
		return fmt.Errorf("field %q has unknown type %q", f.Name, f.Type)
	}
	if f.Integer && f.Type != FieldNumber {
		return fmt.Errorf("field %q: only a number field can be an integer", f.Name)
	}
	return nil
}

// UnmarshalJSON decodes a schema and checks it with Init.
func (s *Schema) UnmarshalJSON(b []byte) error {
	var raw struct {
		Fields []Field `json:"fields"`
		Strict bool    `json:"strict"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	s.Fields, s.Strict = raw.Fields, raw.Strict
	return s.Init()
}

// Index returns the position of the named field, or -1.
func (s *Schema) Index(name string) int {
	if i, ok := s.index[name]; ok {
		return i
	}
	return -1
}

// Parse turns one decoded JSON object (numbers as json.Number or float64)
// into a Row. It reports every bad field, sorted by field name, rather than
// stopping at the first; when parsing is lax, the returned warnings say what
// it assumed instead. A model's own Strict switch overrides m.
func (s *Schema) Parse(in map[string]any, m Mode) (Row, []FieldError, []Warning) {
	m.Strict = m.Strict || s.Strict
	if fe := s.tooWide(in); fe != nil {
		return nil, []FieldError{*fe}, nil
	}
	row := make(Row, len(s.Fields))
	var errs []FieldError
	var warns []Warning
	for _, u := range s.unknownFields(in, m.Strict) {
		if m.Strict {
			errs = append(errs, FieldError(u))
		} else {
			warns = append(warns, u)
		}
	}
	for i := range s.Fields {
		f := &s.Fields[i]
		v, fe := f.resolve(in[f.Name], m, &warns)
		if fe != nil {
			errs = append(errs, *fe)
			continue
		}
		row[i] = v
	}
	if errs != nil {
		sort.SliceStable(errs, func(a, b int) bool { return errs[a].Field < errs[b].Field })
		return nil, errs, nil
	}
	return row, nil, warns
}

// tooWide refuses a row with more fields than MaxRowFields or a field name
// longer than MaxFieldNameBytes (only names the schema lacks can be).
func (s *Schema) tooWide(in map[string]any) *FieldError {
	if len(in) > MaxRowFields {
		return &FieldError{Code: CodeTooManyFields, Detail: fmt.Sprintf("the row has %d fields; a row may have at most %d", len(in), MaxRowFields)}
	}
	if len(in) <= len(s.index) && s.allKnown(in) {
		return nil
	}
	for name := range in {
		if len(name) > MaxFieldNameBytes {
			return &FieldError{Field: clip(name), Code: CodeFieldNameTooLong,
				Detail: fmt.Sprintf("a field name of %d bytes; names may have at most %d", len(name), MaxFieldNameBytes)}
		}
	}
	return nil
}

// unknownFields reports the keys of in that name no field: the first
// maxUnknownNamed by name, then how many more there are. They are ignored
// when parsing is lax, refused when strict.
func (s *Schema) unknownFields(in map[string]any, strict bool) []Warning {
	if len(in) <= len(s.index) && s.allKnown(in) {
		return nil
	}
	var names []string
	for name := range in {
		if _, ok := s.index[name]; !ok {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	detail, more := "this model does not take this field; ignored", "and %d more fields this model does not take; ignored"
	if strict {
		detail, more = "this model does not take this field; its inputs are "+s.names(), "and %d more fields this model does not take"
	}
	n := min(len(names), maxUnknownNamed)
	out := make([]Warning, 0, n+1)
	for _, name := range names[:n] {
		out = append(out, Warning{Field: clip(name), Code: CodeUnknownField, Detail: detail})
	}
	if rest := len(names) - n; rest > 0 {
		out = append(out, Warning{Code: CodeUnknownField, Detail: fmt.Sprintf(more, rest)})
	}
	return out
}

func (s *Schema) allKnown(in map[string]any) bool {
	for name := range in {
		if _, ok := s.index[name]; !ok {
			return false
		}
	}
	return true
}

// ParseText converts the text of field i (a CSV cell, say) into a Value,
// applying the same rules as Parse: an empty cell is an absent field, and a
// number cell is a number in either mode, as CSV has no other way to say so.
// Warnings are appended to warns.
func (s *Schema) ParseText(i int, text string, m Mode, warns *[]Warning) (Value, *FieldError) {
	m.Strict = m.Strict || s.Strict
	f := &s.Fields[i]
	text = strings.TrimSpace(text)
	if text == "" {
		return f.resolve(nil, m, warns)
	}
	if f.Type == FieldNumber {
		n, ok, finite := decimal(text)
		if !ok {
			return Value{}, f.errorf(CodeInvalidType, "expected a number, got %s", quote(text))
		}
		if !finite {
			return Value{}, f.errorf(CodeInvalidValue, "must be a finite number")
		}
		return f.resolve(n, m, warns)
	}
	return f.resolve(text, m, warns)
}

func (s *Schema) names() string {
	names := make([]string, len(s.Fields))
	for i, f := range s.Fields {
		names[i] = f.Name
	}
	return strings.Join(names, ", ")
}
