package agent

import "math/rand/v2"

// servers hands out the control-plane URLs to dial, each in turn in a
// random order that is drawn again once all were tried: agents of one site
// spread over the replicas, and a dead replica costs one attempt per
// round. Only the tunnel loop calls next, one dial at a time.
type servers struct {
	urls    []string
	order   []int
	shuffle func(n int, swap func(i, j int))
}

func newServers(urls []string, shuffle func(n int, swap func(i, j int))) *servers {
	if shuffle == nil {
		shuffle = rand.Shuffle
	}
	return &servers{urls: urls, shuffle: shuffle}
}

// next is the URL of the next attempt.
func (s *servers) next() string {
	if len(s.urls) == 1 {
		return s.urls[0]
	}
	if len(s.order) == 0 {
		s.order = make([]int, len(s.urls))
		for i := range s.order {
			s.order[i] = i
		}
		s.shuffle(len(s.order), func(i, j int) { s.order[i], s.order[j] = s.order[j], s.order[i] })
	}
	u := s.urls[s.order[0]]
	s.order = s.order[1:]
	return u
}
