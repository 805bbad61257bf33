package api

import "testing"

func TestRedactQuery(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"no key", "explain=true&format=csv", "explain=true&format=csv"},
		{"only the key", "api_key=hk_live_abc", "api_key=REDACTED"},
		{"others kept in order", "explain=true&api_key=hk_live_abc&format=csv", "explain=true&api_key=REDACTED&format=csv"},
		{"twice", "api_key=hk_one&x=1&api_key=hk_two", "api_key=REDACTED&x=1&api_key=REDACTED"},
		{"any case", "API_KEY=hk_a&Api_Key=hk_b", "API_KEY=REDACTED&Api_Key=REDACTED"},
		{"encoded name", "api%5Fkey=hk_a&api%5fkey=hk_b&%61pi_key=hk_c", "api%5Fkey=REDACTED&api%5fkey=REDACTED&%61pi_key=REDACTED"},
		{"encoded value", "api_key=hk%5Flive%2Dabc", "api_key=REDACTED"},
		{"semicolon separator", "x=1;api_key=hk_a", "x=1;api_key=REDACTED"},
		{"empty value", "api_key=&x=1", "api_key=REDACTED&x=1"},
		{"value holding =", "api_key=hk_a=b", "api_key=REDACTED"},
		{"name without value kept", "api_key&x=1", "api_key&x=1"},
		{"look-alike names kept", "api_keys=1&my_api_key=2&api-key=3", "api_keys=1&my_api_key=2&api-key=3"},
		{"undecodable name kept", "api%zzkey=1", "api%zzkey=1"},
		{"empty pairs kept", "&&api_key=hk_a&", "&&api_key=REDACTED&"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := redactQuery(tc.in); got != tc.want {
				t.Errorf("redactQuery(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
