package load

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/api"
)

// getStatus is the status of a GET with a bearer token (0: no answer).
func getStatus(ctx context.Context, client *http.Client, url, token string) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// getJSON decodes the 200 answer of a GET with a bearer token into out;
// any other answer is an error, never an empty result.
func getJSON(ctx context.Context, client *http.Client, url, token string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, bytes.TrimSpace(b))
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

// heldBy lists the PBXs GET /v1/fleet on base shows held by replica.
func heldBy(ctx context.Context, client *http.Client, base, jwt, replica string) ([]string, error) {
	var v struct {
		Agents []struct {
			ID      string `json:"id"`
			Replica string `json:"replica"`
		} `json:"agents"`
	}
	url := fmt.Sprintf("%s/v1/fleet?limit=%d&connected=true", base, api.MaxFleetPageSize)
	if err := getJSON(ctx, client, url, jwt, &v); err != nil {
		return nil, err
	}
	var out []string
	for _, a := range v.Agents {
		if a.Replica == replica {
			out = append(out, a.ID)
		}
	}
	return out, nil
}

// RollingResult is what the retrying client saw during a rolling restart.
type RollingResult struct {
	Calls, OK, Failed, Retries int
	// Retried counts retries by cause: "503 pbx_offline", "refused", …;
	// FailedBy the final answers of calls that failed.
	Retried, FailedBy map[string]int
	Took              time.Duration
}

// rollingGiveUp is how long the retrying client keeps at one call.
const rollingGiveUp = 60 * time.Second

// retryingCalls places rate calls per second, round robin over the PBXs,
// each to a random replica of bases() with its own Idempotency-Key, until
// ctx ends. A 503 or 429 is retried after its Retry-After; a refused
// connection (a replica stopping) at once, on another replica; anything
// else, or still failing after rollingGiveUp, counts as failed.
func retryingCalls(ctx context.Context, client *http.Client, bases func() []string, agents []SimAgent, rate int) RollingResult {
	res := RollingResult{Retried: map[string]int{}, FailedBy: map[string]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	t := time.NewTicker(time.Second / time.Duration(rate))
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			wg.Wait()
			return res
		case <-t.C:
		}
		a := agents[i%len(agents)]
		body, _ := json.Marshal(map[string]string{"from": fmt.Sprintf("1%02d", i%100), "to": "+375296254070", "pbx": a.ID})
		key := rand.Text()
		wg.Go(func() {
			ok, retried, final := retryCall(context.WithoutCancel(ctx), client, bases, a.APIKey, key, body)
			mu.Lock()
			defer mu.Unlock()
			res.Calls++
			for k, n := range retried {
				res.Retried[k] += n
				res.Retries += n
			}
			if ok {
				res.OK++
			} else {
				res.Failed++
				res.FailedBy[final]++
			}
		})
	}
}

func retryCall(ctx context.Context, client *http.Client, bases func() []string, token, key string, body []byte) (ok bool, retried map[string]int, final string) {
	retried = map[string]int{}
	deadline := time.Now().Add(rollingGiveUp)
	for time.Now().Before(deadline) {
		bs := bases()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, bs[mrand.IntN(len(bs))]+"/v1/calls", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		resp, err := client.Do(req)
		if err != nil {
			// Refused: the replica is stopping or stopped, nothing was
			// sent; a load balancer would have gone to another one.
			retried["refused"]++
			time.Sleep(10 * time.Millisecond)
			continue
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode == http.StatusCreated {
			return true, retried, ""
		}
		var e struct {
			Error struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		_ = json.Unmarshal(b, &e)
		cause := fmt.Sprintf("%d %s", resp.StatusCode, e.Error.Code)
		if resp.StatusCode != http.StatusServiceUnavailable && resp.StatusCode != http.StatusTooManyRequests {
			return false, retried, cause
		}
		retried[cause]++
		time.Sleep(retryAfter(resp))
	}
	return false, retried, "gave up after " + rollingGiveUp.String()
}

// subscribers are `switchboard events tail` processes, one per
// enterprise: real WebSocket clients that resume with after= when their
// stream ends.
type subscribers struct {
	procs []*exec.Cmd
	files []string
	keys  []string
}

// subscribe starts a tail on base for the enterprises of up to n of the
// PBXs in ids (one PBX per enterprise: its key), from the start.
func subscribe(ctx context.Context, bin, base, dir string, plan *fleetPlan, ids []string, n int) (*subscribers, error) {
	keyOf := plan.keyOf()
	s := &subscribers{}
	seen := map[string]bool{}
	for _, id := range ids {
		key := keyOf[id]
		if len(s.procs) == n || seen[key] {
			continue
		}
		seen[key] = true
		out := filepath.Join(dir, fmt.Sprintf("subscriber-%d.jsonl", len(s.procs)))
		f, err := os.Create(out)
		if err != nil {
			return s, err
		}
		cmd := exec.Command(bin, "events", "tail", "--server", base, "--token", key, "--after", "0")
		cmd.Stdout, cmd.Stderr, cmd.Env = f, io.Discard, childEnv()
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		err = cmd.Start()
		f.Close()
		if err != nil {
			return s, fmt.Errorf("start subscriber: %w", err)
		}
		s.procs, s.files, s.keys = append(s.procs, cmd), append(s.files, out), append(s.keys, key)
	}
	return s, nil
}

func (s *subscribers) len() int { return len(s.procs) }

func (s *subscribers) close() {
	for _, p := range s.procs {
		_ = p.Process.Kill()
		_ = p.Wait()
	}
}

// received reads a subscriber's output: the sequences it printed.
func received(path string) ([]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []int64
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e struct {
			Seq int64 `json:"seq"`
		}
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Seq > 0 {
			out = append(out, e.Seq)
		}
	}
	return out, sc.Err()
}

// stored lists the enterprise's stored sequences through the API.
func stored(ctx context.Context, client *http.Client, base, key string) ([]int64, error) {
	var out []int64
	after := int64(0)
	for {
		var page struct {
			Events []struct {
				Seq int64 `json:"seq"`
			} `json:"events"`
			NextAfter int64 `json:"next_after"`
			HasMore   bool  `json:"has_more"`
		}
		if err := getJSON(ctx, client, fmt.Sprintf("%s/v1/events?after=%d&limit=1000", base, after), key, &page); err != nil {
			return nil, err
		}
		for _, e := range page.Events {
			out = append(out, e.Seq)
		}
		if !page.HasMore {
			return out, nil
		}
		after = page.NextAfter
	}
}

// check compares what each subscriber printed with what was stored, up
// to the last sequence stored when it is called (waiting up to a minute
// for the subscribers to get there): events lost and duplicated.
func (s *subscribers) check(ctx context.Context, client *http.Client, base string) (seen, lost, dup int, err error) {
	for i, key := range s.keys {
		want, err := stored(ctx, client, base, key)
		if err != nil {
			return seen, lost, dup, err
		}
		if len(want) == 0 {
			continue
		}
		last := want[len(want)-1]
		var got []int64
		deadline := time.Now().Add(time.Minute)
		for {
			if got, err = received(s.files[i]); err != nil {
				return seen, lost, dup, err
			}
			if len(got) > 0 && got[len(got)-1] >= last || time.Now().After(deadline) {
				break
			}
			if err := sleep(ctx, 200*time.Millisecond); err != nil {
				return seen, lost, dup, err
			}
		}
		count := map[int64]int{}
		for _, q := range got {
			if q <= last {
				count[q]++
				seen++
			}
		}
		for _, q := range want {
			switch n := count[q]; {
			case n == 0:
				lost++
			case n > 1:
				dup += n - 1
			}
		}
	}
	return seen, lost, dup, nil
}

// describeSubs is "3 `switchboard events tail` subscribers on 127.0.0.1:8081".
func describeSubs(n int, base string) string {
	return fmt.Sprintf("%d `switchboard events tail` subscribers on %s", n, strings.TrimPrefix(base, "http://"))
}
