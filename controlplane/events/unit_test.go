package events

import (
	"context"
	"errors"
	"net"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestHubFanOut(t *testing.T) {
	t.Parallel()
	h := NewHub(3, 2)
	all, err := h.Subscribe(1, Filter{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	ended, err := h.Subscribe(1, Filter{Types: []string{"call.ended"}, AgentID: "agt_a"}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Subscribe(1, Filter{}, 10); !errors.Is(err, ErrTooManySubscribers) {
		t.Fatalf("third subscriber of one enterprise: %v", err)
	}
	other, err := h.Subscribe(2, Filter{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Subscribe(3, Filter{}, 10); !errors.Is(err, ErrTooManySubscribers) {
		t.Fatalf("fourth subscriber: %v", err)
	}
	item := func(seq int64, agent, typ string) Item { return Item{Seq: seq, AgentID: agent, Type: typ} }
	h.Publish(Batch{EnterpriseID: 1, First: 1, Last: 2, Items: []Item{item(1, "agt_a", "call.started"), item(2, "agt_a", "call.ended")}})
	h.Publish(Batch{EnterpriseID: 1, First: 3, Last: 3, Items: []Item{item(3, "agt_b", "call.ended")}})
	h.Publish(Batch{EnterpriseID: 1, First: 4, Last: 4, Items: []Item{item(4, "agt_b", "call.started")}})

	select {
	case <-all.Ready():
	default:
		t.Fatal("Ready not signalled")
	}
	got, err := all.Take()
	if err != nil || len(got) != 3 || len(got[0].Items) != 2 {
		t.Fatalf("all = %+v, %v", got, err)
	}
	got, err = ended.Take()
	if err != nil || len(got) != 2 || len(got[0].Items) != 1 || got[0].Items[0].Seq != 2 {
		t.Fatalf("filtered = %+v, %v", got, err)
	}
	// Batches the filter emptied coalesce into one marker covering 3..4.
	if b := got[1]; b.First != 3 || b.Last != 4 || len(b.Items) != 0 {
		t.Fatalf("marker = %+v", b)
	}
	if got, _ := other.Take(); len(got) != 0 {
		t.Fatalf("enterprise 2 got %+v", got)
	}
	ended.Close()
	ended.Close()
	if _, err := ended.Take(); !errors.Is(err, ErrSubscriptionClosed) {
		t.Fatalf("Take after Close: %v", err)
	}
	if h.Len() != 2 {
		t.Fatalf("Len = %d after Close", h.Len())
	}
}

func TestHubSlowSubscriber(t *testing.T) {
	t.Parallel()
	h := NewHub(0, 0)
	slow, _ := h.Subscribe(1, Filter{}, 4)
	fast, _ := h.Subscribe(1, Filter{}, 4)
	batch := func(first int64, n int) Batch {
		b := Batch{EnterpriseID: 1, First: first, Last: first + int64(n) - 1}
		for i := range n {
			b.Items = append(b.Items, Item{Seq: first + int64(i), Type: "call.started"})
		}
		return b
	}
	// One batch larger than the buffer fits an empty queue.
	h.Publish(batch(1, 6))
	if got, err := fast.Take(); err != nil || len(got) != 1 {
		t.Fatalf("fast = %+v, %v", got, err)
	}
	h.Publish(batch(7, 3))
	if got, err := fast.Take(); err != nil || len(got) != 1 {
		t.Fatalf("fast = %+v, %v", got, err)
	}
	// slow has 6 queued: more is too much, and publishing never blocked.
	done := make(chan struct{})
	go func() {
		h.Publish(batch(10, 1))
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Publish blocked on a slow subscriber")
	}
	if _, err := slow.Take(); !errors.Is(err, ErrSlowSubscriber) {
		t.Fatalf("slow: %v", err)
	}
	if got, err := fast.Take(); err != nil || len(got) != 1 || got[0].First != 10 {
		t.Fatalf("fast after slow dropped = %+v, %v", got, err)
	}
	if _, err := h.Subscribe(1, Filter{}, 0); err == nil {
		t.Fatal("zero buffer accepted")
	}
}

func TestSignVerify(t *testing.T) {
	t.Parallel()
	now := time.Unix(1795337000, 0)
	body := []byte(`{"seq":1,"type":"call.started"}`)
	sig := Sign("whsec_k", now, body)
	if !strings.HasPrefix(sig, "t=1795337000,v1=") {
		t.Fatalf("header %q", sig)
	}
	for _, tc := range []struct {
		name, secret, header string
		body                 []byte
		now                  time.Time
		want                 error
	}{
		{"ok", "whsec_k", sig, body, now, nil},
		{"ok, extra scheme and spaces", "whsec_k", sig + ", v0=abc", body, now.Add(time.Minute), nil},
		{"other secret", "whsec_x", sig, body, now, ErrBadSignature},
		{"body changed", "whsec_k", sig, []byte(`{"seq":2,"type":"call.started"}`), now, ErrBadSignature},
		{"timestamp changed", "whsec_k", strings.Replace(sig, "t=1795337000", "t=1795337001", 1), body, now, ErrBadSignature},
		{"stale", "whsec_k", sig, body, now.Add(10 * time.Minute), ErrStaleRequest},
		{"from the future", "whsec_k", sig, body, now.Add(-10 * time.Minute), ErrStaleRequest},
		{"malformed", "whsec_k", "v1=abcd", body, now, ErrBadSignature},
		{"empty", "whsec_k", "", body, now, ErrBadSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := Verify(tc.secret, tc.header, tc.body, tc.now, 5*time.Minute); !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	now := time.Unix(1795337000, 0)
	f.Add(Sign("k", now, []byte("{}")), []byte("{}"))
	f.Add("t=1,v1=zz,v1=", []byte(""))
	f.Add("t=,v1", []byte("x"))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		err := Verify("k", header, body, now, time.Minute)
		if err == nil && Verify("other", header, body, now, time.Minute) == nil {
			t.Fatalf("header %q verifies under two secrets", header)
		}
	})
}

func TestPublicAddr(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		ip     string
		public bool
	}{
		{"public v4", "8.8.8.8", true},
		{"public v6", "2606:4700:4700::1111", true},
		{"public v4 2", "93.184.216.34", true},
		{"loopback", "127.0.0.1", false},
		{"loopback v6", "::1", false},
		{"rfc1918 10", "10.0.0.1", false},
		{"rfc1918 172", "172.16.5.4", false},
		{"rfc1918 192", "192.168.1.1", false},
		{"cloud metadata", "169.254.169.254", false},
		{"link-local v6", "fe80::1", false},
		{"scoped link-local", "fe80::1%eth0", false},
		{"scoped public", "2606:4700:4700::1111%eth0", false},
		{"ula", "fc00::1", false},
		{"ula fd", "fd12::1", false},
		{"unspecified", "0.0.0.0", false},
		{"unspecified v6", "::", false},
		{"cgnat", "100.64.1.1", false},
		{"multicast", "224.0.0.1", false},
		{"broadcast", "255.255.255.255", false},
		{"benchmarking", "198.18.0.1", false},
		{"mapped loopback", "::ffff:127.0.0.1", false},
		{"mapped private", "::ffff:10.0.0.1", false},
		{"mapped public", "::ffff:93.184.216.34", true},
		// The review's bypasses: IPv4-compatible and IPv4-translated.
		{"compatible loopback dotted", "::127.0.0.1", false},
		{"compatible loopback hex", "::7f00:1", false},
		{"compatible metadata", "::169.254.169.254", false},
		{"compatible public", "::93.184.216.34", true},
		{"translated loopback", "::ffff:0:7f00:1", false},
		{"translated private", "::ffff:0:10.1.2.3", false},
		{"translated public", "::ffff:0:93.184.216.34", true},
		{"nat64 private", "64:ff9b::a00:1", false},
		{"nat64 loopback", "64:ff9b::127.0.0.1", false},
		{"nat64 public", "64:ff9b::93.184.216.34", true},
		{"local nat64", "64:ff9b:1::5db8:d822", false},
		{"6to4 loopback", "2002:7f00:1::", false},
		{"6to4 metadata", "2002:a9fe:a9fe::1", false},
		{"6to4 public", "2002:5db8:d822::1", true},
		// Teredo: server 65.54.227.120, client inverted in the last 32 bits.
		{"teredo public", "2001:0:4136:e378:8000:63bf:a247:2bdd", true},  // client 93.184.212.34
		{"teredo loopback client", "2001:0:4136:e378::80ff:fffe", false}, // client 127.0.0.1
		{"teredo private server", "2001:0:a00:1::a247:2bdd", false},      // server 10.0.0.1
		{"documentation v6", "2001:db8::1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := publicAddr(netip.MustParseAddr(tc.ip)); got != tc.public {
				t.Errorf("publicAddr(%s) = %v, want %v", tc.ip, got, tc.public)
			}
		})
	}
}

// FuzzPublicAddr: an IPv6 address that embeds an IPv4 address is public
// exactly when the embedded address is, whichever embedding carries it,
// and checkWebhookURL agrees with publicAddr on every literal address.
func FuzzPublicAddr(f *testing.F) {
	f.Add(uint8(0), uint32(0x7f000001), uint64(0), uint32(0))
	f.Add(uint8(1), uint32(0x0a000001), uint64(1), uint32(0x41364e78))
	f.Add(uint8(4), uint32(0x5db8d822), uint64(0x800063bf), uint32(0x4136e378))
	f.Add(uint8(5), uint32(0xa9fea9fe), uint64(7), uint32(1))
	noDNS := &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("no DNS in tests")
	}}
	f.Fuzz(func(t *testing.T, form uint8, v4 uint32, rest uint64, server uint32) {
		var a [16]byte
		inner := netip.AddrFrom4([4]byte{byte(v4 >> 24), byte(v4 >> 16), byte(v4 >> 8), byte(v4)})
		putV4 := func(at int, v uint32) {
			a[at], a[at+1], a[at+2], a[at+3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
		}
		want := publicAddr(inner)
		switch form % 6 {
		case 0: // IPv4-compatible ::a.b.c.d
			putV4(12, v4)
		case 1: // IPv4-translated ::ffff:0:a.b.c.d
			a[8], a[9] = 0xff, 0xff
			putV4(12, v4)
		case 2: // IPv4-mapped ::ffff:a.b.c.d
			a[10], a[11] = 0xff, 0xff
			putV4(12, v4)
		case 3: // NAT64 64:ff9b::a.b.c.d
			a[0], a[1], a[2], a[3] = 0, 0x64, 0xff, 0x9b
			putV4(12, v4)
		case 4: // 6to4 2002:aabb:ccdd:<anything>
			a[0], a[1] = 0x20, 0x02
			putV4(2, v4)
			for i := range 8 {
				a[6+i] = byte(rest >> (8 * i))
			}
		case 5: // Teredo 2001:0:<server>:<flags, port>:<client inverted>
			a[0], a[1] = 0x20, 0x01
			putV4(4, server)
			for i := range 4 {
				a[8+i] = byte(rest >> (8 * i))
			}
			putV4(12, ^v4)
			srv := netip.AddrFrom4([4]byte{byte(server >> 24), byte(server >> 16), byte(server >> 8), byte(server)})
			want = want && publicAddr(srv)
		}
		ip := netip.AddrFrom16(a)
		if got := publicAddr(ip); got != want {
			t.Fatalf("publicAddr(%s) = %v, but it carries %s (public: %v)", ip, got, inner, want)
		}
		err := checkWebhookURL(context.Background(), "https://["+ip.String()+"]/hook", false, noDNS)
		if (err == nil) != want {
			t.Fatalf("checkWebhookURL([%s]) = %v, want accepted=%v", ip, err, want)
		}
	})
}

// TestDialGuard: the delivery client refuses a loopback target at dial
// time, whatever the URL said when the webhook was created.
func TestDialGuard(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(nil)
	defer srv.Close()
	cfg := Config{}
	cfg.fill()
	c := newWebhookClient(cfg)
	_, err := c.Get(srv.URL)
	if !errors.Is(err, ErrForbiddenTarget) {
		t.Fatalf("GET loopback = %v, want ErrForbiddenTarget", err)
	}
	cfg.AllowPrivateTargets = true
	c = newWebhookClient(cfg)
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatalf("allowed: %v", err)
	}
	resp.Body.Close()
}

func TestCheckWebhookURL(t *testing.T) {
	t.Parallel()
	// A resolver that answers every name with a private address, as a
	// hostile DNS entry would.
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return nil, errors.New("no DNS in tests")
	}}
	for _, tc := range []struct {
		url     string
		private bool
		ok      bool
	}{
		{"https://93.184.216.34/hook", false, true},
		{"http://[2606:4700:4700::1111]:8443/x", false, true},
		{"http://127.0.0.1/", false, false},
		{"http://127.0.0.1/", true, true},
		{"http://[::127.0.0.1]/", false, false},
		{"http://[::7f00:1]/", false, false},
		{"http://[::ffff:0:7f00:1]/", false, false},
		{"http://[::ffff:127.0.0.1]:8080/", false, false},
		{"http://[64:ff9b::a9fe:a9fe]/", false, false},
		{"http://[2002:a00:1::1]/", false, false},
		{"http://[::127.0.0.1]/", true, true},
		{"https://api.localhost/", false, false},
		{"https://crm.example/", false, false}, // does not resolve here
		{"https://crm.example/", true, true},
		{"gopher://93.184.216.34/", true, false},
		{"https:///path", true, false},
		{"https://a@93.184.216.34/", true, false},
		{"https://93.184.216.34/#frag", true, false},
		{"::not a url", true, false},
	} {
		err := checkWebhookURL(context.Background(), tc.url, tc.private, r)
		if (err == nil) != tc.ok {
			t.Errorf("checkWebhookURL(%q, private=%v) = %v, want ok=%v", tc.url, tc.private, err, tc.ok)
		}
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	cfg := Config{RetryInitial: time.Second, RetryMax: time.Minute}
	cfg.fill()
	s := &Service{cfg: cfg}
	for _, tc := range []struct {
		n        int
		min, max time.Duration
	}{
		{1, 800 * time.Millisecond, 1200 * time.Millisecond},
		{2, 1600 * time.Millisecond, 2400 * time.Millisecond},
		{6, 25600 * time.Millisecond, 38400 * time.Millisecond},
		{7, 48 * time.Second, 72 * time.Second},
		{40, 48 * time.Second, 72 * time.Second},
	} {
		for range 50 {
			if d := s.backoff(tc.n); d < tc.min || d > tc.max {
				t.Fatalf("backoff(%d) = %v, want %v..%v", tc.n, d, tc.min, tc.max)
			}
		}
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"defaults", Config{}, ""},
		{"negative buffer", Config{SubscriberBuffer: -1}, "SubscriberBuffer -1 is negative"},
		{"negative retention", Config{EventRetention: -time.Hour}, "EventRetention -1h0m0s is negative"},
		{"retries outlive events", Config{EventRetention: time.Hour, MaxDeliveryAge: 2 * time.Hour}, "MaxDeliveryAge 2h0m0s must be shorter than EventRetention"},
		{"lease too short", Config{AttemptTimeout: time.Minute, DeliveryLease: time.Second}, "DeliveryLease 1s must be longer than AttemptTimeout"},
		{"initial over max", Config{RetryInitial: time.Hour, RetryMax: time.Minute}, "RetryInitial 1h0m0s is longer than RetryMax"},
		{"replay page", Config{ReplayPageSize: 6000}, "ReplayPageSize 6000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
}

func FuzzParseQuery(f *testing.F) {
	f.Add("after=12&types=call.started,call.ended&pbx=agt_x&limit=5")
	f.Add("after=-1&limit=0&types=,")
	f.Add("types=call.ended,call.ended&after=99999999999999999999")
	f.Fuzz(func(t *testing.T, q string) {
		vals, err := url.ParseQuery(q)
		if err != nil {
			return
		}
		sq, err := ParseQuery(vals)
		if err != nil {
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("%q: error %v is not an InputError", q, err)
			}
			return
		}
		if sq.After < 0 || sq.Limit < 1 || sq.Limit > MaxEventPageSize || sq.HasAfter != (vals.Get("after") != "") {
			t.Fatalf("accepted %q as %+v", q, sq)
		}
		for _, typ := range sq.Filter.Types {
			if !strings.HasPrefix(typ, "call.") && typ != "gap" {
				t.Fatalf("accepted type %q", typ)
			}
		}
	})
}

// TestReplaySlotsPerEnterprise: one enterprise's replays queue behind its
// own bound; another enterprise's go at once.
func TestReplaySlotsPerEnterprise(t *testing.T) {
	t.Parallel()
	r := newReplaySlots(2)
	ctx := context.Background()
	var held []func()
	for range 2 {
		release, waited, err := r.acquire(ctx, 1)
		if err != nil || waited {
			t.Fatalf("within the bound: waited %v, %v", waited, err)
		}
		held = append(held, release)
	}
	// A third replay of enterprise 1 waits; enterprise 2's does not.
	got := make(chan bool, 1)
	go func() {
		release, waited, err := r.acquire(ctx, 1)
		if err == nil {
			release()
		}
		got <- waited
	}()
	release, waited, err := r.acquire(ctx, 2)
	if err != nil || waited {
		t.Fatalf("another enterprise: waited %v, %v", waited, err)
	}
	release()
	select {
	case <-got:
		t.Fatal("the third replay of enterprise 1 ran within the bound")
	case <-time.After(50 * time.Millisecond):
	}
	held[0]()
	if !<-got {
		t.Fatal("the third replay did not report that it waited")
	}
	held[1]()
	// A canceled wait gives up and leaves nothing behind.
	for range 2 {
		rel, _, _ := r.acquire(ctx, 1)
		defer rel()
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := r.acquire(cctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled wait: %v", err)
	}
}
