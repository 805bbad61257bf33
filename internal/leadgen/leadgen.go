package leadgen

import (
	"bufio"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
)

// Header is the first line of a generated CSV: an id, then the model's
// inputs in its config's order.
const Header = "id,company_size,engagement_score,website_visits,email_opens,content_downloads," +
	"demo_requested,budget_confirmed,industry,decision_timeline,title"

var (
	industries = []string{"Technology", "Technology", "Finance", "Healthcare", "Manufacturing", "Retail", "Education", "Other"}
	timelines  = []string{"Immediate", "1-3 months", "1-3 months", "3-6 months", "3-6 months", "6-12 months", "12+ months"}
	titles     = []string{"VP of Sales", "Chief Revenue Officer", "Director of Marketing", "Head of Operations",
		"Sales Manager", "Senior Engineer", "Marketing Lead", "Account Executive", "Analyst", "Founder & CEO",
		"IT Manager", "Procurement Specialist", "Principal Consultant", "Office Administrator"}
)

// WriteCSV writes a header and n leads to w. The same seed gives the same
// file. Rows whose index is in bad get an invalid value, for tests of row
// errors.
func WriteCSV(w io.Writer, n int, seed uint64, bad map[int]bool) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	if _, err := bw.WriteString(Header + "\n"); err != nil {
		return err
	}
	var b []byte
	for i := range n {
		b = AppendLead(b[:0], rng, i)
		if bad[i] {
			b = append(b[:0], "L"...)
			b = strconv.AppendInt(b, int64(i), 10)
			b = append(b, ",-5,101,3,2,1,maybe,false,Space,Immediate,Analyst\n"...)
		}
		if _, err := bw.Write(b); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// AppendLead appends one CSV line (with its newline) for lead i.
func AppendLead(b []byte, rng *rand.Rand, i int) []byte {
	engaged := rng.Float64()
	b = append(b, 'L')
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, int64(math.Exp(rng.Float64()*9.2)), 10) // 1 to ~10,000 employees
	b = append(b, ',')
	b = strconv.AppendInt(b, int64(engaged*100), 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, int64(engaged*40+rng.Float64()*20), 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, int64(engaged*25+rng.Float64()*10), 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, int64(engaged*6+rng.Float64()*3), 10)
	b = append(b, ',')
	b = strconv.AppendBool(b, rng.Float64() < 0.1+engaged*0.4)
	b = append(b, ',')
	b = strconv.AppendBool(b, rng.Float64() < 0.3)
	b = append(b, ',')
	b = append(b, industries[rng.IntN(len(industries))]...)
	b = append(b, ',')
	b = append(b, timelines[rng.IntN(len(timelines))]...)
	b = append(b, ',')
	t := titles[rng.IntN(len(titles))]
	if t == "Founder & CEO" {
		b = append(b, `"Founder, CEO"`...) // a quoted cell, as CRMs export them
	} else {
		b = append(b, t...)
	}
	return append(b, '\n')
}
