package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/engine"
	"github.com/onsale/onsale/httpapi/notify"
	"github.com/onsale/onsale/httpapi/payments"
)

// UserStore keeps user accounts: small values by key, durable when Put
// returns. *wal.Log satisfies it with its metadata store.
type UserStore interface {
	Get(key string) (value []byte, found bool, err error)
	Put(key string, value []byte) error
}

// Config configures a Server. Zero values take the defaults in brackets.
type Config struct {
	// Engine and Users are required, or both nil: the server then answers
	// 503 on its API routes until Attach hands them over (ready.go).
	Engine *engine.Engine
	Users  UserStore

	AdminToken string // required: bearer token of the admin routes
	DoorToken  string // required: bearer token of door staff (POST /v1/checkin)
	UserSecret []byte // required: HS256 key of buyer tokens
	// OIDC accepts buyer tokens from the site's identity provider too
	// (oidc.go); zero: HS256 tokens only.
	OIDC OIDCConfig
	// PaymentSecrets verify the webhook's signature; any one of them may
	// have signed it, so a secret can be rotated. At least one is required.
	PaymentSecrets [][]byte
	// Payments are the payment providers' verifiers (providers.go); a
	// provider left nil answers 404 provider_not_configured.
	Payments *payments.Providers
	// DataKey is the root secret the server derives its own keys from
	// (ticket signing keys, staff token hashes, buyer contact encryption):
	// at least 32 bytes, kept in the data directory, never changed.
	DataKey []byte

	MaxBodyBytes     int           // request body limit; beyond it 413 [64 KiB]
	MaxLoadBodyBytes int           // body limit of POST /v1/admin/sales:load with the admin token [8 MiB]
	ReadBufferSize   int           // also the request header limit; beyond it 431 [8 KiB]
	ReadTimeout      time.Duration // to read a whole request [5s]
	WriteTimeout     time.Duration // to write a whole response [5s]
	IdleTimeout      time.Duration // between requests on a keep-alive connection [60s]
	RequestTimeout   time.Duration // an engine call waits at most this long, plus up to a fifth [5s]
	Concurrency      int           // connections served at once [65536]

	// CORSOrigins are the origins (scheme://host[:port]) whose pages may
	// call the API from a browser, as ParseCORSOrigins returns them; "*"
	// allows any. Empty: same origin only, no CORS headers (cors.go).
	CORSOrigins []string

	// UserRatePerSec limits each buyer's purchases and cancels, taken
	// together: a token bucket per JWT sub, refilled at this rate and
	// holding UserBurst; beyond it 429 rate_limited. Zero turns it off
	// [off; main's flag default is on].
	UserRatePerSec   float64
	UserBurst        int // [ceil(UserRatePerSec)]
	UserRateUsersMax int // buyers whose buckets are kept; the least recently seen give way [65536]

	// QueueJoinAddrRatePerSec limits queue joins per client address
	// (queue.go), in bursts of twice as many; beyond it 429 rate_limited.
	// A join also takes from its buyer's bucket (UserRatePerSec). Zero
	// turns it off [off].
	QueueJoinAddrRatePerSec float64

	// Live availability streams (live.go).
	LiveMaxStreams   int           // open streams at most; beyond it 503 too_many_streams [20000]
	LiveMaxDuration  time.Duration // a stream ends after this; EventSource reconnects [1h]
	LiveHeartbeat    time.Duration // a ": ping" comment after this long without an event [15s]
	LivePollInterval time.Duration // how often a watched sale's view is looked at: updates per sale at most 1/this [200ms]

	// Backup writes a backup of the data directory to an absolute path
	// that must not exist (POST /v1/admin/backup, backup.go); it wraps
	// ErrBackupExists or ErrBackupDestination when it refuses. [nil: 404]
	Backup func(dest string) (BackupResult, error)

	// Notify delivers notifications (webhook endpoints, email); nil: the
	// webhook routes answer 404 (webhooks.go, httpapi/notify).
	Notify *notify.Notifier
	// RefundsWake, if set, is called after an admin retried a refund, so
	// the refund worker (httpapi/payouts) sends it at once.
	RefundsWake func()
	// Route, when set, sees every request first; when it returns true it
	// has answered it (httpapi/fleet: a node forwards a sale it does not
	// own to the node that does, or refuses it once it lost the sale).
	Route func(ctx *fasthttp.RequestCtx) bool

	TokenTTL   time.Duration // lifetime of tokens from POST /v1/sessions [1h]
	BcryptCost int           // password hash cost [10]

	Logger  *slog.Logger     // [slog.Default()]
	Metrics *metrics.Set     // where HTTP metrics are registered; /metrics writes it [a new set]
	Now     func() time.Time // the clock [time.Now]
}

func (c *Config) setDefaults() {
	switch {
	case (c.Engine == nil) != (c.Users == nil):
		panic("httpapi: Config.Engine and Config.Users go together: both, or neither until Attach")
	case c.AdminToken == "" || c.DoorToken == "" || len(c.UserSecret) == 0 || len(c.PaymentSecrets) == 0:
		panic("httpapi: Config.AdminToken, DoorToken, UserSecret and PaymentSecrets are required")
	case len(c.DataKey) < 32:
		panic("httpapi: Config.DataKey must hold at least 32 bytes")
	}
	if !(c.UserRatePerSec >= 0) || math.IsInf(c.UserRatePerSec, 0) || c.UserBurst < 0 {
		panic("httpapi: Config.UserRatePerSec and UserBurst must be finite and not negative")
	}
	if !(c.QueueJoinAddrRatePerSec >= 0) || math.IsInf(c.QueueJoinAddrRatePerSec, 0) { // the buckets' arithmetic needs a finite rate
		panic("httpapi: Config.QueueJoinAddrRatePerSec must be finite and not negative")
	}
	for _, p := range c.PaymentSecrets {
		if len(p) == 0 {
			panic("httpapi: an empty payment secret")
		}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	defInt := func(n *int, v int) {
		if *n <= 0 {
			*n = v
		}
	}
	defInt(&c.MaxBodyBytes, 64<<10)
	defInt(&c.MaxLoadBodyBytes, 8<<20)
	defInt(&c.ReadBufferSize, 8<<10)
	defInt(&c.Concurrency, 65536)
	defInt(&c.BcryptCost, 10)
	def(&c.ReadTimeout, 5*time.Second)
	def(&c.WriteTimeout, 5*time.Second)
	def(&c.IdleTimeout, 60*time.Second)
	def(&c.RequestTimeout, 5*time.Second)
	def(&c.TokenTTL, time.Hour)
	defInt(&c.LiveMaxStreams, 20000)
	def(&c.LiveMaxDuration, time.Hour)
	def(&c.LiveHeartbeat, 15*time.Second)
	def(&c.LivePollInterval, 200*time.Millisecond)
	defInt(&c.UserBurst, max(1, int(math.Ceil(c.UserRatePerSec))))
	defInt(&c.UserRateUsersMax, 1<<16)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Metrics == nil {
		c.Metrics = metrics.NewSet()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Server is the HTTP service. Create it with New, run it with Serve, stop it
// with Shutdown.
type Server struct {
	cfg         Config
	eng         *engine.Engine
	log         *slog.Logger
	now         func() time.Time
	srv         *fasthttp.Server
	m           *httpMetrics
	tokens      *tokenVerifier
	deadlines   *deadlines
	adminDigest [sha256.Size]byte
	doorDigest  [sha256.Size]byte
	users       *userService
	providers   providerMetrics // providers.go
	limiter     *userLimiter    // nil when UserRatePerSec is 0
	cors        *corsPolicy     // nil when no CORS origin is allowed
	credKeys    credentialKeys
	ticketKeys  *ticketKeys  // the sales' ticket signing keys (tickets.go)
	personal    personalKeys // attendees' and profiles' keys (realname.go)
	queue       queueKeys    // join ids and admission tokens (queue.go)
	addrLimiter *userLimiter // queue joins per client address; nil when QueueJoinAddrRatePerSec is 0
	live        *liveHub
	webhookMACs webhookMACs // the payment secrets' HMACs (webhook.go)

	// rateLimitedDetail is the detail of every 429 rate_limited, made once.
	rateLimitedDetail string

	ready atomic.Bool
	gate  gate // ready.go: 503 while starting, writes refused while the disk is low

	// realClock: Config.Now was left to time.Now, so the time fasthttp
	// read as it handed a request over (ctx.Time) is the clock's
	// (requestTime): a clock read costs 60-160 ns on the reference VM.
	realClock bool

	mu       sync.Mutex
	ln       net.Listener
	shutdown bool

	// beforeHandle, when set (tests only), runs before a route's handler.
	beforeHandle func(route)
}

// New builds a Server. It panics on a missing required field: that is a
// wiring bug, not a condition to handle.
func New(cfg Config) *Server {
	realClock := cfg.Now == nil
	cfg.setDefaults()
	s := &Server{
		realClock:   realClock,
		cfg:         cfg,
		eng:         cfg.Engine,
		log:         cfg.Logger,
		now:         cfg.Now,
		tokens:      newTokenVerifier(cfg.UserSecret),
		deadlines:   newDeadlines(cfg.RequestTimeout),
		adminDigest: sha256.Sum256([]byte(cfg.AdminToken)),
		doorDigest:  sha256.Sum256([]byte(cfg.DoorToken)),
		cors:        newCORSPolicy(cfg.CORSOrigins),
		credKeys:    newCredentialKeys(cfg.DataKey),
		ticketKeys:  newTicketKeys(cfg.DataKey),
		personal:    newPersonalKeys(cfg.DataKey),
		queue:       newQueueKeys(cfg.DataKey),
		webhookMACs: newWebhookMACs(cfg.PaymentSecrets),
	}
	if cfg.OIDC.enabled() {
		s.tokens.oidc = newOIDCVerifier(cfg.OIDC, cfg.Logger, cfg.Now()) // oidc.go
	}
	if cfg.Engine == nil {
		s.gate.closed.Store(gateStarting)
	}
	s.users = newUserService(s)
	if cfg.Notify != nil {
		cfg.Notify.SetSources(s.notifySources()) // webhooks.go
	}
	s.m = newHTTPMetrics(cfg.Metrics)
	s.registerRefundMetrics() // refundrules.go
	s.registerCredentialMetrics()
	s.providers = newProviderMetrics(cfg.Metrics)
	s.live = newLiveHub(s)
	if cfg.UserRatePerSec > 0 {
		s.limiter = newUserLimiter(cfg.UserRatePerSec, cfg.UserBurst, cfg.UserRateUsersMax, cfg.Metrics)
		s.rateLimitedDetail = fmt.Sprintf("too many purchases and cancels from this account: at most %g per second,"+
			" in bursts of up to %d; nothing was done, retry after Retry-After seconds", cfg.UserRatePerSec, cfg.UserBurst)
	}
	if cfg.QueueJoinAddrRatePerSec > 0 { // queue.go
		s.addrLimiter = newUserLimiter(cfg.QueueJoinAddrRatePerSec, max(1, int(2*cfg.QueueJoinAddrRatePerSec)), cfg.UserRateUsersMax,
			metrics.NewSet()) // its own set: the buyers' limiter registers the same names
	}
	s.srv = &fasthttp.Server{
		Handler:               s.handle,
		ErrorHandler:          s.handleConnError,
		HeaderReceived:        s.headerReceived,
		Name:                  "onsale",
		Concurrency:           cfg.Concurrency,
		ReadBufferSize:        cfg.ReadBufferSize,
		ReadTimeout:           cfg.ReadTimeout,
		WriteTimeout:          cfg.WriteTimeout,
		IdleTimeout:           cfg.IdleTimeout,
		MaxRequestBodySize:    cfg.MaxBodyBytes,
		CloseOnShutdown:       true,
		TCPKeepalive:          true,
		SecureErrorLogMessage: true,
		Logger:                fasthttpLogger{cfg.Logger},
	}
	return s
}

// Handler returns the request handler, for tests and benchmarks that drive
// a RequestCtx directly.
func (s *Server) Handler() fasthttp.RequestHandler { return s.handle }

// SetReady turns /readyz green (true) or red. main sets it after recovery
// and clears it before draining. /readyz stays red while the gate is closed
// (ready.go).
func (s *Server) SetReady(ready bool) { s.ready.Store(ready) }

// Serve answers requests on ln until Shutdown. It returns nil after
// Shutdown, else the error that stopped it.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.ln = ln
	s.mu.Unlock()
	err := s.srv.Serve(ln)
	s.mu.Lock()
	stopped := s.shutdown
	s.mu.Unlock()
	if stopped && (err == nil || errors.Is(err, net.ErrClosed)) {
		return nil
	}
	return err
}

// Shutdown turns readiness red, stops accepting connections and waits, at
// most until ctx is done, for the requests under way to be answered.
func (s *Server) Shutdown(ctx context.Context) error {
	s.ready.Store(false)
	s.mu.Lock()
	s.shutdown = true
	ln := s.ln
	s.mu.Unlock()
	s.live.close() // streams never end on their own: fasthttp would wait for them
	err := s.srv.ShutdownWithContext(ctx)
	if ln != nil {
		ln.Close() // in case Serve had not yet handed it to fasthttp
	}
	s.deadlines.stop()
	return err
}

// handle is the fasthttp handler: route, authorise, call the route's
// handler, recover a panic, count.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	if s.cfg.Route != nil && s.cfg.Route(ctx) {
		return
	}
	start := ctx.Time() // fasthttp's, read just before it called this
	if start.IsZero() { // a RequestCtx driven by a test
		start = time.Now()
	}
	r, param := matchRoute(ctx.Path())
	r = webhookRoute(meRoute(couponRoute(credentialRoute(r, ctx.Method()), ctx.Method()), ctx.Method()), ctx.Method()) // coupons.go, profile.go, webhooks.go
	r = offerRoute(followRoute(r, ctx.Method()), ctx.Method())                                                         // follows.go, offers.go
	defer func() {
		if p := recover(); p != nil {
			s.m.panics.Inc()
			s.log.Error("handler panicked", "route", routes[r].name, "method", string(ctx.Method()),
				"path", string(ctx.Path()), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			ctx.Response.Reset()
			s.applyCORS(ctx)
			writeProblem(ctx, codeInternal, "internal error", -1)
		}
		status := ctx.Response.StatusCode()
		s.m.observe(r, status, time.Since(start))
		if status >= 500 && status != fasthttp.StatusServiceUnavailable {
			s.log.Warn("request failed", "route", routes[r].name, "status", status)
		}
	}()
	corsAllowed := s.applyCORS(ctx)
	if r == routeNone {
		writeProblem(ctx, codeNotFound, "no route for this path; see /openapi.json", -1)
		return
	}
	spec := &routes[r]
	if isPreflight(ctx) {
		s.preflight(ctx, spec, corsAllowed)
		return
	}
	if string(ctx.Method()) != spec.method && !(spec.method == "GET" && ctx.IsHead()) {
		ctx.Response.Header.Set("Allow", spec.method)
		writeProblem(ctx, codeMethodNotAllowed, "this route allows "+spec.method+" only", -1)
		return
	}
	if !s.admit(ctx, r) {
		return
	}
	who, ok := s.authorize(ctx, spec.access)
	if !ok {
		return
	}
	if s.beforeHandle != nil {
		s.beforeHandle(r)
	}
	if auditedRoutes[r] && who.kind != principalBuyer { // audit.go; never on a buyer's request
		s.startAudit(ctx, r, param, who)
	}
	spec.handle(s, ctx, param, who)
}

// handleConnError answers a request fasthttp could not read.
func (s *Server) handleConnError(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	s.applyCORS(ctx)
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		s.answerBodyTooLarge(ctx) // bodylimit.go
	case errors.As(err, &small):
		writeProblem(ctx, codeHeaderTooLarge, fmt.Sprintf("the request header is larger than the limit (%d bytes)", s.cfg.ReadBufferSize), -1)
	case errors.As(err, &netErr) && netErr.Timeout():
		writeProblem(ctx, codeRequestTimeout, "the request was not received in time", -1)
	default:
		writeProblem(ctx, codeBadRequest, "the request is not valid HTTP/1.1", -1)
	}
	s.m.observe(routeNone, ctx.Response.StatusCode(), 0)
}

// requestTime is the time of a request by the server's clock: when
// fasthttp handed it over, which fasthttp reads anyway, or the clock now
// with a clock of the tests' own or a RequestCtx driven by a test.
func (s *Server) requestTime(ctx *fasthttp.RequestCtx) time.Time {
	if t := ctx.Time(); s.realClock && !t.IsZero() {
		return t
	}
	return s.now()
}

// reqCtx is the context of an engine call: its deadline is RequestTimeout
// to 1.2×RequestTimeout away, and it costs no allocation.
func (s *Server) reqCtx() context.Context { return s.deadlines.current() }

func (s *Server) healthz(ctx *fasthttp.RequestCtx, _ []byte, _ principal) {
	ctx.SetContentType("application/json")
	ctx.SetBodyString(`{"status":"ok"}` + "\n")
}

// metricsPage writes every family with its HELP text and TYPE
// (metrics_help.go).
func (s *Server) metricsPage(ctx *fasthttp.RequestCtx, _ []byte, _ principal) {
	ctx.SetContentType("text/plain; version=0.0.4; charset=utf-8")
	var page bytes.Buffer
	s.cfg.Metrics.WritePrometheus(&page)
	metrics.WriteProcessMetrics(&page)
	ctx.SetBody(describeMetrics(make([]byte, 0, page.Len()+page.Len()/4), page.Bytes()))
}

func (s *Server) openAPI(ctx *fasthttp.RequestCtx, _ []byte, _ principal) {
	ctx.SetContentType("application/json")
	ctx.SetBody(openAPIDocument)
}

// fasthttpLogger sends fasthttp's own lines (connection errors) to slog.
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Debug("fasthttp: " + fmt.Sprintf(format, args...))
}
