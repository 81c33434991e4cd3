package load

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/api"
)

// Latencies summarises a set of request latencies.
type Latencies struct {
	Count         int
	P50, P99, Max time.Duration
	// First is the first sample as taken: for GET /v1/fleet the one that
	// encodes every agent's row for the first time (later ones reuse the
	// rows that did not change).
	First time.Duration
	// Codes counts HTTP statuses; 0 counts transport errors.
	Codes map[int]int
}

func summarize(d []time.Duration, codes map[int]int) Latencies {
	l := Latencies{Count: len(d), Codes: codes}
	if len(d) == 0 {
		return l
	}
	slices.Sort(d)
	q := func(p float64) time.Duration {
		i := int(p*float64(len(d))+0.5) - 1
		return d[max(0, min(i, len(d)-1))]
	}
	l.P50, l.P99, l.Max = q(0.50), q(0.99), d[len(d)-1]
	return l
}

// codesString is "201×9990, 503×10" in ascending status order.
func (l Latencies) codesString() string {
	keys := make([]int, 0, len(l.Codes))
	for k := range l.Codes {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	var b bytes.Buffer
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		name := strconv.Itoa(k)
		if k == 0 {
			name = "error"
		}
		fmt.Fprintf(&b, "%s×%d", name, l.Codes[k])
	}
	return b.String()
}

func newHTTPClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: time.Minute,
			DisableCompression: true,
		},
	}
}

// fullFleetLimit is the page of the fleet view the runs time: the whole
// fleet, up to the API's largest page.
func fullFleetLimit(agents int) int { return min(agents, api.MaxFleetPageSize) }

// fleetLatency times n sequential GET /v1/fleet?<query> with the admin JWT.
func fleetLatency(ctx context.Context, client *http.Client, base, jwt, query string, n int) (Latencies, int, error) {
	var d []time.Duration
	codes := map[int]int{}
	size := 0
	for done := 0; done < n; {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/fleet?"+query, nil)
		if err != nil {
			return Latencies{}, 0, err
		}
		req.Header.Set("Authorization", "Bearer "+jwt)
		start := time.Now()
		resp, err := client.Do(req)
		done++
		if err != nil {
			codes[0]++
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			// The operator's rate limit (the connect phase polled with
			// the same JWT): wait as told; the sample is taken again.
			done--
			if err := sleep(ctx, retryAfter(resp)); err != nil {
				return fleetSummary(d, codes), size, err
			}
			continue
		}
		d = append(d, time.Since(start))
		if err != nil {
			codes[0]++
			continue
		}
		codes[resp.StatusCode]++
		size = len(b)
		if resp.StatusCode != http.StatusOK {
			return fleetSummary(d, codes), size, fmt.Errorf("GET /v1/fleet?%s: %s: %s", query, resp.Status, bytes.TrimSpace(b))
		}
	}
	return fleetSummary(d, codes), size, nil
}

// fleetSummary is summarize, with the first sample kept as taken.
func fleetSummary(d []time.Duration, codes map[int]int) Latencies {
	var first time.Duration
	if len(d) > 0 {
		first = d[0]
	}
	l := summarize(d, codes)
	l.First = first
	return l
}

// OriginateResult is the outcome of the POST /v1/calls phase.
type OriginateResult struct {
	Target   int           // requests scheduled
	Sent     int           // requests sent
	Missed   int           // not sent: MaxInFlight requests were outstanding
	Took     time.Duration // first scheduled send to last response
	Achieved float64       // responses per second over Took
	// Latency counts from each request's scheduled send time, so a
	// generator that falls behind shows up in it (no coordinated
	// omission); Service from the actual send.
	Latency, Service Latencies
	// Errors counts the API's error codes ("503 pbx_offline") of
	// non-2xx answers.
	Errors map[string]int
}

// originateLoad sends rate POST /v1/calls per second for d, spread over
// the agents in turn (each with its enterprise's API key), open loop.
func originateLoad(ctx context.Context, client *http.Client, base string, agents []SimAgent, rate int, d time.Duration, maxInFlight int) OriginateResult {
	return originateLoadTo(ctx, client, func() string { return base }, agents, rate, d, maxInFlight)
}

// originateLoadTo is originateLoad with each request sent to pick().
func originateLoadTo(ctx context.Context, client *http.Client, pick func() string, agents []SimAgent, rate int, d time.Duration, maxInFlight int) OriginateResult {
	total := int(float64(rate) * d.Seconds())
	res := OriginateResult{Target: total}
	if total == 0 || len(agents) == 0 {
		return res
	}
	interval := time.Second / time.Duration(rate)
	bodies := make([][]byte, len(agents))
	for i, a := range agents {
		bodies[i], _ = json.Marshal(map[string]string{"from": fmt.Sprintf("1%02d", i%100), "to": "+375296254070", "pbx": a.ID})
	}
	var (
		mu       sync.Mutex
		lat, svc []time.Duration
		codes    = map[int]int{}
		errCodes = map[string]int{}
		wg       sync.WaitGroup
		sem      = make(chan struct{}, maxInFlight)
	)
	lat, svc = make([]time.Duration, 0, total), make([]time.Duration, 0, total)
	start := time.Now()
schedule:
	for i := range total {
		due := start.Add(time.Duration(i) * interval)
		if w := time.Until(due); w > 0 {
			select {
			case <-ctx.Done():
				res.Target = i
				break schedule
			case <-time.After(w):
			}
		}
		select {
		case sem <- struct{}{}:
		default:
			res.Missed++
			continue
		}
		res.Sent++
		a, body, base := agents[i%len(agents)], bodies[i%len(agents)], pick()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			sent := time.Now()
			code, apiErr := postCall(ctx, client, base, a.APIKey, body)
			end := time.Now()
			mu.Lock()
			lat, svc = append(lat, end.Sub(due)), append(svc, end.Sub(sent))
			codes[code]++
			if apiErr != "" {
				errCodes[apiErr]++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.Took = time.Since(start)
	res.Achieved = float64(len(lat)) / res.Took.Seconds()
	res.Latency = summarize(lat, codes)
	res.Service = summarize(svc, codes)
	res.Errors = errCodes
	return res
}

// postCall returns the HTTP status, or 0 on a transport error, and for
// an error answer "<status> <API error code>".
func postCall(ctx context.Context, client *http.Client, base, key string, body []byte) (int, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/calls", bytes.NewReader(body))
	if err != nil {
		return 0, "request: " + err.Error()
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, "transport error"
	}
	defer resp.Body.Close()
	if resp.StatusCode < 300 {
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, ""
	}
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_ = json.Unmarshal(b, &e)
	return resp.StatusCode, fmt.Sprintf("%d %s", resp.StatusCode, e.Error.Code)
}

// errorsString is "503 unavailable×10, 502 agent_error×3", most first.
func errorsString(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || m[keys[i]] == m[keys[j]] && keys[i] < keys[j] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s×%d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// retryAfter is a 429's Retry-After (whole seconds), or one second.
func retryAfter(resp *http.Response) time.Duration {
	if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	return time.Second
}
