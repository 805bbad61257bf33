package queue

import "testing"

func TestParseDurability(t *testing.T) {
	for _, tc := range []struct {
		in       string
		replicas int
		ok       bool
	}{
		{"", 0, true},
		{"none", 0, true},
		{" replicas:1 ", 1, true},
		{"replicas:16", 16, true},
		{"replicas:0", 0, false},
		{"replicas:17", 0, false},
		{"replicas:", 0, false},
		{"replicas:one", 0, false},
		{"all", 0, false},
	} {
		d, err := ParseDurability(tc.in)
		if (err == nil) != tc.ok || d.Replicas != tc.replicas {
			t.Errorf("ParseDurability(%q) = %+v, %v; want %d replicas, ok %t", tc.in, d, err, tc.replicas, tc.ok)
		}
		if err == nil {
			if back, _ := ParseDurability(d.String()); back != d {
				t.Errorf("%q: String %q does not parse back", tc.in, d.String())
			}
		}
	}
}
