package jobs

import "time"

// A token is a number, a known word, or one punctuation byte.
type token struct {
	val  float64 // a number's value
	kind byte    // tokNumber, tokWord, or the punctuation byte itself
	word word
	// digits counts a number's digits before any decimal point; frac says
	// there is one.
	digits uint8
	frac   bool
	spaced bool // whitespace came before the token
}

const (
	tokNumber = 'n'
	tokWord   = 'w'
)

type word uint8

// The words the token forms use; whole phrases ("next quarter") never get
// here. The months run January to December in order.
const (
	wordQ word = iota + 1
	wordH
	wordJanuary
	wordFebruary
	wordMarch
	wordApril
	wordMay
	wordJune
	wordJuly
	wordAugust
	wordSeptember
	wordOctober
	wordNovember
	wordDecember
	wordMonth
	wordWeek
	wordDay
	wordYear
	wordWithin
	wordUnder
	wordLess
	wordMore
	wordThan
	wordOver
	wordTo
)

func lookupWord(s []byte) word {
	switch string(s) {
	case "q":
		return wordQ
	case "h":
		return wordH
	case "jan", "january":
		return wordJanuary
	case "feb", "february":
		return wordFebruary
	case "mar", "march":
		return wordMarch
	case "apr", "april":
		return wordApril
	case "may":
		return wordMay
	case "jun", "june":
		return wordJune
	case "jul", "july":
		return wordJuly
	case "aug", "august":
		return wordAugust
	case "sep", "sept", "september":
		return wordSeptember
	case "oct", "october":
		return wordOctober
	case "nov", "november":
		return wordNovember
	case "dec", "december":
		return wordDecember
	case "month", "months", "mo", "mos", "mth", "mths":
		return wordMonth
	case "week", "weeks", "wk", "wks":
		return wordWeek
	case "day", "days":
		return wordDay
	case "year", "years", "yr", "yrs":
		return wordYear
	case "within":
		return wordWithin
	case "under":
		return wordUnder
	case "less":
		return wordLess
	case "more":
		return wordMore
	case "than":
		return wordThan
	case "over":
		return wordOver
	case "to":
		return wordTo
	}
	return 0
}

// tokenize splits normalized text into tokens. It refuses unknown words,
// bytes no form uses, numbers longer than nine digits either side of the
// point, and more than maxTokens tokens.
func tokenize(s []byte, tk *[maxTokens]token) (int, bool) {
	n := 0
	spaced := false
	for i := 0; i < len(s); {
		c := s[i]
		if c == ' ' {
			spaced = true
			i++
			continue
		}
		if n == maxTokens {
			return 0, false
		}
		t := token{spaced: spaced}
		spaced = false
		switch {
		case isDigit(c):
			j := i
			for j < len(s) && isDigit(s[j]) {
				j++
			}
			if j-i > 9 {
				return 0, false
			}
			t.kind, t.digits = tokNumber, uint8(j-i)
			t.val = float64(atoi(s[i:j]))
			if j+1 < len(s) && s[j] == '.' && isDigit(s[j+1]) {
				k := j + 1
				for k < len(s) && isDigit(s[k]) {
					k++
				}
				if k-j-1 > 9 {
					return 0, false
				}
				scale := 1.0
				for range k - j - 1 {
					scale *= 10
				}
				t.val += float64(atoi(s[j+1:k])) / scale
				t.frac = true
				j = k
			}
			i = j
		case 'a' <= c && c <= 'z':
			j := i
			for j < len(s) && 'a' <= s[j] && s[j] <= 'z' {
				j++
			}
			t.kind, t.word = tokWord, lookupWord(s[i:j])
			if t.word == 0 {
				return 0, false
			}
			i = j
		case c == '-' || c == '/' || c == ',' || c == '\'' || c == '+' || c == '<' || c == '>':
			t.kind = c
			i++
		default:
			return 0, false
		}
		tk[n] = t
		n++
	}
	return n, true
}

func (t token) is(w word) bool { return t.kind == tokWord && t.word == w }

// integer reports whether t is a whole number of exactly digits digits.
func (t token) integer(digits uint8) bool {
	return t.kind == tokNumber && !t.frac && t.digits == digits
}

// separator reports whether t may stand between a period and its year.
func (t token) separator() bool { return t.kind == '-' || t.kind == '/' || t.kind == ',' }

// tokens reads the forms made of tokens: periods and durations. tk is never
// empty.
func (r reference) tokens(tk []token) (Timeline, bool) {
	first := tk[0]
	switch {
	case first.is(wordQ) || first.is(wordH):
		if len(tk) < 2 || !tk[1].integer(1) || tk[1].spaced {
			return Timeline{}, false
		}
		year, ok := readYear(tk[2:], true)
		if !ok {
			return Timeline{}, false
		}
		return r.quarterOrHalf(first.word, int(tk[1].val), year)
	case first.kind == tokWord && wordJanuary <= first.word && first.word <= wordDecember:
		year, ok := readYear(tk[1:], false)
		if !ok {
			return Timeline{}, false
		}
		return r.calendarMonth(year, time.Month(first.word-wordJanuary+1)), true
	case !first.integer(4):
		return duration(tk)
	case len(tk) == 1:
		if year := int(first.val); validYear(year) {
			return r.wholeYear(year), true
		}
		return Timeline{}, false
	case len(tk) == 3 && tk[1].kind == '-' && tk[2].integer(2) && !tk[1].spaced && !tk[2].spaced:
		// ISO year-month, "2025-06".
		year, month := int(first.val), int(tk[2].val)
		if !validYear(year) || month < 1 || month > 12 {
			return Timeline{}, false
		}
		return r.calendarMonth(year, time.Month(month)), true
	}
	// The year first: "2025-Q2", "2025 Q2", "2025Q2".
	i := 1
	if tk[i].separator() {
		i++
	}
	if len(tk) == i+2 && (tk[i].is(wordQ) || tk[i].is(wordH)) && tk[i+1].integer(1) && !tk[i+1].spaced {
		year := int(first.val)
		if !validYear(year) {
			return Timeline{}, false
		}
		return r.quarterOrHalf(tk[i].word, int(tk[i+1].val), year)
	}
	// "1000-2000 days", say.
	return duration(tk)
}

// readYear reads tk as a year and nothing after it, with an optional
// separator before: four digits, two after an apostrophe, or, when bareTwo,
// two alone.
func readYear(tk []token, bareTwo bool) (int, bool) {
	if len(tk) > 0 && tk[0].separator() {
		tk = tk[1:]
	}
	switch {
	case len(tk) == 1 && tk[0].integer(4) && validYear(int(tk[0].val)):
		return int(tk[0].val), true
	case len(tk) == 1 && bareTwo && tk[0].integer(2):
		return 2000 + int(tk[0].val), true
	case len(tk) == 2 && tk[0].kind == '\'' && tk[1].integer(2) && !tk[1].spaced:
		return 2000 + int(tk[1].val), true
	}
	return 0, false
}

func (r reference) quarterOrHalf(w word, n, year int) (Timeline, bool) {
	switch {
	case w == wordQ && 1 <= n && n <= 4:
		return r.quarter(year, n), true
	case w == wordH && 1 <= n && n <= 2:
		return r.half(year, n), true
	}
	return Timeline{}, false
}

// duration reads [prefix] N [(- | to) M | +] unit.
func duration(tk []token) (Timeline, bool) {
	const (
		exact = iota
		within
		beyond
		between
	)
	mode, i := exact, 0
	switch {
	case len(tk) > 1 && tk[0].is(wordLess) && tk[1].is(wordThan):
		mode, i = within, 2
	case len(tk) > 1 && tk[0].is(wordMore) && tk[1].is(wordThan):
		mode, i = beyond, 2
	case tk[0].is(wordWithin) || tk[0].is(wordUnder) || tk[0].kind == '<':
		mode, i = within, 1
	case tk[0].is(wordOver) || tk[0].kind == '>':
		mode, i = beyond, 1
	}
	if i >= len(tk) || tk[i].kind != tokNumber {
		return Timeline{}, false
	}
	lo, hi := tk[i].val, tk[i].val
	i++
	if mode == exact && i < len(tk) {
		switch {
		case tk[i].kind == '-' || tk[i].is(wordTo):
			if i+1 >= len(tk) || tk[i+1].kind != tokNumber {
				return Timeline{}, false
			}
			mode, hi = between, tk[i+1].val
			i += 2
		case tk[i].kind == '+':
			mode = beyond
			i++
		}
	}
	if i != len(tk)-1 || tk[i].kind != tokWord {
		return Timeline{}, false
	}
	var perUnit float64
	switch tk[i].word {
	case wordMonth:
		perUnit = 1
	case wordWeek:
		perUnit = 7 / daysPerMonth
	case wordDay:
		perUnit = 1 / daysPerMonth
	case wordYear:
		perUnit = 12
	default:
		return Timeline{}, false
	}
	lo, hi = lo*perUnit, hi*perUnit
	if lo > hi || hi > maxDurationMonths {
		return Timeline{}, false
	}
	var m float64
	switch mode {
	case exact:
		m = lo
	case within:
		m = lo / 2
	case beyond:
		m = lo + moreThan
	case between:
		m = (lo + hi) / 2
	}
	return ahead(m), true
}
