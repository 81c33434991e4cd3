package fleet

import "testing"

// SetOpMinVersion makes op need protocol version v for the rest of the
// test, as a real op added in version v will: no real op needs more than
// version 1 yet. Tests using it must not run in parallel.
func SetOpMinVersion(t testing.TB, op string, v int) {
	prev := opMinVersion
	opMinVersion = func(o string) int {
		if o == op {
			return v
		}
		return prev(o)
	}
	t.Cleanup(func() { opMinVersion = prev })
}
