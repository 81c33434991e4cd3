package console_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

var update = flag.Bool("update", false, "rewrite the screenshots in testdata/screenshots (the README shows them)")

// Where the README's screenshots are written with -update.
const screenshotDir = "testdata/screenshots"

// browserZone is the browser's time zone in the tests: not the machine's
// (UTC on CI), so a time shown in the server's zone or in UTC is caught.
const browserZone = "Asia/Tehran"

// Viewports the console must work at: a laptop and a phone.
const (
	desktopWidth, desktopHeight = 1280, 860
	phoneWidth, phoneHeight     = 390, 844
)

// chromiumPath finds the browser: $SWITCHBOARD_CHROMIUM, else chromium on
// the PATH. scripts/test.sh installs Debian's chromium when it is missing;
// without one these tests fail, never skip.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("SWITCHBOARD_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium for the console's browser tests: `apt-get install chromium` (scripts/chromium.sh, which scripts/test.sh runs, does it), or set SWITCHBOARD_CHROMIUM to a Chromium or Chrome binary")
	return ""
}

// newBrowser starts one headless Chromium for the test, with the flags
// this machine's closed network needs, in an empty profile.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless,
		chromedp.NoSandbox, // CI runs as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(desktopWidth, desktopHeight),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return bctx
}

// tab is a page in a browser context of its own (its own cookies and
// storage, like a private window), at desktop size. An exception thrown
// by the console or a Content-Security-Policy violation fails the test.
type tab struct {
	t   *testing.T
	ctx context.Context
	url string

	mu       sync.Mutex
	problems []string
}

func newTab(t *testing.T, browser context.Context, baseURL string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	tb := &tab{t: t, ctx: ctx, url: baseURL}
	t.Cleanup(func() {
		cancel()
		tb.mu.Lock()
		defer tb.mu.Unlock()
		for _, p := range tb.problems {
			t.Errorf("in the page: %s", p)
		}
	})
	if err := chromedp.Listen(ctx, func(ev any) {
		var problem string
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			problem = "uncaught exception: " + e.ExceptionDetails.Text
			if e.ExceptionDetails.Exception != nil {
				problem += " " + e.ExceptionDetails.Exception.Description
			}
		case *cdplog.EventEntryAdded:
			if e.Entry.Source == cdplog.EntrySourceSecurity || e.Entry.Source == cdplog.EntrySourceJavascript {
				problem = string(e.Entry.Source) + ": " + e.Entry.Text
			}
		}
		if problem != "" {
			tb.mu.Lock()
			tb.problems = append(tb.problems, problem)
			tb.mu.Unlock()
		}
	}); err != nil {
		t.Fatalf("listen: %v", err)
	}
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("enable the log domain: %v", err)
	}
	if _, err := chromedp.Call(ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: browserZone}); err != nil {
		t.Fatalf("set the browser's time zone: %v", err)
	}
	tb.do(chromedp.EmulateViewport(desktopWidth, desktopHeight))
	return tb
}

// do runs actions with a deadline, failing the test with what was asked.
func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	tb.doWithin(15*time.Second, actions...)
}

func (tb *tab) doWithin(d time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, d)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("browser: %v\npage text:\n%s", err, tb.text())
	}
}

// eval returns a JavaScript expression's value.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitJS waits until a JavaScript expression is truthy.
func (tb *tab) waitJS(d time.Duration, expr string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, d+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(25*time.Millisecond), chromedp.WithPollingTimeout(d)))
	if err != nil {
		tb.t.Fatalf("waiting %v for %s: %v\npage text:\n%s", d, expr, err, tb.text())
	}
}

// text is the page's visible text, for failure messages.
func (tb *tab) text() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 3*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ''`))
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	return s
}

// open shows a page of the console by its address.
func (tb *tab) open(hash string) {
	tb.t.Helper()
	tb.do(chromedp.Navigate(tb.url + "/" + hash))
}

// go shows another page of the console without reloading it.
func (tb *tab) goTo(hash string) {
	tb.t.Helper()
	tb.do(chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`location.hash = %q`, hash)))
}

// byLabel is an XPath to the control labelled label, as a person finds it.
func byLabel(label string) string {
	return fmt.Sprintf(`//label[normalize-space()=%q]/following-sibling::*[self::input or self::select][1]`, label)
}

// button is an XPath to a button by its visible text, within scope (an
// XPath, "" for the whole page).
func button(scope, text string) string {
	return fmt.Sprintf(`%s//button[normalize-space()=%q]`, scope, text)
}

// press activates a button from the keyboard: focus, then Enter. Rows of
// the live calls move as calls come and go, and a mouse click goes to
// where the button was when it was found, which may by then be another
// row's; the focus stays on the button itself.
func (tb *tab) press(css string) {
	tb.t.Helper()
	tb.do(chromedp.Focus(chromedp.CSS(css)), chromedp.KeyEvent(kb.Enter))
}

// signIn signs in with a token the way a person does: the field labelled
// "API key or token" and the "Sign in" button.
func (tb *tab) signIn(token string) {
	tb.t.Helper()
	tb.open("")
	tb.do(
		chromedp.WaitVisible(byLabel("API key or token")),
		chromedp.SendKeys(byLabel("API key or token"), token),
		chromedp.Click(button("", "Sign in")),
		chromedp.WaitVisible(chromedp.ID("whoami")),
	)
}

// fits reports the page has no horizontal scrollbar at the current size.
func (tb *tab) fits() {
	tb.t.Helper()
	if w := eval[int](tb, `document.documentElement.scrollWidth - document.documentElement.clientWidth`); w > 0 {
		tb.t.Errorf("the page is %d px wider than the viewport:\n%s", w, tb.text())
	}
}

// labelled checks every form control of the page has a label.
func (tb *tab) labelled() {
	tb.t.Helper()
	unlabelled := eval[[]string](tb, `[...document.querySelectorAll('input, select, textarea')]
		.filter(e => e.type !== 'hidden' && e.type !== 'checkbox' && !e.labels.length && !e.getAttribute('aria-label'))
		.map(e => e.name || e.outerHTML)`)
	unlabelled = append(unlabelled, eval[[]string](tb, `[...document.querySelectorAll('input[type=checkbox]')]
		.filter(e => !e.labels.length).map(e => e.value)`)...)
	if len(unlabelled) > 0 {
		tb.t.Errorf("controls without a label: %q", unlabelled)
	}
}

// screenshot checks the page (its layout fits, its controls are
// labelled) and, with -update, writes the screenshot the README shows.
func (tb *tab) screenshot(name string) {
	tb.t.Helper()
	tb.fits()
	tb.labelled()
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		tb.t.Fatalf("screenshot %s: %v", name, err)
	}
	if len(png) < 1000 {
		tb.t.Fatalf("screenshot %s: only %d bytes", name, len(png))
	}
	if !*update {
		return
	}
	if err := os.MkdirAll(screenshotDir, 0o755); err != nil {
		tb.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(screenshotDir, name+".png"), png, 0o644); err != nil {
		tb.t.Fatal(err)
	}
}

// phone shows the page at phone width for fn, then back at desktop size.
func (tb *tab) phone(fn func()) {
	tb.t.Helper()
	tb.do(chromedp.EmulateViewport(phoneWidth, phoneHeight, chromedp.EmulateMobile, chromedp.EmulateTouch))
	defer tb.do(chromedp.EmulateViewport(desktopWidth, desktopHeight))
	fn()
}

// row is the CSS selector of a live or history row of a call.
func row(callID string) string { return fmt.Sprintf(`tr[data-call-id=%q]`, callID) }

func jsString(s string) string { return fmt.Sprintf("%q", s) }

func contains(haystack string, needles ...string) bool {
	for _, n := range needles {
		if !strings.Contains(haystack, n) {
			return false
		}
	}
	return true
}
