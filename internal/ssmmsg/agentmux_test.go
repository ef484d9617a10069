package ssmmsg

import "testing"

func TestAgentHasMux(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want bool
	}{
		{"3.0.196.0", false}, {"2.3.700.0", false}, {"3.0.222.0", true},
		{"3.3.1142.0", true}, {"3.3", true}, {"", false}, {"x.y", false},
	} {
		if got := AgentHasMux(tc.v); got != tc.want {
			t.Errorf("AgentHasMux(%q) = %v, want %v", tc.v, got, tc.want)
		}
	}
}
