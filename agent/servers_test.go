package agent

import (
	"slices"
	"testing"
)

// TestServersRoundRobinShuffled: every server is tried once per round, in
// the round's random order.
func TestServersRoundRobinShuffled(t *testing.T) {
	reverse := func(n int, swap func(i, j int)) {
		for i := 0; i < n/2; i++ {
			swap(i, n-1-i)
		}
	}
	s := newServers([]string{"a", "b", "c"}, reverse)
	var got []string
	for range 6 {
		got = append(got, s.next())
	}
	if want := []string{"c", "b", "a", "c", "b", "a"}; !slices.Equal(got, want) {
		t.Fatalf("order = %v, want %v", got, want)
	}
	one := newServers([]string{"only"}, nil)
	if one.next() != "only" || one.next() != "only" {
		t.Fatal("a single server is not always tried")
	}
	// With the real shuffle each round still holds every server once.
	r := newServers([]string{"a", "b", "c", "d"}, nil)
	for range 10 {
		round := []string{r.next(), r.next(), r.next(), r.next()}
		slices.Sort(round)
		if !slices.Equal(round, []string{"a", "b", "c", "d"}) {
			t.Fatalf("round = %v", round)
		}
	}
}
