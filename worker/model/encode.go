package model

import (
	"fmt"
	"math"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/hokusai-ai/inference-queue/jobs"
)

// encoder turns one validated input into the number the model was trained
// on, and names that input in factors.
type encoder struct {
	name, label string
	plus, minus string // label with its direction, precomputed for factors
	typ         jobs.FieldType
	codes       map[string]float32 // category, timeline: canonical value -> code
	rules       []compiledRule     // text: one per keyword, in rule order
	defaultCode float32            // text that matches no rule (NaN: missing)
}

// compiledRule is one keyword of a text rule, split into lower-case words.
type compiledRule struct {
	words []string
	code  float32
}

func (e *encoder) encode(v jobs.Value) (float32, error) {
	if v.Kind == jobs.KindMissing {
		return float32(math.NaN()), nil
	}
	switch e.typ {
	case jobs.FieldNumber, jobs.FieldBoolean:
		if v.Kind == jobs.KindNumber || v.Kind == jobs.KindBool {
			return float32(v.Num), nil
		}
	case jobs.FieldCategory, jobs.FieldTimeline:
		if v.Kind == jobs.KindString {
			code, ok := e.codes[v.Str]
			if !ok {
				return 0, fmt.Errorf("input %q: %q is not one of the model's values", e.name, v.Str)
			}
			return code, nil
		}
	case jobs.FieldText:
		if v.Kind == jobs.KindString {
			return e.textCode(v.Str), nil
		}
	}
	return 0, fmt.Errorf("input %q: a value of kind %d does not fit a %s feature", e.name, v.Kind, e.typ)
}

// textCode applies the keyword rules: the first keyword whose words appear
// consecutively among the text's words gives the code. Matching whole words
// keeps "cto" from matching inside "director". It does not allocate.
func (e *encoder) textCode(text string) float32 {
	for _, r := range e.rules {
		for i := 0; ; {
			start, end := nextWord(text, i)
			if start == end {
				break
			}
			if wordsAt(text, start, r.words) {
				return r.code
			}
			i = end
		}
	}
	return e.defaultCode
}

// wordsAt reports whether the words of text from byte i on begin with
// words (lower-case), ignoring case.
func wordsAt(text string, i int, words []string) bool {
	for _, w := range words {
		start, end := nextWord(text, i)
		if start == end || !strings.EqualFold(text[start:end], w) {
			return false
		}
		i = end
	}
	return true
}

// nextWord returns the bounds of the first word (run of letters and
// digits) of s at or after byte i; start == end when there is none.
func nextWord(s string, i int) (start, end int) {
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if isWordRune(r) {
			break
		}
		i += n
	}
	end = i
	for end < len(s) {
		r, n := utf8.DecodeRuneInString(s[end:])
		if !isWordRune(r) {
			break
		}
		end += n
	}
	return i, end
}

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// splitWords lower-cases s and splits it into words, as nextWord finds them.
func splitWords(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !isWordRune(r) })
}
