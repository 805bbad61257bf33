package jobs

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// FieldType is the type of one model input.
type FieldType string

// The input types a model schema can declare.
const (
	FieldNumber   FieldType = "number"
	FieldBoolean  FieldType = "boolean"
	FieldCategory FieldType = "category"
	FieldText     FieldType = "text"
)

// Field describes one named model input. The order of fields in a Schema is
// the order of values in a Row.
type Field struct {
	Name        string    `json:"name"`
	Type        FieldType `json:"type"`
	Description string    `json:"description,omitempty"`
	Required    bool      `json:"required,omitempty"`
	// Values lists the allowed values of a category field, matched
	// case-insensitively; the Row carries the spelling given here.
	Values []string `json:"values,omitempty"`
	// Default is the JSON value used when the field is absent or null. A
	// field with neither Default nor Required is passed to the model as missing.
	Default any `json:"default,omitempty"`
	// Min and Max bound a number field, inclusive, when set.
	Min *float64 `json:"min,omitempty"`
	Max *float64 `json:"max,omitempty"`
}

// Schema is the input contract of a model, published by the worker that loads it.
type Schema struct {
	Fields []Field `json:"fields"`

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
// categories (canonical spelling) and text live in Str.
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

// Init checks the schema and prepares its name index. It must be called once
// before Validate when a Schema is built by hand; UnmarshalJSON calls it.
func (s *Schema) Init() error {
	s.index = make(map[string]int, len(s.Fields))
	for i, f := range s.Fields {
		if f.Name == "" {
			return fmt.Errorf("field %d has no name", i)
		}
		if _, dup := s.index[f.Name]; dup {
			return fmt.Errorf("field %q is declared twice", f.Name)
		}
		switch f.Type {
		case FieldNumber, FieldBoolean, FieldText:
		case FieldCategory:
			if len(f.Values) == 0 {
				return fmt.Errorf("category field %q lists no values", f.Name)
			}
		default:
			return fmt.Errorf("field %q has unknown type %q", f.Name, f.Type)
		}
		if f.Default != nil {
			if _, fe := f.parse(f.Default); fe != nil {
				return fmt.Errorf("default of field %q: %s", f.Name, fe.Detail)
			}
		}
		s.index[f.Name] = i
	}
	return nil
}

// UnmarshalJSON decodes a schema and checks it with Init.
func (s *Schema) UnmarshalJSON(b []byte) error {
	var raw struct {
		Fields []Field `json:"fields"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	s.Fields = raw.Fields
	return s.Init()
}

// Index returns the position of the named field, or -1.
func (s *Schema) Index(name string) int {
	if i, ok := s.index[name]; ok {
		return i
	}
	return -1
}

// Validate turns one decoded JSON object into a Row. It reports every bad
// field, sorted by field name, rather than stopping at the first.
func (s *Schema) Validate(in map[string]any) (Row, []FieldError) {
	row := make(Row, len(s.Fields))
	var errs []FieldError
	for name := range in {
		if _, ok := s.index[name]; !ok {
			errs = append(errs, FieldError{Field: name, Code: CodeUnknownField,
				Detail: fmt.Sprintf("unknown field %q; this model accepts %s", name, s.names())})
		}
	}
	for i := range s.Fields {
		f := &s.Fields[i]
		v, fe := f.resolve(in[f.Name])
		if fe != nil {
			errs = append(errs, *fe)
			continue
		}
		row[i] = v
	}
	if errs != nil {
		sort.Slice(errs, func(a, b int) bool { return errs[a].Field < errs[b].Field })
		return nil, errs
	}
	return row, nil
}

// ParseText converts the text of field i (a CSV cell, say) into a Value,
// applying the same rules as Validate: an empty cell is an absent field.
func (s *Schema) ParseText(i int, text string) (Value, *FieldError) {
	f := &s.Fields[i]
	text = strings.TrimSpace(text)
	if text == "" {
		return f.resolve(nil)
	}
	switch f.Type {
	case FieldNumber:
		n, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return Value{}, f.errorf(CodeInvalidType, "expected a number, got %q", text)
		}
		return f.resolve(n)
	}
	return f.resolve(text)
}

func (s *Schema) names() string {
	names := make([]string, len(s.Fields))
	for i, f := range s.Fields {
		names[i] = f.Name
	}
	return strings.Join(names, ", ")
}

// resolve applies the default and required rules, then parses.
func (f *Field) resolve(v any) (Value, *FieldError) {
	if v == nil {
		switch {
		case f.Required:
			return Value{}, f.errorf(CodeMissingField, "is required")
		case f.Default != nil:
			v = f.Default
		default:
			return Value{Kind: KindMissing, Num: math.NaN()}, nil
		}
	}
	return f.parse(v)
}

func (f *Field) parse(v any) (Value, *FieldError) {
	switch f.Type {
	case FieldNumber:
		n, ok := number(v)
		if !ok {
			return Value{}, f.errorf(CodeInvalidType, "expected a number, got %s", describe(v))
		}
		if math.IsNaN(n) || math.IsInf(n, 0) {
			return Value{}, f.errorf(CodeInvalidValue, "must be a finite number")
		}
		if (f.Min != nil && n < *f.Min) || (f.Max != nil && n > *f.Max) {
			return Value{}, f.errorf(CodeOutOfRange, "%g is outside %s", n, f.bounds())
		}
		return Value{Kind: KindNumber, Num: n}, nil
	case FieldBoolean:
		b, ok := boolean(v)
		if !ok {
			return Value{}, f.errorf(CodeInvalidType, "expected true or false, got %s", describe(v))
		}
		if b {
			return Value{Kind: KindBool, Num: 1}, nil
		}
		return Value{Kind: KindBool, Num: 0}, nil
	case FieldCategory:
		str, ok := v.(string)
		if !ok {
			return Value{}, f.errorf(CodeInvalidType, "expected one of %s, got %s", strings.Join(f.Values, ", "), describe(v))
		}
		for _, allowed := range f.Values {
			if strings.EqualFold(strings.TrimSpace(str), allowed) {
				return Value{Kind: KindString, Str: allowed}, nil
			}
		}
		return Value{}, f.errorf(CodeInvalidValue, "%q is not one of %s", str, strings.Join(f.Values, ", "))
	default: // FieldText
		str, ok := v.(string)
		if !ok {
			return Value{}, f.errorf(CodeInvalidType, "expected a string, got %s", describe(v))
		}
		return Value{Kind: KindString, Str: str}, nil
	}
}

func (f *Field) errorf(code, format string, args ...any) *FieldError {
	return &FieldError{Field: f.Name, Code: code, Detail: fmt.Sprintf(format, args...)}
}

func (f *Field) bounds() string {
	lo, hi := "-inf", "+inf"
	if f.Min != nil {
		lo = strconv.FormatFloat(*f.Min, 'g', -1, 64)
	}
	if f.Max != nil {
		hi = strconv.FormatFloat(*f.Max, 'g', -1, 64)
	}
	return "[" + lo + ", " + hi + "]"
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	case int:
		return float64(n), true
	}
	return 0, false
}

// boolean accepts JSON booleans, 0 and 1, and the words spreadsheets and CRMs
// export (true/false, yes/no, y/n, 1/0), case-insensitively.
func boolean(v any) (bool, bool) {
	switch b := v.(type) {
	case bool:
		return b, true
	case string:
		switch strings.ToLower(strings.TrimSpace(b)) {
		case "true", "yes", "y", "1":
			return true, true
		case "false", "no", "n", "0":
			return false, true
		}
	default:
		if n, ok := number(v); ok && (n == 0 || n == 1) {
			return n == 1, true
		}
	}
	return false, false
}

func describe(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case bool:
		return strconv.FormatBool(x)
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	}
	if n, ok := number(v); ok {
		return strconv.FormatFloat(n, 'g', -1, 64)
	}
	return fmt.Sprintf("%T", v)
}
