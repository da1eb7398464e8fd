package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/onsale/onsale/httpapi/console"
)

// consoleShots, when set, is where TestConsoleInBrowser writes its
// screenshots; the README's are made with
// go test ./httpapi -run TestConsoleInBrowser -console-screenshots ../docs/console
var consoleShots = flag.String("console-screenshots", "", "write the console's screenshots into this directory")

// Viewports of the screenshots: a laptop for the back office, a phone for
// the door.
const (
	desktopWidth, desktopHeight = 1200, 860
	phoneWidth, phoneHeight     = 390, 844
)

// TestConsoleInBrowser drives the console in Debian's chromium against a
// real server on a loopback port: an admin logs in with the keyboard,
// creates a sale (a wrong field first: the server's problem is shown next
// to that field), watches the live screen's availability move while
// purchases are made through the API, creates a staff credential and a
// coupon, finds an order and refunds it, opens the refunds, exports and
// audit screens; then the staff member logs in on a phone-sized screen and
// checks a ticket in by typing its code, twice (green, then red with the
// reason). Each screen is screenshotted (size checked), every control has
// a label, text has a contrast of at least 4.5:1, and the page logs no
// error and throws no exception. It reports the page's weight and the
// time to the first live update.
func TestConsoleInBrowser(t *testing.T) {
	exe := chromiumOrSkip(t)
	e := startEnv(t, envOptions{})
	b := newBrowser(t, exe)
	shots := *consoleShots
	if shots == "" {
		shots = t.TempDir()
	}
	began := time.Now()

	// The login page, and the bytes it took.
	b.do("open the console", chromedp.EmulateViewport(desktopWidth, desktopHeight),
		chromedp.Navigate(e.base+"/console/"), chromedp.WaitVisible(chromedp.CSS(`#login input[name=token]`)))
	firstLoad := b.bytes()
	b.checkCanFail()
	b.checkScreen("login")
	b.checkModules()
	b.screenshot(shots, "login.png", desktopWidth, desktopHeight)

	// Keyboard only: the token field has the focus, Enter logs in.
	b.do("log in as admin", chromedp.SendKeys(chromedp.CSS(`#login input[name=token]`), e.adminToken+kb.Enter),
		chromedp.WaitVisible(chromedp.CSS(`#screen-live[data-ready]`)))
	b.tabReaches("#nav-sales", "#nav-audit", "#logout")

	// A sale, first with closes_at before opens_at: the server refuses it
	// and the page puts its sentence next to closes_at.
	b.do("open the sale form", chromedp.Click(chromedp.CSS(`#nav-sales`)), chromedp.WaitVisible(chromedp.CSS(`#screen-sales[data-ready]`)),
		chromedp.Click(chromedp.CSS(`#new-sale`)), chromedp.WaitVisible(chromedp.CSS(`#sale-form`)))
	b.fill(map[string]string{
		`#sale-form input[name=id]`: "rush", `#sale-form input[name=name]`: "Rush night",
		`#sale-form input[name=opens_at]`: "2026-01-01T00:00:00Z", `#sale-form input[name=closes_at]`: "2025-01-01T00:00:00Z",
		`#sale-form input[name="tiers.0.id"]`: "floor", `#sale-form input[name="tiers.0.name"]`: "Floor",
		`#sale-form input[name="tiers.0.price_cents"]`: "5000", `#sale-form input[name="tiers.0.stock"]`: "10",
	})
	b.do("save an invalid sale", chromedp.Click(chromedp.CSS(`#save-sale`)),
		chromedp.WaitVisible(chromedp.CSS(`#sale-form input[name=closes_at][aria-invalid=true]`)))
	if got := b.text(`#sale-form input[name=closes_at] ~ .err`); !strings.Contains(got, "closes_at must be after opens_at") {
		t.Fatalf("error next to closes_at: %q", got)
	}
	b.checkScreen("sales")
	b.screenshot(shots, "sales.png", desktopWidth, desktopHeight)
	b.fill(map[string]string{`#sale-form input[name=closes_at]`: "2030-01-01T00:00:00Z"})
	b.do("save the sale", chromedp.Click(chromedp.CSS(`#save-sale`)), chromedp.WaitVisible(chromedp.CSS(`#sale-saved`)))
	b.waitJS(`[...document.querySelectorAll("#sales-list td")].some((td) => td.textContent === "Rush night")`)
	if s := e.want(e.do("GET", "/v1/sales/rush", nil, ""), 200, "").json(); s["name"] != "Rush night" {
		t.Fatalf("sale as created: %v", s)
	}

	// Bulk load a sale with rules the form does not show (price phases, a
	// package, real names, catalogue), then edit it and save unchanged:
	// the sale must come back exactly as it was.
	file := filepath.Join(t.TempDir(), "sales.json")
	if err := os.WriteFile(file, []byte(festSales), 0o644); err != nil {
		t.Fatal(err)
	}
	b.do("bulk load", chromedp.SetUploadFiles(chromedp.CSS(`#load-form input[type=file]`), []string{file}),
		chromedp.Click(chromedp.CSS(`#load-form button[type=submit]`)))
	b.waitJS(`document.querySelector("#load-form .status")?.textContent === "loaded: fest"`)
	before := string(e.want(e.do("GET", "/v1/sales/fest", nil, ""), 200, "").body)
	b.do("edit and save unchanged", chromedp.Click(chromedp.CSS(`button[aria-label="Edit fest"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#sale-form`)), chromedp.Click(chromedp.CSS(`#save-sale`)))
	b.waitJS(`document.querySelector("#sale-saved")?.textContent === "Sale fest saved." || document.querySelector("#sale-form-err, #sale-form .err:not(:empty)")?.textContent`)
	if got := b.text(`#sale-form-box`); got != "Sale fest saved." {
		t.Fatalf("saving fest unchanged: %q", got)
	}
	if after := string(e.want(e.do("GET", "/v1/sales/fest", nil, ""), 200, "").body); after != before {
		t.Fatalf("an unchanged edit changed the sale:\nbefore %s\nafter  %s", before, after)
	}

	// Live: 10 available; purchases through the API move it.
	b.do("open live", chromedp.Click(chromedp.CSS(`#nav-live`)), chromedp.WaitVisible(chromedp.CSS(`#screen-live[data-ready]`)))
	b.choose(`#screen-live select[name=sale]`, "rush")
	b.waitJS(`document.querySelector('.avail[data-tier="floor"]')?.textContent === "10"`)
	liveWaitMs := b.evalInt(`Number(document.documentElement.dataset.liveWaitMs)`)
	bought := time.Now()
	orderA := e.want(e.buy("rush", "alice", "k1", "floor", 2), 201, "").str("order_id")
	b.waitJS(`document.querySelector('.avail[data-tier="floor"]')?.textContent === "8"`)
	purchaseShown := time.Since(bought)
	orderB := e.want(e.buy("rush", "bob", "k2", "floor", 1), 201, "").str("order_id")
	e.want(e.pay("evt_a", "payment.succeeded", orderA, 10000, "EUR"), 200, "")
	e.want(e.pay("evt_b", "payment.succeeded", orderB, 5000, "EUR"), 200, "")
	b.waitJS(`document.querySelector('.avail[data-tier="floor"]')?.textContent === "7"`)
	b.waitJS(`document.querySelector('[data-metric="purchases"] dd') !== null`)
	b.checkScreen("live")
	b.screenshot(shots, "live.png", desktopWidth, desktopHeight)

	// A staff credential, its token shown once.
	b.do("open credentials", chromedp.Click(chromedp.CSS(`#nav-credentials`)), chromedp.WaitVisible(chromedp.CSS(`#screen-credentials[data-ready]`)))
	b.fill(map[string]string{`#credential-form input[name=name]`: "Door A", `#credential-form input[name=sales]`: "rush"})
	b.do("create a credential", chromedp.Click(chromedp.CSS(`#credential-form button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(`#credential-token`)))
	staffToken := b.text(`#credential-token`)
	if !strings.HasPrefix(staffToken, "stf_") {
		t.Fatalf("staff token %q", staffToken)
	}
	b.waitJS(`document.querySelector("#credential-list td")?.textContent.startsWith("cred_")`)
	b.checkScreen("credentials")
	b.eval(`document.querySelector("#credential-token").textContent = "stf_… (shown once)"`) // no token-shaped text in the README's picture
	b.screenshot(shots, "credentials.png", desktopWidth, desktopHeight)

	// A coupon.
	b.do("open coupons", chromedp.Click(chromedp.CSS(`#nav-coupons`)), chromedp.WaitVisible(chromedp.CSS(`#screen-coupons[data-ready]`)))
	b.fill(map[string]string{`#coupon-form input[name=code]`: "EARLY10", `#coupon-form input[name=percent_off]`: "10"})
	b.do("create a coupon", chromedp.Click(chromedp.CSS(`#coupon-form button[type=submit]`)))
	b.waitJS(`[...document.querySelectorAll("#coupon-list td")].some((td) => td.textContent === "EARLY10")`)
	b.checkScreen("coupons")
	b.screenshot(shots, "coupons.png", desktopWidth, desktopHeight)

	// Find bob's order, open it, refund it (two clicks).
	b.do("search orders", chromedp.Click(chromedp.CSS(`#nav-orders`)), chromedp.WaitVisible(chromedp.CSS(`#screen-orders[data-ready]`)))
	b.fill(map[string]string{`#order-search input[name=q]`: "bob"})
	b.do("search", chromedp.Click(chromedp.CSS(`#order-search button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`button[aria-label="Open order %s"]`, orderB))))
	b.do("open the order", chromedp.Click(chromedp.CSS(fmt.Sprintf(`button[aria-label="Open order %s"]`, orderB))),
		chromedp.WaitVisible(chromedp.CSS(`#refund-order`)),
		chromedp.Click(chromedp.CSS(`#refund-order`)), chromedp.Click(chromedp.CSS(`#refund-order`)))
	b.waitJS(`document.querySelector("#order-detail dl")?.textContent.includes("Statusrefunded")`)
	if st := e.want(e.do("GET", "/v1/orders/"+orderB, e.admin(), ""), 200, "").str("status"); st != "refunded" {
		t.Fatalf("order %s is %s after the console's refund", orderB, st)
	}
	b.waitJS(`document.querySelector("#order-tickets") !== null`)
	b.checkScreen("orders")
	b.screenshot(shots, "orders.png", desktopWidth, desktopHeight)

	// Refunds, exports, audit.
	b.do("open refunds", chromedp.Click(chromedp.CSS(`#nav-refunds`)), chromedp.WaitVisible(chromedp.CSS(`#screen-refunds[data-ready]`)),
		chromedp.Click(chromedp.CSS(`#look-owed`)))
	b.waitJS(`!document.querySelector("#refund-queue").textContent.includes("loading") &&
		!document.querySelector("#provider-refunds").textContent.includes("loading") && document.querySelector("#owed table") !== null`)
	// The admin refund above owes bob's money back: the provider refunds
	// table lists it, from GET /v1/admin/refunds.
	b.waitJS(fmt.Sprintf(`document.querySelector("#provider-refunds").textContent.includes(%q)`, orderB))
	b.checkScreen("refunds")
	b.screenshot(shots, "refunds.png", desktopWidth, desktopHeight)

	b.do("open exports", chromedp.Click(chromedp.CSS(`#nav-exports`)), chromedp.WaitVisible(chromedp.CSS(`#screen-exports[data-ready]`)),
		chromedp.Click(chromedp.CSS(`#show-report`)))
	b.waitJS(`document.querySelector("#rush-png")?.naturalWidth > 0`)
	if got := b.text(`#report-tiers tbody`); !strings.Contains(got, "Floor (floor)") {
		t.Errorf("report tiers: %q", got)
	}
	b.checkScreen("exports")
	b.screenshot(shots, "exports.png", desktopWidth, desktopHeight)

	b.do("open audit", chromedp.Click(chromedp.CSS(`#nav-audit`)), chromedp.WaitVisible(chromedp.CSS(`#screen-audit[data-ready]`)))
	b.waitJS(`[...document.querySelectorAll("#audit-entries td")].some((td) => td.textContent === "admin_refund")`)
	b.checkScreen("audit")
	b.screenshot(shots, "audit.png", desktopWidth, desktopHeight)
	b.tabReaches("#audit-form button[type=submit]")

	// The door, on a phone, as the staff member: alice's first ticket.
	code := e.codes(orderA)[0]
	b.do("log out", chromedp.Click(chromedp.CSS(`#logout`)), chromedp.WaitVisible(chromedp.CSS(`#login input[name=token]`)),
		chromedp.EmulateViewport(phoneWidth, phoneHeight, chromedp.EmulateMobile, chromedp.EmulateTouch),
		chromedp.SendKeys(chromedp.CSS(`#login input[name=token]`), staffToken+kb.Enter),
		chromedp.WaitVisible(chromedp.CSS(`#screen-door[data-ready]`)))
	if b.evalInt(`document.querySelectorAll("#nav-sales, #nav-orders, #nav-refunds, #nav-audit").length`) != 0 {
		t.Fatal("staff are offered admin screens")
	}
	b.do("scan a ticket", chromedp.SendKeys(chromedp.CSS(`#door-form input[name=gate]`), "north-3"),
		chromedp.SendKeys(chromedp.CSS(`#door-form input[name=code]`), code+kb.Enter))
	b.waitJS(`document.querySelector("#door-answer")?.dataset.result === "admit"`)
	b.checkScreen("door")
	b.screenshot(shots, "door.png", phoneWidth, phoneHeight)
	b.do("scan it again", chromedp.SendKeys(chromedp.CSS(`#door-form input[name=code]`), code+kb.Enter))
	b.waitJS(`document.querySelector("#door-answer")?.dataset.result === "refuse"`)
	if got := b.text(`#door-answer`); !strings.Contains(got, "Already checked in at north-3") {
		t.Fatalf("second scan: %q", got)
	}
	b.checkScreen("door refused")
	b.screenshot(shots, "door-refused.png", phoneWidth, phoneHeight)

	// The box office, as a seller of the sale: hold two tickets for a
	// named buyer, then take the money at the counter.
	seller := e.want(e.do("POST", "/v1/admin/credentials", e.admin(), `{"name":"Box 1","role":"seller","sales":["rush"]}`), 201, "").str("token")
	b.do("log in as a seller", chromedp.Click(chromedp.CSS(`#logout`)), chromedp.WaitVisible(chromedp.CSS(`#login input[name=token]`)),
		chromedp.SendKeys(chromedp.CSS(`#login input[name=token]`), seller+kb.Enter),
		chromedp.WaitVisible(chromedp.CSS(`#screen-box[data-ready]`)))
	b.choose(`#box-form select[name=sale]`, "rush")
	b.fill(map[string]string{`#box-form input[name=quantity]`: "2", `#box-form input[name=buyer_name]`: "Ann Lee",
		`#box-form input[name=buyer_email]`: "ann@example.com"})
	b.do("hold at the box office", chromedp.Click(chromedp.CSS(`#box-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#box-order button[type=submit]`)),
		chromedp.Click(chromedp.CSS(`#box-order button[type=submit]`)))
	b.waitJS(`document.querySelector("#box-order .status")?.textContent === "paid"`)
	boxOrder := strings.TrimPrefix(strings.SplitN(b.text(`#box-order h3`), ":", 2)[0], "Order ")
	if o := e.want(e.do("GET", "/v1/orders/"+boxOrder, e.admin(), ""), 200, "").json(); o["status"] != "paid" || o["channel"] != "box_office" || o["quantity"] != json.Number("2") {
		t.Fatalf("box-office order %s: %v", boxOrder, o)
	}
	b.checkScreen("box office")
	b.screenshot(shots, "box.png", phoneWidth, phoneHeight)

	// Ops without a token: the live screen only, fed by public routes.
	b.do("live without a token", chromedp.Click(chromedp.CSS(`#logout`)), chromedp.WaitVisible(chromedp.CSS(`#login input[name=token]`)),
		chromedp.Click(chromedp.CSS(`#login button.secondary`)), chromedp.WaitVisible(chromedp.CSS(`#screen-live[data-ready]`)))
	b.choose(`#screen-live select[name=sale]`, "rush")
	b.waitJS(`document.querySelector('.avail[data-tier="floor"]')?.textContent === "6"`) // 10, less alice 2, bob 1 (refunded: back), the box office 2
	if n := b.evalInt(`document.querySelectorAll("#nav a").length`); n != 1 {
		t.Errorf("ops see %d screens, want the live screen only", n)
	}

	b.noErrors()
	var assets int
	for _, a := range console.Assets() {
		assets += a.Bytes
	}
	t.Logf("first load of /console/ (login screen): %d bytes transferred (CDP Network.loadingFinished, headers included); "+
		"after every screen: %d bytes; embedded assets: %d bytes in %d files", firstLoad, b.bytes(), assets, len(console.Assets()))
	t.Logf("first live update: %d ms after the live screen opened; a purchase through the API shown on the live screen %v after it was sent (polled every 50 ms)",
		liveWaitMs, purchaseShown.Round(time.Millisecond))
	t.Logf("browser test took %v", time.Since(began).Round(time.Millisecond))
}

// festSales is a sale with every rule the sale form does not show.
const festSales = `{"sales":[{"id":"fest","name":"Summer fest","currency":"EUR",
  "opens_at":"2026-01-01T00:00:00Z","closes_at":"2030-01-01T00:00:00Z","hold_seconds":300,"per_user_limit":6,
  "event":"fest-27","venue":"Parc","city":"Lyon","starts_at":"2027-07-01T18:00:00Z","category":"concert",
  "description":"Three stages.\nBring water.","real_name":{"required":true,"per_document_limit":2},
  "tiers":[{"id":"adult","name":"Adult","price_cents":6000,"stock":500,
      "phases":[{"until":"2027-05-01T12:00:00Z","first":100,"price_cents":4000},{"first":300,"price_cents":5000}]},
    {"id":"child","name":"Child","price_cents":3000,"stock":200},
    {"id":"family","name":"Family pack","price_cents":15000,"components":[{"tier":"adult","quantity":2},{"tier":"child","quantity":2}]}]}]}`

// chromiumOrSkip finds Debian's chromium; without it the test skips, or
// fails under CI=true, where .ci/run installs it.
func chromiumOrSkip(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed (apt-get install -y chromium; .ci/run does)")
	}
	t.Skip("chromium is not installed (apt-get install -y chromium)")
	return ""
}

// browser is one headless chromium tab and what it reported: bytes
// received, and every error it logged.
type browser struct {
	t   *testing.T
	ctx context.Context

	mu       sync.Mutex
	received float64
	errs     []string
}

const (
	browserStepTimeout = 30 * time.Second
	browserTimeout     = 120 * time.Second
)

// newBrowser starts chromium for t; it is stopped when t ends.
func newBrowser(t *testing.T, exe string) *browser {
	t.Helper()
	// Chromium sometimes dies while it starts on a loaded machine (CI runs
	// every package at once): it exits before it prints its DevTools
	// address, with nothing but a crash report on stderr. That is the
	// browser, not the console, so a start is tried three times, each
	// failure logged; a page that fails after the start still fails.
	const starts = 3
	for try := 1; ; try++ {
		b, err := startBrowser(t, exe)
		if err == nil {
			return b
		}
		if try == starts || !strings.Contains(err.Error(), "failed to start") {
			t.Fatalf("cannot start chromium (try %d of %d): %v", try, starts, err)
		}
		t.Logf("chromium did not start (try %d of %d), starting it again: %v", try, starts, err)
	}
}

// startBrowser starts one headless chromium and opens its tab. On error
// everything it started is stopped.
func startBrowser(t *testing.T, exe string) (*browser, error) {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		// Shared memory in the temporary directory, not /dev/shm, which
		// a container may keep small.
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(desktopWidth, desktopHeight))
	whole, cancelWhole := context.WithTimeout(context.Background(), browserTimeout)
	alloc, cancelAlloc := chromedp.NewExecAllocator(whole, opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	stop := func() { cancelCtx(); cancelAlloc(); cancelWhole() }
	b := &browser{t: t, ctx: ctx}
	err := chromedp.Listen(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventLoadingFinished:
			b.received += ev.EncodedDataLength
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			text := d.Text
			if d.Exception != nil {
				text += " " + d.Exception.Description
			}
			b.errs = append(b.errs, fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber, text))
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				b.errs = append(b.errs, "console."+string(ev.Type)+": "+strings.Join(args, " "))
			}
		case *log.EventEntryAdded:
			en := ev.Entry
			// An API answer of 4xx is the page's business (a refused
			// save, a second scan): it shows it. Anything else the
			// browser logs as an error is a fault of the page: a missing
			// file, a CSP violation, a script error.
			if en.Level == log.EntryLevelError && !(en.Source == log.EntrySourceNetwork && strings.Contains(en.URL, "/v1/")) {
				b.errs = append(b.errs, fmt.Sprintf("log %s: %s %s", en.Source, en.Text, en.URL))
			}
		}
	})
	if err != nil {
		stop()
		return nil, err
	}
	t.Cleanup(stop)
	return b, nil
}

func (b *browser) do(step string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v\nbrowser errors: %v", step, err, b.errors())
	}
}

// fill sets the value of inputs by CSS selector, as pasting would.
func (b *browser) fill(values map[string]string) {
	b.t.Helper()
	for sel, v := range values {
		b.do("fill "+sel, chromedp.SetValue(chromedp.CSS(sel), v))
	}
}

func (b *browser) eval(expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](expr)); err != nil {
		b.t.Fatalf("%s: %v", expr, err)
	}
}

func (b *browser) evalInt(expr string) int {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
	defer cancel()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[float64](expr))
	if err != nil {
		b.t.Fatalf("%s: %v", expr, err)
	}
	return int(n)
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// choose picks an option of a select as a user would: value, then change.
func (b *browser) choose(sel, value string) {
	b.t.Helper()
	b.eval(fmt.Sprintf(`(() => { const s = document.querySelector(%q); s.value = %q; s.dispatchEvent(new Event("change")); })()`, sel, value))
}

// waitJS waits until the expression is true in the page.
func (b *browser) waitJS(expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond),
		chromedp.WithPollingTimeout(browserStepTimeout))); err != nil {
		b.t.Fatalf("waiting for %s: %v\nbrowser errors: %v", expr, err, b.errors())
	}
}

// tabReaches presses Tab from the top of the page until every selector
// has had the focus (at most 60 presses): the screen works from the
// keyboard.
func (b *browser) tabReaches(sels ...string) {
	b.t.Helper()
	b.eval(`document.activeElement?.blur(); window.__focused = new Set();
		document.addEventListener("focusin", (e) => window.__focused.add(e.target), { once: false })`)
	list, _ := json.Marshal(sels)
	want := fmt.Sprintf(`%s.every((s) => [...window.__focused].some((el) => el.matches(s)))`, list)
	for range 60 {
		b.do("press Tab", chromedp.KeyEvent(kb.Tab))
		if b.evalInt(want+` ? 1 : 0`) == 1 {
			return
		}
	}
	b.t.Fatalf("Tab never reached all of %v", sels)
}

// checkScreen: every control has a label (or an aria-label, or text for a
// button), and visible text has a contrast of at least 4.5:1 (WCAG AA)
// against the background it is drawn on.
func (b *browser) checkScreen(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
	defer cancel()
	for _, scheme := range []string{"dark", "light"} { // light last: the screenshots are light
		if err := chromedp.Do(ctx, colorScheme(scheme)); err != nil {
			b.t.Fatal(err)
		}
		bad, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](a11yCheck))
		if err != nil {
			b.t.Fatalf("%s: accessibility check: %v", name, err)
		}
		if len(bad) > 0 {
			b.t.Errorf("%s (%s theme): accessibility: %s", name, scheme, strings.Join(bad, "; "))
		}
	}
}

// colorScheme makes the page see prefers-color-scheme as dark or light.
func colorScheme(scheme string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
		return err
	})
}

// checkModules runs the page's pure functions on known input: the
// /metrics reader (rates, a histogram quantile as Prometheus computes it)
// and the mapping of a problem's sentence to the sale form's field.
func (b *browser) checkModules() {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
	defer cancel()
	got, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]any](moduleCheck, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("module check: %v", err)
	}
	want := map[string]any{
		"purchases": 4.0, "rejections": 1.0, "p99ms": 9.5, "tooMany": 0.25, "inbox": 7.0, "sync": nil, "queue": nil,
		"closes": "closes_at", "stock": "tiers.1.stock", "pointer": "tiers.0.price_cents", "hold": "hold_seconds", "none": nil,
	}
	for k, v := range want {
		if fmt.Sprint(got[k]) != fmt.Sprint(v) {
			b.t.Errorf("module check %s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}

// moduleCheck: two scrapes 2 s apart. Purchases: 8 created and 2 sold
// out (4/s and 1/s; replays are neither). 429s: 2 of 8 requests. Purchase
// latency: 100 new requests, 90 within 5 ms and 10 more within 10 ms, so
// the 99th is 9 of those 10 into the (5, 10] ms bucket: 9.5 ms, as
// Prometheus' histogram_quantile interpolates.
const moduleCheck = `(async () => {
  const m = await import("/console/metrics.js");
  const s = await import("/console/sales.js");
  const a = new m.Scrape([
    "# HELP onsale_purchases_total x", 'onsale_purchases_total{outcome="created"} 10', 'onsale_purchases_total{outcome="sold_out"} 1',
    'onsale_http_requests_total{route="purchase",status="201"} 10', 'onsale_http_requests_total{route="purchase",status="429"} 0',
    'onsale_http_request_duration_seconds_bucket{route="purchase",le="0.005"} 10',
    'onsale_http_request_duration_seconds_bucket{route="purchase",le="0.01"} 10',
    'onsale_http_request_duration_seconds_bucket{route="purchase",le="+Inf"} 10',
    'onsale_engine_inbox_depth{shard="0"} 3'].join("\n"), 0);
  const b = new m.Scrape([
    'onsale_purchases_total{outcome="created"} 18', 'onsale_purchases_total{outcome="sold_out"} 3', 'onsale_purchases_total{outcome="replayed"} 5',
    'onsale_http_requests_total{route="purchase",status="201"} 16', 'onsale_http_requests_total{route="purchase",status="429"} 2',
    'onsale_http_request_duration_seconds_bucket{route="purchase",le="0.005"} 100',
    'onsale_http_request_duration_seconds_bucket{route="purchase",le="0.01"} 110',
    'onsale_http_request_duration_seconds_bucket{route="purchase",le="+Inf"} 110',
    'onsale_engine_inbox_depth{shard="0"} 2', 'onsale_engine_inbox_depth{shard="1"} 7'].join("\n"), 2000);
  const n = m.night(a, b);
  const f = { closes_at: { id: "closes_at" }, hold_seconds: { id: "hold_seconds" }, name: { id: "name" } };
  const rows = [0, 1].map((i) => ({ id: { id: "tiers." + i + ".id" }, stock: { id: "tiers." + i + ".stock" }, price_cents: { id: "tiers." + i + ".price_cents" } }));
  const at = (d) => s.fieldOf(d, f, rows)?.id ?? null;
  return { purchases: n.purchasesPerSec, rejections: n.rejectionsPerSec, p99ms: Math.round(n.p99Seconds * 1e4) / 10,
    tooMany: n.tooManyShare, inbox: n.inboxDepth, sync: n.syncP99Seconds, queue: n.queue,
    closes: at("closes_at must be after opens_at"), stock: at("tiers[1]: stock must be 0 to 1000000"),
    pointer: at('cannot read "x" at /tiers/0/price_cents: want an integer'), hold: at("hold must be 1 s to 24 h"),
    none: at("a sale has 1 to 64 tiers") };
})()`

// checkCanFail shows that the accessibility check finds what it looks
// for: an input without a label and grey text on white.
func (b *browser) checkCanFail() {
	b.t.Helper()
	b.eval(`document.body.append(Object.assign(document.createElement("input"), { id: "probe-input" }),
		Object.assign(document.createElement("p"), { id: "probe-text", textContent: "pale", style: "color: #bbb; background: #fff" }))`)
	ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
	defer cancel()
	bad, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](a11yCheck))
	if err != nil {
		b.t.Fatal(err)
	}
	if len(bad) != 2 || !strings.Contains(bad[0], "probe-input") || !strings.Contains(bad[1], "pale") {
		b.t.Errorf("the accessibility check missed planted faults: %q", bad)
	}
	b.eval(`document.getElementById("probe-input").remove(); document.getElementById("probe-text").remove()`)
}

const a11yCheck = `(() => {
  const bad = [];
  for (const el of document.querySelectorAll("input, select, textarea, button, meter, video")) {
    if (el.closest("[hidden]")) continue;
    const labelled = el.getAttribute("aria-label") || [...(el.labels || [])].map((l) => l.textContent).join("").trim() ||
      (el.tagName === "BUTTON" && el.textContent.trim());
    if (!labelled) bad.push("no label: " + el.outerHTML.slice(0, 80));
  }
  const lum = (c) => {
    const [r, g, b] = c.match(/[\d.]+/g).map(Number).slice(0, 3).map((v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const m = getComputedStyle(el).backgroundColor.match(/[\d.]+/g);
      if (m && (m.length < 4 || Number(m[3]) > 0)) return getComputedStyle(el).backgroundColor;
    }
    return "rgb(255, 255, 255)";
  };
  for (const el of document.querySelectorAll("body *")) {
    if (![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
    if (el.closest("[hidden]") || el.getClientRects().length === 0 || el.disabled || el.closest(".skip")) continue;
    if (el.tagName === "OPTION") continue;
    const fg = lum(getComputedStyle(el).color), bg = lum(background(el));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    if (ratio < 4.5) bad.push("contrast " + ratio.toFixed(2) + ": " + el.tagName + " " + el.textContent.trim().slice(0, 40));
  }
  return bad;
})()`

// screenshot saves the viewport as a PNG and checks its size.
func (b *browser) screenshot(dir, name string, width, height int) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
	defer cancel()
	shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(shot))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if cfg.Width != width || cfg.Height != height {
		b.t.Errorf("screenshot %s is %dx%d, want %dx%d", name, cfg.Width, cfg.Height, width, height)
	}
	if err := os.WriteFile(filepath.Join(dir, name), shot, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func (b *browser) bytes() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return int(b.received)
}

func (b *browser) errors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errs...)
}

func (b *browser) noErrors() {
	b.t.Helper()
	for _, err := range b.errors() {
		b.t.Errorf("browser: %s", err)
	}
}
