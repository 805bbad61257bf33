package jobs

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// resolve applies the default and required rules, then parses. When parsing
// is lax, a blank string is an absent value, as an empty CSV cell is.
func (f *Field) resolve(v any, m Mode, warns *[]Warning) (Value, *FieldError) {
	if str, ok := v.(string); ok && !m.Strict && strings.TrimSpace(str) == "" {
		v = nil
	}
	if v == nil {
		return f.absent()
	}
	return f.parse(v, m, warns)
}

// absent is the value of a field that was not sent.
func (f *Field) absent() (Value, *FieldError) {
	switch {
	case f.Required:
		return Value{}, f.errorf(CodeMissingField, "is required")
	case f.Default != nil:
		return f.parse(f.Default, Mode{Strict: true}, nil)
	}
	return Value{Kind: KindMissing, Num: math.NaN()}, nil
}

func (f *Field) parse(v any, m Mode, warns *[]Warning) (Value, *FieldError) {
	switch f.Type {
	case FieldNumber:
		return f.number(v, m)
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
		if i := f.valueIndex(str); i >= 0 {
			return Value{Kind: KindString, Str: f.Values[i]}, nil
		}
		return f.unknown(str, m, warns, fmt.Sprintf("is not one of %s", strings.Join(f.Values, ", ")))
	case FieldTimeline:
		str, ok := v.(string)
		if !ok {
			return Value{}, f.errorf(CodeInvalidType, "expected a timeline such as %q or \"Q2 2025\", got %s", f.Values[0], describe(v))
		}
		return f.timeline(str, m, warns)
	default: // FieldText
		str, ok := v.(string)
		if !ok {
			return Value{}, f.errorf(CodeInvalidType, "expected a string, got %s", describe(v))
		}
		return Value{Kind: KindString, Str: str}, nil
	}
}

// number reads a number field's value: a JSON number or, when parsing is
// lax, a string holding a decimal number (" 75.5 ", "1e3").
func (f *Field) number(v any, m Mode) (Value, *FieldError) {
	n, ok, finite := number(v)
	if str, isStr := v.(string); isStr && !m.Strict {
		n, ok, finite = decimal(strings.TrimSpace(str))
	}
	if !ok {
		return Value{}, f.errorf(CodeInvalidType, "expected a number, got %s", describe(v))
	}
	if !finite || math.IsNaN(n) || math.IsInf(n, 0) {
		return Value{}, f.errorf(CodeInvalidValue, "must be a finite number")
	}
	if f.Integer && n != math.Trunc(n) {
		return Value{}, f.errorf(CodeInvalidType, "expected a whole number, got %s", strconv.FormatFloat(n, 'g', -1, 64))
	}
	if (f.Min != nil && n < *f.Min) || (f.Max != nil && n > *f.Max) {
		return Value{}, f.errorf(CodeOutOfRange, "%g is outside %s", n, f.bounds())
	}
	return Value{Kind: KindNumber, Num: n}, nil
}

// valueIndex finds str among Values ignoring case and the spaces around and
// between its words, or returns -1.
func (f *Field) valueIndex(str string) int {
	for i, allowed := range f.Values {
		if strings.EqualFold(str, allowed) {
			return i
		}
	}
	if len(str) > 4*maxQuoted {
		return -1
	}
	norm := strings.Join(strings.Fields(str), " ")
	for i, allowed := range f.Values {
		if strings.EqualFold(norm, allowed) {
			return i
		}
	}
	return -1
}

// timeline reads a timeline field: one of its bucket names, or any form
// ParseTimeline knows, put in its bucket.
func (f *Field) timeline(str string, m Mode, warns *[]Warning) (Value, *FieldError) {
	if i := f.valueIndex(str); i >= 0 {
		return Value{Kind: KindString, Str: f.Values[i]}, nil
	}
	t, ok := ParseTimeline(str, m.AsOf)
	switch {
	case !ok:
		return f.unknown(str, m, warns, fmt.Sprintf("is not a timeline this API reads (such as %q, \"Q2 2025\" or \"2025-06-30\")", f.Values[0]))
	case t.Missing:
		return f.absent()
	}
	bucket := f.Values[f.bucket(t.Months)]
	var code, why string
	switch {
	case t.Past:
		code, why = CodeTimelinePast, "is already past on "+m.AsOf.UTC().Format(time.DateOnly)
	case t.Far:
		code, why = CodeTimelineFar, "is more than ten years away"
	default:
		return Value{Kind: KindString, Str: bucket}, nil
	}
	if m.Strict {
		return Value{}, f.errorf(CodeInvalidValue, "%s %s", quote(str), why)
	}
	f.warn(warns, code, "%s %s; scored as %q", quote(str), why, bucket)
	return Value{Kind: KindString, Str: bucket}, nil
}

// bucket is the index of the timeline bucket that holds months.
func (f *Field) bucket(months float64) int {
	for i, bound := range f.MaxMonths {
		if months <= bound {
			return i
		}
	}
	return len(f.Values) - 1
}

// unknown handles a category or timeline value the model does not know:
// refused when parsing is strict, else scored as the field's default (or
// missing) with a warning.
func (f *Field) unknown(str string, m Mode, warns *[]Warning, why string) (Value, *FieldError) {
	if m.Strict {
		return Value{}, f.errorf(CodeInvalidValue, "%s %s", quote(str), why)
	}
	v, fe := f.absent()
	if fe != nil {
		return Value{}, f.errorf(CodeInvalidValue, "%s %s, and the field is required", quote(str), why)
	}
	as := "missing"
	if v.Kind == KindString {
		as = strconv.Quote(v.Str)
	}
	f.warn(warns, CodeUnknownValue, "%s is not a value this model knows; scored as %s", quote(str), as)
	return v, nil
}

func (f *Field) warn(warns *[]Warning, code, format string, args ...any) {
	if warns != nil {
		*warns = append(*warns, Warning{Field: f.Name, Code: code, Detail: fmt.Sprintf(format, args...)})
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

// number reads a JSON number. ok is false for anything else; finite is
// false for a number too large for a float64 (1e400).
func number(v any) (n float64, ok, finite bool) {
	switch x := v.(type) {
	case float64:
		return x, true, true
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		return f, true, err == nil
	case int:
		return float64(x), true, true
	}
	return 0, false, false
}

// decimal reads s as a decimal number: an optional sign, digits with an
// optional fraction, and an optional exponent; nothing else (no hex, no
// "inf", no "NaN", no separators). finite is false for a number too large
// for a float64.
func decimal(s string) (n float64, ok, finite bool) {
	if s == "" || len(s) > maxQuoted {
		return 0, false, false
	}
	i := 0
	if s[i] == '+' || s[i] == '-' {
		i++
	}
	digits := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		digits++
	}
	if i < len(s) && s[i] == '.' {
		for i++; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			digits++
		}
	}
	if digits == 0 {
		return 0, false, false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		exp := i
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		}
		if i == exp {
			return 0, false, false
		}
	}
	if i != len(s) {
		return 0, false, false
	}
	n, err := strconv.ParseFloat(s, 64)
	return n, true, err == nil
}

// boolean accepts JSON booleans, 0 and 1, and the words spreadsheets, CRMs
// and pydantic take (true/false, yes/no, y/n, on/off, t/f, 1/0),
// case-insensitively.
func boolean(v any) (bool, bool) {
	switch b := v.(type) {
	case bool:
		return b, true
	case string:
		switch strings.ToLower(strings.TrimSpace(b)) {
		case "true", "yes", "y", "1", "on", "t":
			return true, true
		case "false", "no", "n", "0", "off", "f":
			return false, true
		}
	default:
		if n, ok, _ := number(v); ok && (n == 0 || n == 1) {
			return n == 1, true
		}
	}
	return false, false
}

func describe(v any) string {
	switch x := v.(type) {
	case string:
		return quote(x)
	case bool:
		return strconv.FormatBool(x)
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case json.Number:
		return clip(string(x))
	}
	if n, ok, _ := number(v); ok {
		return strconv.FormatFloat(n, 'g', -1, 64)
	}
	return fmt.Sprintf("%T", v)
}

// quote quotes s for a message, cut to maxQuoted bytes.
func quote(s string) string { return strconv.Quote(clip(s)) }

// clip cuts s to at most maxQuoted bytes on a rune boundary, marking the cut.
func clip(s string) string {
	if len(s) <= maxQuoted {
		return s
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
