package testenv

import (
	"os"
	"testing"
)

// InCI reports whether the tests run in CI, where every capability the
// suite needs must be present.
func InCI() bool { return os.Getenv("CI") == "true" }

// Missing skips t because of a missing capability, or fails it in CI.
func Missing(t testing.TB, what string) {
	t.Helper()
	if InCI() {
		t.Fatalf("%s, and CI=true requires it", what)
	}
	t.Skipf("skipped: %s (set up the capability, or run as CI does)", what)
}

// RequireRoot skips or fails t unless it runs as root, which loading and
// running eBPF programs needs.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "not running as root")
	}
}
