package transport

import "testing"

func TestValidEnvName(t *testing.T) {
	t.Parallel()
	for k, want := range map[string]bool{
		"PATH": true, "_x": true, "SF_DIR": true, "a1": true,
		"": false, "1a": false, "A-B": false, "A B": false, "A=B": false, "é": false, "A\n": false,
	} {
		if got := ValidEnvName(k); got != want {
			t.Errorf("ValidEnvName(%q) = %v, want %v", k, got, want)
		}
	}
}
