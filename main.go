// Command onsale is a flash-sale ticket engine: one process that holds every
// sale's inventory in memory, decides each purchase in microseconds, logs
// every decision before it answers, and recovers exactly what it
// acknowledged after a crash.
//
//	go run .            # listens on 127.0.0.1:8080, data in ./onsale-data; Ctrl-C stops it
//	go run . -h         # every flag, each with an ONSALE_* variable
//	onsale backup -to DEST [-data DIR | -url URL]   # a consistent copy while it runs
//	onsale verify -data DEST                        # check a copy: exit 1 if it is not sound
//
// In scripts, build it and signal the binary: `go run . &` then `kill $!`
// stops the go tool, not the server it started.
//
// main wires the pieces and nothing else: flags and environment, secrets,
// the write-ahead log (wal), the engine, the HTTP service (httpapi),
// signals, and a graceful stop in reverse order.
package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/nats-io/nats.go"
	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/engine"
	"github.com/onsale/onsale/httpapi"
	"github.com/onsale/onsale/httpapi/fleet"
	"github.com/onsale/onsale/httpapi/notify"
	"github.com/onsale/onsale/httpapi/payments"
	"github.com/onsale/onsale/httpapi/payouts"
	"github.com/onsale/onsale/wal"
	"github.com/onsale/onsale/wal/jetstream"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3".
var version = "dev"

// stdout is where -version prints; tests replace it.
var stdout io.Writer = os.Stdout

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// The first signal stops gracefully; a second one ends the process
		// at once (the default action), as a user pressing Ctrl-C twice
		// expects.
		<-ctx.Done()
		stop()
	}()
	if err := run(ctx, os.Args[1:], os.Stderr, nil); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "onsale:", err)
		os.Exit(1)
	}
}

// options are the settings; each flag has an environment variable that
// sets its default.
type options struct {
	addr, data                                       string
	adminToken, userSecret, paymentSecret, doorToken string
	shards, batchMax, inboxMax                       int
	gomaxprocs                                       int
	tick, logMinSync, logSyncGather                  time.Duration
	archiveAfter                                     time.Duration // engine/archive.go
	logMinSyncWaiting                                int
	maxBody, maxLoadBody                             int
	readTimeout, writeTimeout, idleTimeout           time.Duration
	requestTimeout, shutdownTimeout                  time.Duration
	userRate                                         float64
	userBurst                                        int
	queueJoinAddrRate                                float64
	notifyBusyAbove                                  int     // notifications decided a second from which deliveries are paced
	notifyBusyRate                                   float64 // deliveries a second while paced
	minFreeDisk                                      byteSize
	logLevel                                         string
	level                                            slog.Level // parsed from logLevel
	version                                          bool
	corsOriginsList                                  string
	corsOrigins                                      []string // parsed from corsOriginsList
	payments                                         payments.Options
	autoRefunds                                      bool
	liveMaxStreams                                   int
	liveMaxDuration                                  time.Duration
	oidc                                             httpapi.OIDCConfig // buyer tokens from an identity provider
	smtp                                             notify.SMTPConfig  // email to buyers (httpapi/notify)
	smtpPasswordFile                                 string
	smtpStartTLS                                     string       // "true" or "false"
	fleet                                            fleetOptions // fleet nodes, at the end of this file; off unless -nats is set
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("onsale", flag.ContinueOnError)
	fs.SetOutput(stderr)
	env := envDefaults{fs: fs}
	env.str(&o.addr, "addr", "ONSALE_ADDR", "127.0.0.1:8080", "listen address")
	env.str(&o.data, "data", "ONSALE_DATA", "./onsale-data", "data directory: the log and secrets.json")
	env.str(&o.adminToken, "admin-token", "ONSALE_ADMIN_TOKEN", "", "admin bearer token [generated on first start into <data>/secrets.json]")
	env.str(&o.userSecret, "user-secret", "ONSALE_USER_SECRET", "", "HS256 key of buyer tokens (its bytes as given) [generated]")
	env.str(&o.paymentSecret, "payment-secret", "ONSALE_PAYMENT_SECRET", "", "webhook signing secret; comma-separated to accept several while rotating [generated]")
	env.str(&o.doorToken, "door-token", "ONSALE_DOOR_TOKEN", "", "bearer token of door staff for POST /v1/checkin [generated]")
	env.int(&o.shards, "shards", "ONSALE_SHARDS", 0, "shard goroutines; 0 = GOMAXPROCS")
	env.int(&o.gomaxprocs, "gomaxprocs", "ONSALE_GOMAXPROCS", 0,
		"threads running Go code at once while serving (runtime.GOMAXPROCS), set once the log is recovered; 0 = the runtime's choice, the CPUs onsale may use. On a few cores shared with another busy process, 1 serves purchases with less CPU and reads more slowly (README, Configuration)")
	env.int(&o.batchMax, "batch-max", "ONSALE_BATCH_MAX", 1024, "commands decided per batch (one log write)")
	env.int(&o.inboxMax, "inbox-max", "ONSALE_INBOX_MAX", 8192, "requests waiting per shard; beyond it 429")
	env.duration(&o.tick, "tick", "ONSALE_TICK", 100*time.Millisecond, "how often expired holds are released")
	env.duration(&o.archiveAfter, "archive-after", "ONSALE_ARCHIVE_AFTER", 0,
		"archive a sale (move it out of memory to disk) this long after its performance starts (or it closes); 0: only by POST .../{sale_id}:archive")
	env.duration(&o.logSyncGather, "log-sync-gather", "ONSALE_LOG_SYNC_GATHER", time.Millisecond,
		"after a log sync, how long a shard may hold new purchases so that the callers just answered join the next sync with them (never longer than a sync takes); 0 = never hold")
	env.duration(&o.logMinSync, "log-min-sync-interval", "ONSALE_LOG_MIN_SYNC_INTERVAL", 300*time.Microsecond,
		"under load (see -log-min-sync-waiting), the least time between two log syncs, so one sync covers more purchases; 0 = never wait")
	env.int(&o.logMinSyncWaiting, "log-min-sync-waiting", "ONSALE_LOG_MIN_SYNC_WAITING", 32,
		"-log-min-sync-interval applies while at least this many requests wait for the log sync; below it, syncs start at once")
	env.int(&o.maxBody, "max-body", "ONSALE_MAX_BODY", 64<<10, "request body limit in bytes; beyond it 413")
	env.int(&o.maxLoadBody, "max-load-body", "ONSALE_MAX_LOAD_BODY", 8<<20, "body limit of POST /v1/admin/sales:load")
	env.duration(&o.readTimeout, "read-timeout", "ONSALE_READ_TIMEOUT", 5*time.Second, "time to read a request")
	env.duration(&o.writeTimeout, "write-timeout", "ONSALE_WRITE_TIMEOUT", 5*time.Second, "time to write a response")
	env.duration(&o.idleTimeout, "idle-timeout", "ONSALE_IDLE_TIMEOUT", 60*time.Second, "keep-alive idle limit")
	env.duration(&o.requestTimeout, "request-timeout", "ONSALE_REQUEST_TIMEOUT", 5*time.Second, "longest wait for the engine's answer; then 503")
	env.duration(&o.shutdownTimeout, "shutdown-timeout", "ONSALE_SHUTDOWN_TIMEOUT", 10*time.Second, "longest wait for requests under way at stop")
	env.float(&o.userRate, "user-rate", "ONSALE_USER_RATE", 5, "purchases and cancels per second per buyer (JWT sub), together; beyond it 429; 0 = no limit")
	env.int(&o.userBurst, "user-burst", "ONSALE_USER_BURST", 20, "purchases and cancels a buyer may send at once before -user-rate applies")
	env.float(&o.queueJoinAddrRate, "queue-join-addr-rate", "ONSALE_QUEUE_JOIN_ADDR_RATE", 100,
		"queue joins per second per client address, in bursts of twice as many; beyond it 429; 0 = no limit")
	env.size(&o.minFreeDisk, "min-free-disk", "ONSALE_MIN_FREE_DISK", 256<<20,
		"below this free space on the data directory's disk, writes are refused (503) and /readyz is red; 0 = no check")
	env.str(&o.logLevel, "log-level", "ONSALE_LOG_LEVEL", "info", "debug, info, warn or error")
	env.str(&o.corsOriginsList, "cors-origins", "ONSALE_CORS_ORIGINS", "", "comma-separated origins whose pages may call the API from a browser (https://tickets.example); empty = same origin only")
	paymentFlags(&env, &o.payments)
	env.bool(&o.autoRefunds, "auto-refunds", "ONSALE_AUTO_REFUNDS", true,
		"send duplicate charges, mismatched and late payments back through the provider without an admin; false: they wait for POST /v1/admin/refunds/{id}:retry")
	env.int(&o.liveMaxStreams, "live-max-streams", "ONSALE_LIVE_MAX_STREAMS", 20000,
		"open GET /v1/sales/{id}/live streams at most (each ~35 KiB and two goroutines); beyond it 503 with Retry-After")
	env.duration(&o.liveMaxDuration, "live-max-duration", "ONSALE_LIVE_MAX_DURATION", time.Hour,
		"a live stream ends after this; browsers reconnect with Last-Event-ID and miss nothing")
	env.str(&o.oidc.JWKSFile, "jwks-file", "ONSALE_JWKS_FILE", "", "JWKS of the site's identity provider: buyer tokens signed RS256, ES256 or EdDSA by its keys are accepted (with -oidc-issuer and -oidc-audience)")
	env.str(&o.oidc.JWKSURL, "jwks-url", "ONSALE_JWKS_URL", "", "or the identity provider's jwks_uri (https), fetched and cached")
	env.str(&o.oidc.Issuer, "oidc-issuer", "ONSALE_OIDC_ISSUER", "", "the iss the identity provider's tokens must carry")
	env.str(&o.oidc.Audience, "oidc-audience", "ONSALE_OIDC_AUDIENCE", "", "an aud the identity provider's tokens must carry (the site's client id)")
	env.duration(&o.oidc.Refresh, "jwks-refresh", "ONSALE_JWKS_REFRESH", 10*time.Minute, "how often the JWKS is fetched again; a token with an unknown kid fetches it at once, at most every 30s")
	env.str(&o.smtp.Addr, "smtp-addr", "ONSALE_SMTP_ADDR", "", "host:port of the SMTP submission server that mails buyers their confirmation and tickets; empty = no email")
	env.str(&o.smtp.From, "smtp-from", "ONSALE_SMTP_FROM", "", "sender address of those emails (required with -smtp-addr)")
	env.str(&o.smtp.User, "smtp-user", "ONSALE_SMTP_USER", "", "SMTP user (PLAIN auth); its password comes from $ONSALE_SMTP_PASSWORD or -smtp-password-file")
	env.str(&o.smtpPasswordFile, "smtp-password-file", "ONSALE_SMTP_PASSWORD_FILE", "", "file holding the SMTP password")
	env.int(&o.notifyBusyAbove, "notify-busy-above", "ONSALE_NOTIFY_BUSY_ABOVE", 200,
		"log entries synced a second (all shards) from which webhook and email delivery yields to buyers (-notify-busy-rate); 0 = never")
	env.float(&o.notifyBusyRate, "notify-busy-rate", "ONSALE_NOTIFY_BUSY_RATE", 50, "deliveries a second, over all endpoints and email, while the engine is busy")
	env.str(&o.smtpStartTLS, "smtp-starttls", "ONSALE_SMTP_STARTTLS", "true", "require STARTTLS before authenticating and sending (true or false)")
	env.str(&o.smtp.PublicURL, "public-url", "ONSALE_PUBLIC_URL", "", "the URL buyers reach onsale at, for the tickets link in emails (https://tickets.example)")
	fleetFlags(&env, &o.fleet)
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	if env.err != nil {
		return o, env.err
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return o, checkOptions(&o)
}

// paymentFlags are the payment providers' settings (httpapi/payments); a
// provider whose settings are all empty is not configured, and its route
// answers 404 provider_not_configured. Key paths are relative to -data.
func paymentFlags(env *envDefaults, p *payments.Options) {
	env.str(&p.StripeWebhookSecret, "stripe-webhook-secret", "ONSALE_STRIPE_WEBHOOK_SECRET", "", "Stripe endpoint secret (whsec_...); comma-separated while rolling it")
	env.str(&p.AlipayAppID, "alipay-app-id", "ONSALE_ALIPAY_APP_ID", "", "Alipay app_id notifications must carry")
	env.str(&p.AlipayPublicKey, "alipay-public-key", "ONSALE_ALIPAY_PUBLIC_KEY", "", "path of the Alipay public key (PEM, certificate or bare base64)")
	env.str(&p.WeChatPayMchID, "wechatpay-mchid", "ONSALE_WECHATPAY_MCHID", "", "WeChat Pay merchant id (mchid)")
	env.str(&p.WeChatPayAppID, "wechatpay-appid", "ONSALE_WECHATPAY_APPID", "", "WeChat Pay appid")
	env.str(&p.WeChatPayAPIv3Key, "wechatpay-apiv3-key", "ONSALE_WECHATPAY_APIV3_KEY", "", "WeChat Pay APIv3 key: its 32 characters, or the path of a file holding them")
	env.str(&p.WeChatPayPlatformCerts, "wechatpay-platform-certs", "ONSALE_WECHATPAY_PLATFORM_CERTS", "", "comma-separated paths of WeChat Pay platform certificates (PEM; each named by its serial)")
	env.str(&p.WeChatPayPublicKeys, "wechatpay-public-keys", "ONSALE_WECHATPAY_PUBLIC_KEYS", "", "comma-separated PUB_KEY_ID_...=path of WeChat Pay public keys")
	env.str(&p.UnionPayMerID, "unionpay-mer-id", "ONSALE_UNIONPAY_MER_ID", "", "UnionPay merchant id (merId)")
	env.str(&p.UnionPayRootCert, "unionpay-root-cert", "ONSALE_UNIONPAY_ROOT_CERT", "", "path of UnionPay's root certificate (PEM)")
	env.str(&p.UnionPayMiddleCert, "unionpay-middle-cert", "ONSALE_UNIONPAY_MIDDLE_CERT", "", "path of UnionPay's middle certificate (PEM)")
	env.str(&p.UnionPayCertOwner, "unionpay-cert-owner", "ONSALE_UNIONPAY_CERT_OWNER", "", "owner in UnionPay's signing certificate CN [中国银联股份有限公司; 00040000:SIGN in its test environment]")
	// Refunds through the providers (httpapi/payments refund clients, the
	// httpapi/payouts worker).
	env.str(&p.StripeSecretKey, "stripe-secret-key", "ONSALE_STRIPE_SECRET_KEY", "", "Stripe secret key (sk_test_..., sk_live_... or a restricted rk_... with refunds write), or a path holding it: refunds go out through Stripe")
	env.str(&p.StripeAPIBase, "stripe-api-base", "ONSALE_STRIPE_API_BASE", "", "Stripe API base URL [https://api.stripe.com]")
	env.str(&p.AlipayPrivateKey, "alipay-private-key", "ONSALE_ALIPAY_PRIVATE_KEY", "", "path of the app's private key (PEM): refunds go out through alipay.trade.refund")
	env.str(&p.AlipayGateway, "alipay-gateway", "ONSALE_ALIPAY_GATEWAY", "", "Alipay gateway URL [https://openapi.alipay.com/gateway.do; sandbox: https://openapi-sandbox.dl.alipaydev.com/gateway.do]")
	env.str(&p.WeChatPayMerchantKey, "wechatpay-merchant-key", "ONSALE_WECHATPAY_MERCHANT_KEY", "", "path of the merchant API private key (apiclient_key.pem): refunds go out through WeChat Pay")
	env.str(&p.WeChatPayMerchantSerial, "wechatpay-merchant-serial", "ONSALE_WECHATPAY_MERCHANT_SERIAL", "", "serial number of the merchant API certificate")
	env.str(&p.WeChatPayAPIBase, "wechatpay-api-base", "ONSALE_WECHATPAY_API_BASE", "", "WeChat Pay API base URL [https://api.mch.weixin.qq.com]")
	env.str(&p.UnionPaySignKey, "unionpay-sign-key", "ONSALE_UNIONPAY_SIGN_KEY", "", "path of the merchant signing key (PEM, exported from acp_prod_sign.pfx): refunds go out through UnionPay")
	env.str(&p.UnionPaySignCert, "unionpay-sign-cert", "ONSALE_UNIONPAY_SIGN_CERT", "", "path of the merchant signing certificate (PEM, from the same .pfx): its serial is certId")
	env.str(&p.UnionPayBackURL, "unionpay-back-url", "ONSALE_UNIONPAY_BACK_URL", "", "backUrl of refunds: this server's https://<host>/v1/payments/unionpay")
	env.str(&p.UnionPayGateway, "unionpay-gateway", "ONSALE_UNIONPAY_GATEWAY", "", "UnionPay gateway [https://gateway.95516.com; test environment: https://gateway.test.95516.com]")
}

// shardsMax bounds -shards: more shard goroutines than cores gains
// nothing, and each has its own inbox and log range.
const shardsMax = 1024

// gomaxprocsMax bounds -gomaxprocs: more Ps than this is a typo.
const gomaxprocsMax = 1024

// checkOptions refuses settings that make no sense with an error that
// names the flag and its variable, rather than replacing them with
// defaults; it parses -log-level into o.level.
func checkOptions(o *options) error {
	var bad []string
	check := func(ok bool, flagName, format string, args ...any) {
		if !ok {
			env := "ONSALE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
			bad = append(bad, fmt.Sprintf("-%s ($%s) ", flagName, env)+fmt.Sprintf(format, args...))
		}
	}
	_, _, err := net.SplitHostPort(o.addr)
	check(err == nil, "addr", "must be host:port such as 127.0.0.1:8080, not %q", o.addr)
	check(o.data != "", "data", "must name a directory")
	check(o.shards >= 0 && o.shards <= shardsMax, "shards", "must be 0 (= GOMAXPROCS) to %d, not %d", shardsMax, o.shards)
	check(o.gomaxprocs >= 0 && o.gomaxprocs <= gomaxprocsMax, "gomaxprocs", "must be 0 (the runtime's choice) to %d, not %d", gomaxprocsMax, o.gomaxprocs)
	check(o.logMinSync >= 0 && o.logMinSync <= time.Second, "log-min-sync-interval", "must be 0 to 1s, not %s", o.logMinSync)
	check(o.archiveAfter >= 0, "archive-after", "must be 0 (off) or positive, not %s", o.archiveAfter)
	check(o.logSyncGather >= 0 && o.logSyncGather <= 100*time.Millisecond, "log-sync-gather", "must be 0 to 100ms, not %s", o.logSyncGather)
	check(o.logMinSyncWaiting >= 1, "log-min-sync-waiting", "must be at least 1, not %d", o.logMinSyncWaiting)
	check(o.batchMax >= 1, "batch-max", "must be at least 1, not %d", o.batchMax)
	check(o.inboxMax >= 1, "inbox-max", "must be at least 1, not %d", o.inboxMax)
	check(o.liveMaxStreams >= 1, "live-max-streams", "must be at least 1, not %d", o.liveMaxStreams)
	check(o.maxBody >= 1, "max-body", "must be at least 1 byte, not %d", o.maxBody)
	check(o.maxLoadBody >= 1, "max-load-body", "must be at least 1 byte, not %d", o.maxLoadBody)
	for _, d := range []struct {
		name, example string
		v             time.Duration
	}{
		{"tick", "100ms", o.tick}, {"read-timeout", "5s", o.readTimeout}, {"write-timeout", "5s", o.writeTimeout},
		{"idle-timeout", "60s", o.idleTimeout}, {"request-timeout", "5s", o.requestTimeout},
		{"shutdown-timeout", "10s", o.shutdownTimeout}, {"live-max-duration", "1h", o.liveMaxDuration},
	} {
		check(d.v > 0, d.name, "must be a duration above 0 such as %s, not %s", d.example, d.v)
	}
	check(o.userRate >= 0 && !math.IsInf(o.userRate, 0), "user-rate", "must be a number >= 0 (0 = no limit), not %v", o.userRate)
	check(o.queueJoinAddrRate >= 0 && !math.IsInf(o.queueJoinAddrRate, 0), "queue-join-addr-rate", "must be a number >= 0 (0 = no limit), not %v", o.queueJoinAddrRate)
	check(o.userRate == 0 || o.userBurst >= 1, "user-burst", "must be at least 1 when -user-rate is on, not %d", o.userBurst)
	check(o.level.UnmarshalText([]byte(o.logLevel)) == nil, "log-level", "must be debug, info, warn or error, not %q", o.logLevel)
	var corsErr error
	o.corsOrigins, corsErr = httpapi.ParseCORSOrigins(o.corsOriginsList)
	check(corsErr == nil, "cors-origins", "%v", corsErr)
	checkOIDC(&o.oidc, check)
	checkSMTP(o, check)
	checkFleet(o, check)
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}

// checkSMTP checks the email flags and reads the SMTP password.
func checkSMTP(o *options, check func(bool, string, string, ...any)) {
	check(o.notifyBusyAbove >= 0, "notify-busy-above", "must be >= 0 (0 = never pace), not %d", o.notifyBusyAbove)
	check(o.notifyBusyRate > 0 && !math.IsInf(o.notifyBusyRate, 0), "notify-busy-rate", "must be a number > 0, not %v", o.notifyBusyRate)
	check(o.smtpStartTLS == "true" || o.smtpStartTLS == "false", "smtp-starttls", "must be true or false, not %q", o.smtpStartTLS)
	o.smtp.StartTLS = o.smtpStartTLS != "false"
	if o.smtp.Addr == "" {
		return
	}
	_, _, err := net.SplitHostPort(o.smtp.Addr)
	check(err == nil, "smtp-addr", "must be host:port such as smtp.example:587, not %q", o.smtp.Addr)
	check(strings.Contains(o.smtp.From, "@") && !strings.ContainsAny(o.smtp.From, "\r\n<>"), "smtp-from", "must be an email address with -smtp-addr, not %q", o.smtp.From)
	o.smtp.Password = os.Getenv("ONSALE_SMTP_PASSWORD")
	if o.smtpPasswordFile != "" {
		b, err := os.ReadFile(o.smtpPasswordFile)
		check(err == nil, "smtp-password-file", "cannot be read: %v", err)
		o.smtp.Password = strings.TrimRight(string(b), "\r\n")
	}
}

// envDefaults defines flags whose default comes from an environment
// variable when it is set.
type envDefaults struct {
	fs  *flag.FlagSet
	err error
}

func (e *envDefaults) str(p *string, name, envName, def, usage string) {
	if v, ok := os.LookupEnv(envName); ok {
		def = v
	}
	e.fs.StringVar(p, name, def, usage+" ($"+envName+")")
}

func (e *envDefaults) int(p *int, name, envName string, def int, usage string) {
	if v, ok := os.LookupEnv(envName); ok {
		n, err := strconv.Atoi(v)
		if err != nil && e.err == nil {
			e.err = fmt.Errorf("$%s: %q is not an integer", envName, v)
		}
		def = n
	}
	e.fs.IntVar(p, name, def, usage+" ($"+envName+")")
}

func (e *envDefaults) float(p *float64, name, envName string, def float64, usage string) {
	if v, ok := os.LookupEnv(envName); ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil && e.err == nil {
			e.err = fmt.Errorf("$%s: %q is not a number", envName, v)
		}
		def = f
	}
	e.fs.Float64Var(p, name, def, usage+" ($"+envName+")")
}

func (e *envDefaults) size(p *byteSize, name, envName string, def byteSize, usage string) {
	*p = def
	if v, ok := os.LookupEnv(envName); ok {
		if err := p.Set(v); err != nil && e.err == nil {
			e.err = fmt.Errorf("$%s: %w", envName, err)
		}
	}
	e.fs.Var(p, name, usage+" ($"+envName+")")
}

func (e *envDefaults) bool(p *bool, name, envName string, def bool, usage string) {
	if v, ok := os.LookupEnv(envName); ok {
		b, err := strconv.ParseBool(v)
		if err != nil && e.err == nil {
			e.err = fmt.Errorf("$%s: %q is not true or false", envName, v)
		}
		def = b
	}
	e.fs.BoolVar(p, name, def, usage+" ($"+envName+")")
}

func (e *envDefaults) duration(p *time.Duration, name, envName string, def time.Duration, usage string) {
	if v, ok := os.LookupEnv(envName); ok {
		d, err := time.ParseDuration(v)
		if err != nil && e.err == nil {
			e.err = fmt.Errorf("$%s: %q is not a duration such as 5s", envName, v)
		}
		def = d
	}
	e.fs.DurationVar(p, name, def, usage+" ($"+envName+")")
}

// run is the whole program: tests call it in-process, on port 0, with a
// ctx they cancel to stop it. ready, if not nil, is called with the listen
// address once the server is ready.
func run(ctx context.Context, args []string, stderr io.Writer, ready func(addr string)) error {
	if len(args) > 0 {
		switch args[0] {
		case "backup":
			return runBackup(ctx, args[1:], stderr)
		case "verify":
			return runVerify(args[1:], stderr)
		case "verify-draw":
			return runVerifyDraw(args[1:], stderr)
		case "restore-fleet":
			return runRestoreFleet(ctx, args[1:], stderr) // the fleet part, at the end of this file
		}
	}
	return runWith(ctx, args, stderr, ready, seams{})
}

// seams are what tests replace; the zero value is the real thing.
type seams struct {
	fs        vfs.FS            // the log's filesystem [the disk]
	listening func(addr string) // called once the port is open, before recovery
	diskEvery time.Duration     // how often the free disk space is checked [1s]
}

// app is one run: what it has started, for stop to end in reverse order.
type app struct {
	o      options
	seams  seams
	logger *slog.Logger
	set    *metrics.Set
	srv    *httpapi.Server
	served chan error
	addr   string
	log    *wal.Log
	eng    *engine.Engine
	// notifier delivers webhooks and email (httpapi/notify): the engine's
	// outbox tap from recovery on, started once recovery ends.
	notifier *notify.Notifier
	// running is eng for Pebble's log writer goroutine, which asks
	// minSyncInterval after every sync; nil until recovery ends.
	running atomic.Pointer[engine.Engine]
	// backupLog is log for POST /v1/admin/backup; nil until recovery ends.
	backupLog atomic.Pointer[wal.Log]
	// queueSeedKey derives the queues' draw seeds (engine/queue.go): from
	// the data key, set by listen before recovery starts.
	queueSeedKey []byte

	// The refund worker (httpapi/payouts), started once the engine is
	// attached; refundsStop ends it and refundsDone says it has.
	providers   *payments.Providers
	refunds     atomic.Pointer[payouts.Worker]
	refundsStop context.CancelFunc
	refundsDone chan struct{}
	fleet       *fleetNode // at the end of this file; nil on a single node

	// The disk watcher's; checkDisk runs on one goroutine at a time.
	diskLow   bool          // the last check found less than -min-free-disk
	diskErr   bool          // the last check failed
	diskFree  atomic.Uint64 // bytes, for /metrics
	diskQuit  chan struct{} // closed by stop; nil when the disk is not watched
	diskEnded chan struct{} // closed when the watcher has returned
}

// recovery is what recovering the log gave.
type recovery struct {
	log *wal.Log
	eng *engine.Engine
	err error
}

func runWith(ctx context.Context, args []string, stderr io.Writer, ready func(addr string), sm seams) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if o.version {
		fmt.Fprintf(stdout, "onsale %s (%s)\n", version, runtime.Version())
		return nil
	}
	if o.gomaxprocs > 0 {
		// -gomaxprocs applies once the log is recovered (servingThreads);
		// the setting is restored on return for the tests that run onsale
		// in process (a real process exits).
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: o.level}))
	logger.Info("starting", "version", version, "data", o.data, "gomaxprocs", runtime.GOMAXPROCS(0))

	if err := os.MkdirAll(o.data, 0o700); err != nil {
		return fmt.Errorf("cannot create the data directory: %w", err)
	}
	sec, firstStart, err := loadSecrets(filepath.Join(o.data, "secrets.json"))
	if err != nil {
		return err
	}
	fromFlags := sec.override(o)

	// Listen first: while the log is replayed, /healthz is 200, /readyz
	// 503 and every API route 503 unavailable with Retry-After.
	a := &app{o: o, seams: sm, logger: logger, set: metrics.NewSet()}
	if o.fleet.natsURL != "" {
		if a.fleet, err = joinFleet(ctx, o, logger); err != nil {
			return err
		}
	}
	if err := a.listen(sec); err != nil {
		a.fleet.close()
		return err
	}
	if sm.listening != nil {
		sm.listening(a.addr)
	}
	recovered := make(chan recovery, 1)
	go func() {
		if a.fleet != nil {
			recovered <- a.fleet.recover(a)
			return
		}
		recovered <- a.recover()
	}()
	select {
	case r := <-recovered:
		if r.err != nil {
			a.stop(nil, nil)
			return r.err
		}
		a.log, a.eng = r.log, r.eng
	case <-ctx.Done():
		logger.Info("stopping while recovering", "reason", context.Cause(ctx).Error())
		return a.stop(recovered, nil)
	case err := <-a.served:
		logger.Error("server stopped", "err", err)
		return a.stop(recovered, err)
	}

	var users httpapi.UserStore = a.log
	if a.fleet != nil {
		users = a.fleet.users
	}
	a.srv.Attach(a.eng, users)
	var outbox notify.Store = a.log
	notifying := true
	if a.fleet != nil { // its partition's outbox, in JetStream, with -fleet-notify (fleetNode)
		outbox, notifying = a.fleet.outbox, a.fleet.outbox != nil
	}
	if notifying {
		if err := a.notifier.Start(outbox, a.eng); err != nil {
			a.logger.Error("cannot start notifications", "err", err)
			return a.stop(nil, err)
		}
	}
	a.startRefunds()
	diskLow := false
	if a.fleet == nil {
		diskLow = a.watchDisk()
	}
	a.srv.SetReady(true)
	printReady(stderr, a.addr, o.data, fromFlags, diskLow)
	if firstStart {
		printWelcome(stderr, a.addr, o.data, sec)
	}
	if ready != nil {
		ready(a.addr)
	}

	var serveErr error
	select {
	case <-ctx.Done():
		logger.Info("stopping", "reason", context.Cause(ctx).Error())
	case serveErr = <-a.served:
		logger.Error("server stopped", "err", serveErr)
	}
	return a.stop(nil, serveErr)
}

// listen opens the port and serves it, the API closed until recovery
// attaches the engine.
func (a *app) listen(sec secrets) error {
	o := a.o
	o.payments.Dir = o.data
	providers, err := payments.Load(o.payments)
	if err != nil {
		return fmt.Errorf("payment providers: %w", err)
	}
	a.notifier = notify.New(notify.Config{DataKey: []byte(sec.DataKey), SMTP: o.smtp,
		BusyAbove: cmp.Or(o.notifyBusyAbove, -1), BusyRate: o.notifyBusyRate, Logger: a.logger, Metrics: a.set})
	a.providers = providers
	a.srv = httpapi.New(httpapi.Config{
		Notify:     a.notifier,
		Payments:   providers,
		AdminToken: sec.AdminToken, DoorToken: sec.DoorToken, UserSecret: []byte(sec.UserSecret),
		PaymentSecrets: splitSecrets(sec.PaymentSecret), DataKey: []byte(sec.DataKey),
		MaxBodyBytes: o.maxBody, MaxLoadBodyBytes: o.maxLoadBody,
		ReadTimeout: o.readTimeout, WriteTimeout: o.writeTimeout, IdleTimeout: o.idleTimeout,
		RequestTimeout: o.requestTimeout, Logger: a.logger, Metrics: a.set,
		UserRatePerSec: o.userRate, UserBurst: o.userBurst, QueueJoinAddrRatePerSec: o.queueJoinAddrRate,
		CORSOrigins:    o.corsOrigins,
		LiveMaxStreams: o.liveMaxStreams, LiveMaxDuration: o.liveMaxDuration,
		Backup: a.backup,
		OIDC:   o.oidc,
		RefundsWake: func() {
			if w := a.refunds.Load(); w != nil {
				w.Wake()
			}
		},
		Route: a.fleet.route(a),
	})
	a.queueSeedKey = engine.DeriveQueueSeedKey([]byte(sec.DataKey))
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("cannot listen: %w", err)
	}
	a.served = make(chan error, 1)
	go func() { a.served <- a.srv.Serve(ln) }()
	a.addr = ln.Addr().String()
	a.logger.Info("listening", "addr", a.addr)
	return nil
}

// recover opens the log and rebuilds the engine's state from it.
func (a *app) recover() recovery {
	start := time.Now()
	log, err := wal.Open(filepath.Join(a.o.data, "wal"), wal.Options{FS: a.seams.fs, Logger: a.logger, Metrics: a.set,
		MinSyncInterval: a.minSyncInterval})
	if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK) {
		return recovery{err: fmt.Errorf("%w (is another onsale running on %s?)", err, a.o.data)}
	}
	if err != nil {
		return recovery{err: err}
	}
	a.logger.Info("log opened", "ms", time.Since(start).Milliseconds())

	start = time.Now()
	eng, err := engine.Open(engine.Config{
		Journal: log, Shards: a.o.shards, BatchMax: a.o.batchMax, InboxMax: a.o.inboxMax,
		TickInterval: a.o.tick, SyncGatherMax: orOff(a.o.logSyncGather), Logger: a.logger, Metrics: a.set,
		Outbox:       a.notifier,
		ArchiveAfter: a.o.archiveAfter,
		QueueSeedKey: a.queueSeedKey,
	})
	if err != nil {
		log.Close()
		return recovery{err: err}
	}
	logRecovery(a.logger, eng, time.Since(start))
	a.servingThreads()
	a.running.Store(eng)
	a.backupLog.Store(log)
	return recovery{log: log, eng: eng}
}

// backup serves POST /v1/admin/backup: the log's checkpoint and the files
// beside it in the data directory (wal.Backup).
func (a *app) backup(dest string) (httpapi.BackupResult, error) {
	log := a.backupLog.Load()
	if a.fleet != nil {
		shards := a.o.shards
		if eng := a.running.Load(); eng != nil {
			shards = eng.Shards()
		}
		return httpapi.BackupResult{}, a.fleet.backupAnswer(shards) // fleetNode, at the end of this file
	}
	if log == nil {
		return httpapi.BackupResult{}, errors.New("the log is not open yet")
	}
	start := time.Now()
	info, err := log.Backup(a.o.data, dest)
	switch {
	case errors.Is(err, wal.ErrBackupExists):
		return httpapi.BackupResult{}, fmt.Errorf("%w: %w", httpapi.ErrBackupExists, err)
	case errors.Is(err, wal.ErrBackupInsideData):
		return httpapi.BackupResult{}, fmt.Errorf("%w: %s and the data directory %s must not contain each other",
			httpapi.ErrBackupDestination, dest, a.o.data)
	case err != nil:
		return httpapi.BackupResult{}, err
	}
	a.logger.Info("backup written", "to", info.Path, "bytes", info.SizeBytes, "ms", time.Since(start).Milliseconds())
	return httpapi.BackupResult{Path: info.Path, SizeBytes: info.SizeBytes, LogPositions: info.Positions}, nil
}

// orOff maps a flag's 0 ("off") to the engine's negative off.
func orOff(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// minSyncInterval is group commit's other knob. Syncing as soon as anything
// waits gives the lowest latency, but an fdatasync costs CPU as well as
// time (about 0.2 ms of CPU on the reference machine), and on a night when
// the CPU is the limit, fewer, fuller syncs sell more. So the log waits
// -log-min-sync-interval between syncs only while at least
// -log-min-sync-waiting requests wait for one.
func (a *app) minSyncInterval() time.Duration {
	if eng := a.running.Load(); eng != nil && eng.AwaitingSync() >= int64(a.o.logMinSyncWaiting) {
		return a.o.logMinSync
	}
	return 0
}

// stop shuts down in reverse order of start and logs how long each step
// took: readiness red and the listener closed, requests under way
// answered, the engine's queues answered, the log closed. pending, if not
// nil, is a recovery still under way, whose engine and log are closed once
// it ends. All of it within -shutdown-timeout: past it stop returns an
// error without waiting longer, so that a log on a full or hung disk
// cannot keep the process alive. Exiting then is as safe as a crash: every
// acknowledged write was synced before its answer.
func (a *app) stop(pending <-chan recovery, serveErr error) error {
	timeout := a.o.shutdownTimeout
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	a.fleet.stopAcquiring()
	if a.diskQuit != nil {
		close(a.diskQuit)
		<-a.diskEnded
	}
	if err := a.srv.Shutdown(ctx); err != nil {
		a.logger.Warn("requests still under way at the shutdown timeout", "err", err)
	}
	if serveErr == nil {
		select {
		case serveErr = <-a.served:
		case <-ctx.Done():
		}
	}
	a.logger.Info("http server stopped", "ms", time.Since(start).Milliseconds())
	if a.refundsStop != nil {
		start = time.Now()
		a.refundsStop()
		select {
		case <-a.refundsDone:
			a.logger.Info("refund worker stopped", "ms", time.Since(start).Milliseconds())
		case <-ctx.Done():
		}
	}

	closed := make(chan error, 1)
	go func() { closed <- a.closeEngineAndLog(pending) }()
	select {
	case err := <-closed:
		if err != nil {
			return err
		}
		return serveErr
	case <-ctx.Done():
		a.logger.Error("the engine and the log did not stop within -shutdown-timeout; exiting without them",
			"timeout", timeout.String())
		return fmt.Errorf("the engine and the log did not stop within -shutdown-timeout (%s), "+
			"the disk may be full or hung; exiting without closing the log (every acknowledged write was synced)", timeout)
	}
}

// startRefunds starts the refund worker beside the shards: it sends the
// payouts the engine records through the providers' refund clients.
func (a *app) startRefunds() {
	var refunders map[string]payments.Refunder
	if a.providers != nil {
		refunders = a.providers.Refunds
	}
	w := payouts.New(payouts.Config{Engine: a.eng, Refunders: refunders, Auto: a.o.autoRefunds, Since: a.payoutsSince(),
		Logger: a.logger, Metrics: a.set})
	ctx, cancel := context.WithCancel(context.Background())
	a.refundsStop, a.refundsDone = cancel, make(chan struct{})
	a.refunds.Store(w)
	go func() {
		defer close(a.refundsDone)
		swept := make(chan struct{})
		go func() {
			defer close(swept)
			sweepExchanges(ctx, a.eng, a.logger)
		}()
		w.Run(ctx)
		<-swept
	}()
	names := make([]string, 0, len(refunders))
	for n := range refunders {
		names = append(names, n)
	}
	slices.Sort(names)
	a.logger.Info("refund worker started", "providers", strings.Join(names, ","), "auto", a.o.autoRefunds)
}

// exchangeSweepEvery is how often sweepExchanges looks for exchanges
// into another session cut by a crash.
const exchangeSweepEvery = 10 * time.Second

// sweepExchanges finishes, at start-up and then every exchangeSweepEvery,
// the exchanges into another session whose new order is paid and whose
// old order was not released (engine.SettleExchanges): a crash between
// their steps, or a dearer one whose difference was paid while the kick
// after the payment could not run (stopping, overloaded) or through the
// counter, leaves both orders valid until it runs.
func sweepExchanges(ctx context.Context, eng *engine.Engine, logger *slog.Logger) {
	t := time.NewTicker(exchangeSweepEvery)
	defer t.Stop()
	for {
		if n, err := eng.SettleExchanges(ctx); err != nil && ctx.Err() == nil {
			logger.Warn("exchanges into another session: sweep failed; retrying", "err", err)
		} else if n > 0 {
			logger.Info("exchanges into another session finished after a restart", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// payoutsSince is when this data directory first ran with the refund
// worker, recorded in the log's metadata on that first run: refunds the
// engine derives from older log entries are not sent (payouts.Config.Since).
// A fleet node has no Pebble log: it sends every payout.
func (a *app) payoutsSince() time.Time {
	if a.log == nil {
		return time.Time{}
	}
	const key = "payouts_since"
	if v, ok, err := a.log.Get(key); err == nil && ok {
		if ms, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			return time.UnixMilli(ms)
		}
	}
	now := time.Now()
	if err := a.log.Put(key, []byte(strconv.FormatInt(now.UnixMilli(), 10))); err != nil {
		a.logger.Error("cannot record when refunds began; every replayed refund may be sent", "err", err)
		return time.Time{}
	}
	return now
}

func (a *app) closeEngineAndLog(pending <-chan recovery) error {
	eng, log := a.eng, a.log
	if pending != nil {
		r := <-pending
		eng, log = r.eng, r.log
	}
	if a.notifier != nil { // first: a snapshot writer may wait for it (BeforeTruncate)
		start := time.Now()
		a.notifier.Close()
		a.logger.Info("notifications stopped", "ms", time.Since(start).Milliseconds())
	}
	if eng != nil {
		start := time.Now()
		eng.Close()
		a.logger.Info("engine stopped", "ms", time.Since(start).Milliseconds())
	}
	if log != nil {
		start := time.Now()
		if err := log.Close(); err != nil {
			return err
		}
		a.logger.Info("log closed", "ms", time.Since(start).Milliseconds())
	}
	a.fleet.close()
	return nil
}

// watchDisk checks the free space under the log now, then every
// seams.diskEvery until stop: below -min-free-disk writes are refused
// (503 unavailable) and /readyz is red, before the disk is full; above it
// both come back. Reads are served throughout. It returns whether the
// first check found the disk low.
func (a *app) watchDisk() (low bool) {
	if a.o.minFreeDisk == 0 {
		return false
	}
	if !a.checkDisk() {
		a.logger.Warn("cannot tell the free disk space; writes will not be refused before the disk is full")
		return false
	}
	low = a.diskLow // before the watcher below owns it
	a.set.NewGauge("onsale_disk_free_bytes", func() float64 { return float64(a.diskFree.Load()) })
	minFree := float64(a.o.minFreeDisk) // beside the figure, for alerts
	a.set.NewGauge("onsale_disk_free_min_bytes", func() float64 { return minFree })
	every := a.seams.diskEvery
	if every <= 0 {
		every = time.Second
	}
	a.diskQuit, a.diskEnded = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(a.diskEnded)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-a.diskQuit:
				return
			case <-t.C:
				a.checkDisk()
			}
		}
	}()
	return low
}

// checkDisk compares the free space with -min-free-disk and logs changes
// only. It reports whether the free space could be read.
func (a *app) checkDisk() bool {
	free, err := a.log.DiskFreeBytes()
	if err != nil {
		if !a.diskErr {
			a.logger.Warn("cannot read the free disk space", "err", err)
		}
		a.diskErr = true
		return false
	}
	a.diskErr = false
	a.diskFree.Store(free)
	minFree := uint64(a.o.minFreeDisk)
	low := free < minFree
	if low == a.diskLow {
		return true
	}
	a.diskLow = low
	if low {
		a.srv.RefuseWrites(fmt.Sprintf("the data directory's disk is nearly full (%s free, under the %s minimum): "+
			"writes are refused until space is freed; reads are served", mib(free), mib(minFree)))
		a.logger.Warn("disk nearly full: writes refused, /readyz red", "free_bytes", free, "min_free_bytes", minFree)
	} else {
		a.srv.RefuseWrites("")
		a.logger.Info("disk space back: writes accepted", "free_bytes", free, "min_free_bytes", minFree)
	}
	return true
}

// servingThreads applies -gomaxprocs once the state is recovered:
// recovery runs on every CPU the runtime gives it (the shards restore in
// parallel, the order table is prefilled and the key index built on
// goroutines of their own), and the shard count, fixed before it, does not
// follow the setting.
func (a *app) servingThreads() {
	if a.o.gomaxprocs > 0 {
		was := runtime.GOMAXPROCS(a.o.gomaxprocs)
		a.logger.Info("threads set for serving", "gomaxprocs", a.o.gomaxprocs, "during_recovery", was)
	}
}

func logRecovery(logger *slog.Logger, eng *engine.Engine, took time.Duration) {
	sales, err := eng.Sales(context.Background())
	if err != nil {
		logger.Warn("cannot count sales", "err", err)
	}
	orders := 0
	for _, s := range sales {
		orders += s.OrderCount
	}
	logger.Info("recovered", "ms", took.Milliseconds(), "shards", eng.Shards(), "sales", len(sales),
		"orders", orders, "holds", eng.HoldsOutstanding())
}

// printReady writes the one plain line of every start: where to reach the
// server, where its data and its tokens are (never the secrets: only the
// first start's welcome shows them), how to stop it.
func printReady(w io.Writer, addr, data string, fromFlags []string, diskLow bool) {
	tokens := "tokens in " + filepath.Join(data, "secrets.json")
	if len(fromFlags) > 0 {
		tokens += " (" + strings.Join(fromFlags, ", ") + " from the command line or environment)"
	}
	state := "ready"
	if diskLow {
		state = "up but refusing writes (the disk is nearly full, see -min-free-disk)"
	}
	fmt.Fprintf(w, "onsale is %s at http://%s; data in %s, %s; Ctrl-C or SIGTERM stops it\n", state, addr, data, tokens)
}

// secrets are kept in <data>/secrets.json (mode 0600), generated on first
// start; flags and the environment override them without rewriting it.
type secrets struct {
	AdminToken    string `json:"admin_token"`
	UserSecret    string `json:"user_secret"`
	PaymentSecret string `json:"payment_secret"`
	DoorToken     string `json:"door_token"`
	// DataKey is the root of the keys onsale derives for itself (ticket
	// signing keys per sale, hashes of staff tokens, encryption of buyers'
	// contact data). It has no flag: changing it voids every ticket issued.
	DataKey string `json:"data_key"`
}

// loadSecrets reads the file, generates what it lacks and writes it back;
// created is true when it did not exist.
func loadSecrets(path string) (s secrets, created bool, err error) {
	raw, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		created = true
	case err != nil:
		return s, false, fmt.Errorf("cannot read secrets: %w", err)
	default:
		if err := json.Unmarshal(raw, &s); err != nil {
			return s, false, fmt.Errorf("%s: %w", path, err)
		}
	}
	changed := false
	for _, p := range []*string{&s.AdminToken, &s.UserSecret, &s.PaymentSecret, &s.DoorToken, &s.DataKey} {
		if *p == "" {
			*p = newSecret()
			changed = true
		}
	}
	if changed {
		out, _ := json.MarshalIndent(s, "", "  ")
		if err := writeFileSynced(path, append(out, '\n'), 0o600); err != nil {
			return s, false, fmt.Errorf("cannot write secrets: %w", err)
		}
	}
	return s, created, nil
}

// override applies the secrets given by flag or environment and returns
// those flags' names.
func (s *secrets) override(o options) (fromFlags []string) {
	for _, p := range []struct {
		dst  *string
		v    string
		flag string
	}{
		{&s.AdminToken, o.adminToken, "-admin-token"}, {&s.UserSecret, o.userSecret, "-user-secret"},
		{&s.PaymentSecret, o.paymentSecret, "-payment-secret"}, {&s.DoorToken, o.doorToken, "-door-token"},
	} {
		if p.v != "" {
			*p.dst = p.v
			fromFlags = append(fromFlags, p.flag)
		}
	}
	return fromFlags
}

func splitSecrets(s string) [][]byte {
	var out [][]byte
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, []byte(p))
		}
	}
	return out
}

// newSecret is 32 random bytes, base64url: 43 characters safe in a shell,
// a header and JSON.
func newSecret() string {
	var b [32]byte
	rand.Read(b[:]) // never fails (crypto/rand panics instead)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// writeFileSynced replaces path atomically: a synced temporary file renamed
// over it, then the directory synced.
func writeFileSynced(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

// printWelcome shows, on first start and after printReady's line, the admin token and shell lines that
// load a demo sale, register a buyer, buy and pay. They work when pasted
// (they need curl, and openssl for the payment).
func printWelcome(w io.Writer, addr, data string, s secrets) {
	now := time.Now().UTC().Truncate(time.Second)
	sale := fmt.Sprintf(`{"name":"Demo concert","currency":"EUR","opens_at":"%s","closes_at":"%s","hold_seconds":600,`+
		`"per_user_limit":4,"tiers":[{"id":"floor","name":"Floor","price_cents":5000,"stock":100},`+
		`{"id":"seat","name":"Seated","price_cents":8000,"stock":50}]}`,
		now.Format(time.RFC3339), now.AddDate(0, 0, 30).Format(time.RFC3339))
	paySecret := strings.TrimSpace(strings.Split(s.PaymentSecret, ",")[0])
	fmt.Fprintf(w, `First start: secrets were created in %[2]s (mode 0600); later starts reuse them.

  admin token: %[3]s

Try it: paste these lines into a shell.

URL=http://%[1]s ADMIN=%[3]s PAYSECRET=%[4]s
# load a demo sale that opens now
curl -s -X PUT $URL/v1/admin/sales/demo -H "Authorization: Bearer $ADMIN" -d '%[5]s'
# register a buyer and log in
curl -s $URL/v1/users -d '{"username":"alice","password":"correct horse"}'
TOKEN=$(curl -s $URL/v1/sessions -d '{"username":"alice","password":"correct horse"}' | sed -E 's/.*"token":"([^"]+)".*/\1/')
# buy two tickets: a pending order that holds them for 10 minutes
ORDER=$(curl -s $URL/v1/sales/demo/purchase -H "Authorization: Bearer $TOKEN" -H "Idempotency-Key: demo-$(date +%%s)" -d '{"tier":"floor","quantity":2}' | sed -E 's/.*"order_id":"([^"]+)".*/\1/'); echo $ORDER
# pay it, as the payment provider would
BODY='{"id":"evt_'$ORDER'","type":"payment.succeeded","order_id":"'$ORDER'","amount_cents":10000,"currency":"EUR"}'
T=$(date +%%s); SIG=$(printf '%%s.%%s' "$T" "$BODY" | openssl dgst -sha256 -hmac "$PAYSECRET" -r | cut -d' ' -f1)
curl -s $URL/v1/payments/webhook -H "Onsale-Signature: t=$T,v1=$SIG" -d "$BODY"
# the paid order with its ticket codes, and the sale's availability
curl -s $URL/v1/orders/$ORDER -H "Authorization: Bearer $TOKEN"
curl -s $URL/v1/sales/demo

`, addr, filepath.Join(data, "secrets.json"), s.AdminToken, paySecret, sale)
}

// byteSize is a flag value in bytes, written as 268435456, 256MiB or 1.5GiB
// (KB, MB, GB, TB are powers of 1000).
type byteSize uint64

var byteUnits = []struct {
	suffix string
	n      float64
}{
	{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1},
}

func (b *byteSize) String() string {
	for _, u := range byteUnits[:4] {
		if n := uint64(u.n); *b != 0 && uint64(*b)%n == 0 {
			return strconv.FormatUint(uint64(*b)/n, 10) + u.suffix
		}
	}
	return strconv.FormatUint(uint64(*b), 10)
}

func (b *byteSize) Set(s string) error {
	num, unit := strings.TrimSpace(s), 1.0
	for _, u := range byteUnits {
		if rest, ok := strings.CutSuffix(num, u.suffix); ok {
			num, unit = strings.TrimSpace(rest), u.n
			break
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || !(f >= 0) || f*unit >= 1<<63 {
		return fmt.Errorf("%q is not a size such as 256MiB", s)
	}
	*b = byteSize(f * unit)
	return nil
}

func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// runBackup is `onsale backup`: with -url, through the running server
// (POST /v1/admin/backup, DEST on its disk); otherwise on the data
// directory of a stopped one. A running server holds the log's lock, so
// opening it then fails and the error says to use -url.
func runBackup(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("onsale backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	env := envDefaults{fs: fs}
	var data, to, url, token string
	env.str(&data, "data", "ONSALE_DATA", "./onsale-data", "data directory to back up (and, with -url, where secrets.json gives the admin token)")
	fs.StringVar(&to, "to", "", "directory to write; must not exist (with -url: an absolute path on the server's disk)")
	fs.StringVar(&url, "url", "", "base URL of the running server (http://127.0.0.1:8080): back up through it")
	env.str(&token, "admin-token", "ONSALE_ADMIN_TOKEN", "", "admin token for -url [read from <data>/secrets.json]")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case env.err != nil:
		return env.err
	case fs.NArg() > 0:
		return fmt.Errorf("backup: unexpected argument %q", fs.Arg(0))
	case to == "":
		return errors.New("backup: -to DEST is required: a directory that does not exist yet")
	}
	if url != "" {
		return backupThrough(ctx, url, token, data, to)
	}
	logDir := filepath.Join(data, "wal")
	if _, err := os.Stat(logDir); err != nil {
		return fmt.Errorf("backup: no log in %s: %w", data, err)
	}
	log, err := wal.Open(logDir, wal.Options{Logger: slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	// Another process's lock is EAGAIN; this process's own (tests run the
	// server in-process) is Pebble's "lock held by current process".
	if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK) ||
		err != nil && strings.Contains(err.Error(), "lock held") {
		return fmt.Errorf("backup: %s is in use by a running onsale; back up through it: "+
			"onsale backup -data %s -url http://ITS-ADDRESS -to /absolute/path/on/its/disk", data, data)
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	info, err := log.Backup(data, to)
	if cerr := log.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	printBackup(info.Path, info.SizeBytes, info.Positions)
	return nil
}

// backupThrough asks the server at url for a backup to dest.
func backupThrough(ctx context.Context, url, token, data, dest string) error {
	if !filepath.IsAbs(dest) {
		return fmt.Errorf("backup: with -url, -to must be an absolute path on the server's disk, not %q", dest)
	}
	if token == "" {
		sec, err := os.ReadFile(filepath.Join(data, "secrets.json"))
		var s secrets
		if err == nil {
			err = json.Unmarshal(sec, &s)
		}
		if err != nil || s.AdminToken == "" {
			return fmt.Errorf("backup: no admin token: pass -admin-token or -data with its secrets.json (%v)", err)
		}
		token = s.AdminToken
	}
	body, _ := json.Marshal(map[string]string{"to": dest})
	req, err := http.NewRequestWithContext(ctx, "POST", strings.TrimSuffix(url, "/")+"/v1/admin/backup", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode != http.StatusCreated {
		return fmt.Errorf("backup: the server answered %s: %s", res.Status, bytes.TrimSpace(raw))
	}
	var out struct {
		Path         string   `json:"path"`
		SizeBytes    int64    `json:"size_bytes"`
		LogPositions []uint64 `json:"log_positions"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return fmt.Errorf("backup: unexpected answer %q: %w", raw, err)
	}
	printBackup(out.Path, out.SizeBytes, out.LogPositions)
	return nil
}

func printBackup(path string, size int64, positions []uint64) {
	fmt.Fprintf(stdout, "backup written to %s (%s; last log position per shard %v); check it with: onsale verify -data %s\n",
		path, mib(uint64(size)), positions, path)
}

// runVerify is `onsale verify`: it opens a copy read-only, reads every
// block of its log (checksums), rebuilds the state from every snapshot and
// log entry as a start would (engine.Check), and needs secrets.json beside
// it. Anything wrong is an error, so the exit status is 1.
func runVerify(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("onsale verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var data string
	fs.StringVar(&data, "data", "", "the copy (or a stopped server's data directory) to check")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if data == "" || fs.NArg() > 0 {
		return errors.New("verify: usage: onsale verify -data DIR")
	}
	raw, err := os.ReadFile(filepath.Join(data, "secrets.json"))
	var s secrets
	if err == nil {
		err = json.Unmarshal(raw, &s)
	}
	if err == nil && s.DataKey == "" {
		err = errors.New("it has no data_key")
	}
	if err != nil {
		return fmt.Errorf("verify: %s: secrets.json is needed to restore (its data key signs the tickets): %w", data, err)
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	log, err := wal.Open(filepath.Join(data, "wal"), wal.Options{ReadOnly: true, Logger: logger})
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	defer log.Close()
	keys, err := log.Check()
	if err != nil {
		return fmt.Errorf("verify: %s is corrupt: %w", data, err)
	}
	sum, err := engine.Check(log, logger)
	if err != nil {
		return fmt.Errorf("verify: %s is corrupt: %w", data, err)
	}
	fmt.Fprintf(stdout, "%s is sound: %d keys read, %d shards, %d sales, %d orders\n", data, keys, sum.Shards, sum.Sales, sum.Orders)
	return nil
}

// checkOIDC checks the identity provider's flags: all or none, a JWKS file
// that parses, an https jwks_uri (http only on loopback, for tests).
func checkOIDC(c *httpapi.OIDCConfig, check func(ok bool, flagName, format string, args ...any)) {
	if c.JWKSFile == "" && c.JWKSURL == "" {
		check(c.Issuer == "" && c.Audience == "", "oidc-issuer", "and -oidc-audience need -jwks-file or -jwks-url")
		return
	}
	check(c.JWKSFile == "" || c.JWKSURL == "", "jwks-url", "takes the place of -jwks-file: give one of them")
	check(c.Issuer != "", "oidc-issuer", "is required with a JWKS: the iss of the identity provider's tokens")
	check(c.Audience != "", "oidc-audience", "is required with a JWKS: the aud the identity provider's tokens carry for this site")
	check(c.Refresh >= time.Minute, "jwks-refresh", "must be at least 1m, not %s", c.Refresh)
	if c.JWKSFile != "" {
		err := httpapi.CheckJWKSFile(c.JWKSFile)
		check(err == nil, "jwks-file", "%v", err)
	}
	if c.JWKSURL != "" {
		u, err := url.Parse(c.JWKSURL)
		loopback := err == nil && (u.Hostname() == "localhost" || net.ParseIP(u.Hostname()).IsLoopback())
		check(err == nil && (u.Scheme == "https" || u.Scheme == "http" && loopback) && u.Host != "",
			"jwks-url", "must be an https URL such as https://id.example/.well-known/jwks.json, not %q", c.JWKSURL)
	}
}

// runVerifyDraw is "onsale verify-draw [-join-id HEX] FILE": it checks a
// draw as GET /v1/sales/{sale_id}/queue/draw published it (FILE, or - for
// standard input): the seed against its commitment, the join ids sorted
// and unique, and the order against engine.DrawOrder of the seed and the
// join ids. With -join-id it also says where that buyer was drawn.
func runVerifyDraw(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("onsale verify-draw", flag.ContinueOnError)
	fs.SetOutput(out)
	var mine string
	fs.StringVar(&mine, "join-id", "", "a join id (GET .../queue/me) to find in the order")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("verify-draw: usage: onsale verify-draw [-join-id HEX] FILE (- for standard input)")
	}
	var raw []byte
	var err error
	if fs.Arg(0) == "-" {
		raw, err = io.ReadAll(os.Stdin)
	} else {
		raw, err = os.ReadFile(fs.Arg(0))
	}
	if err != nil {
		return fmt.Errorf("verify-draw: %w", err)
	}
	var d struct {
		SaleID     string   `json:"sale_id"`
		SeedSHA256 string   `json:"seed_sha256"`
		Drawn      bool     `json:"drawn"`
		Seed       string   `json:"seed"`
		JoinIDs    []string `json:"join_ids"`
		Order      []string `json:"order"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		return fmt.Errorf("verify-draw: not a published draw: %w", err)
	}
	if !d.Drawn {
		return fmt.Errorf("verify-draw: sale %q has not drawn yet (its seed's SHA-256 is %s)", d.SaleID, d.SeedSHA256)
	}
	var commitment, seed [32]byte
	if err := decodeHex(commitment[:], d.SeedSHA256); err != nil {
		return fmt.Errorf("verify-draw: seed_sha256: %w", err)
	}
	if err := decodeHex(seed[:], d.Seed); err != nil {
		return fmt.Errorf("verify-draw: seed: %w", err)
	}
	ids, err := decodeJoinIDs(d.JoinIDs)
	if err != nil {
		return fmt.Errorf("verify-draw: join_ids: %w", err)
	}
	order, err := decodeJoinIDs(d.Order)
	if err != nil {
		return fmt.Errorf("verify-draw: order: %w", err)
	}
	if err := engine.VerifyDraw(commitment, seed, ids, order); err != nil {
		return fmt.Errorf("verify-draw: sale %q: %w", d.SaleID, err)
	}
	fmt.Fprintf(out, "draw of sale %q verified: SHA-256(seed) is the commitment, and the order of its %d buyers is reproduced\n", d.SaleID, len(ids))
	if mine != "" {
		place := slices.Index(d.Order, strings.ToLower(mine))
		if place < 0 {
			return fmt.Errorf("verify-draw: join id %s is not in the draw", mine)
		}
		fmt.Fprintf(out, "join id %s was drawn at place %d (0 is first)\n", mine, place)
	}
	return nil
}

func decodeHex(dst []byte, s string) error {
	if hex.DecodedLen(len(s)) != len(dst) {
		return fmt.Errorf("want %d hex digits, got %d", 2*len(dst), len(s))
	}
	_, err := hex.Decode(dst, []byte(s))
	return err
}

func decodeJoinIDs(in []string) ([]engine.JoinID, error) {
	out := make([]engine.JoinID, len(in))
	for i, s := range in {
		if err := decodeHex(out[i][:], s); err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
	}
	return out, nil
}

// Fleet nodes (README, "Running a fleet"): the flags, joining, recovery
// of a partition, and the answers that differ from a single node's.

// fleetOptions are the flags of a fleet node (README, "Running a fleet").
type fleetOptions struct {
	natsURL    string
	partitions int
	prefer     int
	lease      time.Duration
	advertise  string
	replicas   int
	notify     bool
	follow     string // all, prefer or off
}

func fleetFlags(env *envDefaults, f *fleetOptions) {
	env.str(&f.natsURL, "nats", "ONSALE_NATS", "", "NATS URLs of a JetStream cluster, comma-separated: run as a fleet node, the log in JetStream instead of -data's Pebble [single node]")
	env.int(&f.partitions, "fleet-partitions", "ONSALE_FLEET_PARTITIONS", 4, "sale partitions of the fleet, each served by one node; the same on every node, never changed")
	env.int(&f.prefer, "fleet-partition", "ONSALE_FLEET_PARTITION", 0, "the partition this node tries to own first")
	env.duration(&f.lease, "fleet-lease", "ONSALE_FLEET_LEASE", 3*time.Second, "a partition's lease: a node that stops renewing it loses its sales this long after its last renewal, and another node takes them over")
	env.str(&f.advertise, "fleet-advertise", "ONSALE_FLEET_ADVERTISE", "", "host:port at which the other nodes reach this one [-addr]")
	env.bool(&f.notify, "fleet-notify", "ONSALE_FLEET_NOTIFY", true, "deliver notifications (webhooks, email) on this fleet node, its outbox in JetStream")
	env.str(&f.follow, "fleet-follow", "ONSALE_FLEET_FOLLOW", "all", "what a standby keeps hot, following the logs as they are written so that a takeover replays only their last entries: all partitions, the -fleet-partition (prefer), or none (off, a takeover recovers cold)")
	env.int(&f.replicas, "nats-replicas", "ONSALE_NATS_REPLICAS", 3, "copies JetStream keeps of the log, snapshots and leases (1 for a single test server)")
}

func checkFleet(o *options, check func(ok bool, flagName, format string, args ...any)) {
	f := &o.fleet
	if f.natsURL == "" {
		return
	}
	check(f.partitions >= 1 && f.partitions <= 1024, "fleet-partitions", "must be 1 to 1024, not %d", f.partitions)
	check(f.prefer >= 0 && f.prefer < max(f.partitions, 1), "fleet-partition", "must be 0 to -fleet-partitions - 1, not %d", f.prefer)
	check(f.lease >= 500*time.Millisecond, "fleet-lease", "must be at least 500ms, not %s", f.lease)
	check(f.replicas == 1 || f.replicas == 3 || f.replicas == 5, "nats-replicas", "must be 1, 3 or 5, not %d", f.replicas)
	check(f.follow == "all" || f.follow == "prefer" || f.follow == "off", "fleet-follow", "must be all, prefer or off, not %q", f.follow)
	if f.advertise == "" {
		f.advertise = o.addr
	}
	_, port, err := net.SplitHostPort(f.advertise)
	check(err == nil && port != "0", "fleet-advertise", "must be the host:port the other nodes reach (not port 0), not %q", f.advertise)
}

// fleetNode is what a fleet node adds to an app: the NATS connection, the
// lease and router (httpapi/fleet), the shared user store and webhook
// endpoints, and once it owns a partition, that partition's outbox.
type fleetNode struct {
	o  fleetOptions
	nc *nats.Conn
	// logConn carries the partition's log (recover), and a standby's
	// following of the logs; leaseConn the lease alone (fleet.Options).
	logConn   *nats.Conn
	leaseConn *nats.Conn
	fleet     *fleet.Fleet
	users     *fleet.Users
	webhooks  *fleet.Webhooks
	outbox    *fleet.Outbox // set by recover
	logger    *slog.Logger
	// acquiring ends Acquire when the app stops before it owns a partition.
	acquiring       context.Context
	cancelAcquiring context.CancelFunc
}

func joinFleet(ctx context.Context, o options, logger *slog.Logger) (*fleetNode, error) {
	nc, err := nats.Connect(o.fleet.natsURL, nats.Name("onsale "+o.fleet.advertise), nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond), nats.Timeout(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("cannot connect to NATS at %s: %w", o.fleet.natsURL, err)
	}
	n := &fleetNode{o: o.fleet, nc: nc, logger: logger}
	// The lease has a connection of its own, and so has the log (recover):
	// a renewal waits for nothing else the node sends or receives.
	if n.leaseConn, err = n.connect("lease"); err != nil {
		nc.Close()
		return nil, err
	}
	// JetStream answers "temporarily unavailable" while a server rejoins
	// or its meta leader is elected: try for a while before giving up.
	deadline := time.Now().Add(30 * time.Second)
	for {
		n.fleet, err = fleet.Join(ctx, fleet.Options{
			Conn: nc, LeaseConn: n.leaseConn, Partitions: o.fleet.partitions, Addr: o.fleet.advertise, Lease: o.fleet.lease,
			Prefer: o.fleet.prefer, Replicas: o.fleet.replicas, Logger: logger,
			OnLost: func(p int) {
				// Requests for the partition are refused already (Route); the
				// engine's memory may hold what the new owner never saw, so
				// the process ends and starts again as a standby.
				logger.Error("lease lost: exiting", "partition", p)
				os.Exit(3)
			},
		})
		if err == nil {
			n.users, err = fleet.OpenUsers(ctx, nc, o.fleet.replicas)
			if err == nil {
				n.webhooks, err = fleet.OpenWebhooks(ctx, nc, o.fleet.replicas)
			}
			if err != nil {
				n.fleet.Close()
			}
		}
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		logger.Warn("fleet: JetStream not ready; trying again", "err", err)
		time.Sleep(250 * time.Millisecond)
	}
	if err != nil {
		n.leaseConn.Close()
		nc.Close()
		return nil, err
	}
	n.acquiring, n.cancelAcquiring = context.WithCancel(context.Background())
	return n, nil
}

// connect opens another connection to the cluster, named for its use.
func (n *fleetNode) connect(use string) (*nats.Conn, error) {
	c, err := nats.Connect(n.o.natsURL, nats.Name("onsale "+use+" "+n.o.advertise), nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond), nats.Timeout(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("cannot connect to NATS at %s: %w", n.o.natsURL, err)
	}
	return c, nil
}

// route is httpapi.Config.Route: nil on a single node. A payment
// provider's notification goes to the partition of the order it names,
// which only the API server can read (a WeChat Pay body is encrypted):
// a.srv, set before the server serves its first request.
func (n *fleetNode) route(a *app) func(*fasthttp.RequestCtx) bool {
	if n == nil {
		return nil
	}
	return func(ctx *fasthttp.RequestCtx) bool {
		if order, ok := a.srv.NotificationOrder(ctx); ok {
			return n.fleet.RouteOrder(ctx, order)
		}
		return n.fleet.Route(ctx)
	}
}

// recover waits for a partition's lease, then opens its journal (which
// fences the previous owner) and replays it. A node that finds every
// partition held is a standby: it follows the partitions of -fleet-follow
// while it waits (fleet.Standby), and takes over with the state it holds.
func (n *fleetNode) recover(a *app) recovery {
	start := time.Now()
	// The log has a connection of its own: a takeover streams the
	// partition's snapshot and log through it, and a lease renewal queued
	// behind them on the lease's connection came too late, so that the
	// node lost the lease it was recovering for (bench -failover, 1M orders).
	var err error
	if n.logConn, err = n.connect("log"); err != nil {
		return recovery{err: err}
	}
	openJournal := func(p int) (*jetstream.Journal, error) {
		return jetstream.Open(context.Background(), jetstream.Options{Conn: n.logConn, Name: fmt.Sprintf("onsale_p%d", p),
			Replicas: n.o.replicas})
	}
	var tap engine.OutboxTap
	if n.o.notify {
		tap = a.notifier
	}
	engineConfig := func(j engine.Journal) engine.Config {
		return engine.Config{
			Journal: j, Shards: a.o.shards, BatchMax: a.o.batchMax, InboxMax: a.o.inboxMax,
			TickInterval: a.o.tick, SyncGatherMax: orOff(a.o.logSyncGather), Logger: a.logger, Metrics: a.set,
			QueueSeedKey: a.queueSeedKey,
			Outbox:       tap,
			Remote:       n.fleet.Exchanges(n.nc), // exchanges into a session of another partition
		}
	}
	p, owner, err := n.fleet.TryAcquire(n.acquiring)
	var standby *fleet.Standby
	if err == nil && !owner {
		if follow := n.followed(); len(follow) > 0 {
			a.logger.Info("fleet: standby: starting to follow", "partitions", follow)
			standby = fleet.StartStandby(fleet.StandbyOptions{Partitions: follow, Journal: openJournal,
				Config: engineConfig, Logger: a.logger})
		}
		p, err = n.fleet.Acquire(n.acquiring)
	}
	if err != nil {
		if standby != nil {
			standby.Stop()
		}
		return recovery{err: err}
	}
	a.logger.Info("fleet: partition acquired", "partition", p, "waited_ms", time.Since(start).Milliseconds())
	start = time.Now()
	var j *jetstream.Journal
	if standby != nil {
		j = standby.Journal(p)
	}
	if j == nil {
		if j, err = openJournal(p); err != nil {
			return recovery{err: err}
		}
	}
	if n.o.notify {
		if n.outbox, err = fleet.OpenOutbox(context.Background(), n.nc, p, n.o.replicas,
			func() bool { return n.fleet.Valid(p) }, j); err != nil {
			return recovery{err: err}
		}
	}
	var eng *engine.Engine
	if standby != nil {
		if eng, err = standby.Promote(p); err != nil {
			return recovery{err: err}
		}
	}
	hot := eng != nil
	if eng == nil {
		if eng, err = engine.Open(engineConfig(j)); err != nil {
			return recovery{err: err}
		}
	}
	all, slow := n.fleet.Renewals()
	a.logger.Info("fleet: serving the partition", "partition", p, "hot", hot,
		"renewals", all, "renewals_slow", slow)
	logRecovery(a.logger, eng, time.Since(start))
	a.servingThreads()
	a.running.Store(eng)
	if err := fleet.ServeExchanges(n.nc, p, func() bool { return n.fleet.Valid(p) }, eng); err != nil {
		eng.Close()
		return recovery{err: err}
	}
	if p == 0 { // the follows are the home partition's: its owner lists them for the others' on_sale emails
		if err := fleet.ServeFollowers(n.nc, func() bool { return n.fleet.Valid(0) }, eng.Followers); err != nil {
			eng.Close()
			return recovery{err: err}
		}
	}
	if !n.o.notify {
		return recovery{eng: eng}
	}
	// Notifications: this partition's, with ids no other partition's log
	// gives; the webhook endpoints are partition 0's (the home partition
	// serves /v1/admin/webhooks), shared through the onsale_fleet bucket.
	endpoints := n.webhooks.List
	if p == 0 {
		endpoints = n.webhooks.Publish(eng.Webhooks)
	} else if err := n.webhooks.Watch(n.acquiring, a.notifier.RefreshEndpoints); err != nil {
		eng.Close()
		return recovery{err: err}
	}
	a.notifier.ForPartition(fmt.Sprintf("p%d_", p), endpoints)
	if p != 0 {
		a.notifier.FollowersFrom(fleet.AskFollowers(n.nc))
	}
	return recovery{eng: eng}
}

func (n *fleetNode) stopAcquiring() {
	if n != nil {
		n.cancelAcquiring()
	}
}

func (n *fleetNode) close() {
	if n == nil {
		return
	}
	n.cancelAcquiring()
	n.fleet.Close()
	if n.logConn != nil {
		n.logConn.Close()
	}
	n.leaseConn.Close()
	n.nc.Close()
}

// followed are the partitions a standby follows (-fleet-follow).
func (n *fleetNode) followed() []int {
	switch n.o.follow {
	case "all":
		ps := make([]int, n.o.partitions)
		for i := range ps {
			ps[i] = (n.o.prefer + i) % n.o.partitions
		}
		return ps
	case "prefer":
		return []int{n.o.prefer}
	}
	return nil
}

// backupAnswer is POST /v1/admin/backup on a fleet node: the fleet's data
// is in JetStream, whose own backup (nats stream backup, a consistent copy
// of one stream at a time, restored with nats stream restore) is what an
// operator of a JetStream cluster runs, so the answer names the streams:
// each partition's shard logs and snapshot store and notification outbox,
// the accounts and the shared webhook endpoints. The leases are not
// worth keeping: they expire within a lease.
func (n *fleetNode) backupAnswer(shards int) error {
	var streams []string
	for p := range n.o.partitions {
		for s := range shards {
			streams = append(streams, fmt.Sprintf("onsale_p%d_%d", p, s))
		}
		streams = append(streams, fmt.Sprintf("OBJ_onsale_p%d_snap", p))
		if n.o.notify {
			streams = append(streams, fmt.Sprintf("KV_onsale_outbox_p%d", p))
		}
	}
	streams = append(streams, "KV_onsale_users", "KV_onsale_fleet")
	return fmt.Errorf("%w: back it up with `nats stream backup <stream> <dir>` for each of its streams (%s), "+
		"restored into a JetStream cluster with `nats stream restore <dir>`, or onto one node with `onsale restore-fleet` (README, \"Running a fleet\")",
		httpapi.ErrBackupInJetStream, strings.Join(streams, ", "))
}

// runRestoreFleet is `onsale restore-fleet`: a fleet's sales, from every
// partition's log in JetStream, and its accounts written to a single
// node's data directory (httpapi/fleet restore.go), which must hold the
// fleet's secrets.json (its data key signs the tickets and seals the
// webhook secrets) and no log yet. The streams are read from a JetStream:
// the fleet's own, stopped, or any other into which `nats stream restore`
// put the backups of onsale_p<N>_<S>, OBJ_onsale_p<N>_snap and
// KV_onsale_users.
func runRestoreFleet(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("onsale restore-fleet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	env := envDefaults{fs: fs}
	var data, natsURL string
	var partitions, replicas, shards int
	env.str(&data, "data", "ONSALE_DATA", "./onsale-data", "the single node's data directory to write: the fleet's secrets.json in it, no log yet")
	env.str(&natsURL, "nats", "ONSALE_NATS", "", "NATS URLs of the JetStream holding the fleet's streams, comma-separated")
	env.int(&partitions, "fleet-partitions", "ONSALE_FLEET_PARTITIONS", 4, "the fleet's sale partitions")
	env.int(&replicas, "nats-replicas", "ONSALE_NATS_REPLICAS", 3, "the replicas of the fleet's streams in that JetStream")
	env.int(&shards, "shards", "ONSALE_SHARDS", 0, "shards of the single node's log; 0 = GOMAXPROCS")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case env.err != nil:
		return env.err
	case fs.NArg() > 0:
		return fmt.Errorf("restore-fleet: unexpected argument %q", fs.Arg(0))
	case natsURL == "":
		return errors.New("restore-fleet: -nats is required: the JetStream holding the fleet's streams")
	case partitions < 1 || partitions > 1024:
		return fmt.Errorf("restore-fleet: -fleet-partitions must be 1 to 1024, not %d", partitions)
	case shards < 0 || shards > shardsMax:
		return fmt.Errorf("restore-fleet: -shards must be 0 (= GOMAXPROCS) to %d, not %d", shardsMax, shards)
	}
	if shards == 0 {
		shards = runtime.GOMAXPROCS(0)
	}
	raw, err := os.ReadFile(filepath.Join(data, "secrets.json"))
	var sec secrets
	if err == nil {
		err = json.Unmarshal(raw, &sec)
	}
	if err == nil && sec.DataKey == "" {
		err = errors.New("it has no data_key")
	}
	if err != nil {
		return fmt.Errorf("restore-fleet: %s: copy the fleet's secrets.json here first (its data key signs the tickets): %w", data, err)
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	log, err := wal.Open(filepath.Join(data, "wal"), wal.Options{Logger: logger})
	if err != nil {
		return fmt.Errorf("restore-fleet: %w", err)
	}
	defer log.Close()
	if n, err := log.Layout(); err != nil || n != 0 {
		return fmt.Errorf("restore-fleet: %s holds a log already (%d shards, %v): restore into a new directory", data, n, err)
	}
	nc, err := nats.Connect(natsURL, nats.Name("onsale restore-fleet"), nats.Timeout(5*time.Second))
	if err != nil {
		return fmt.Errorf("restore-fleet: cannot connect to NATS at %s: %w", natsURL, err)
	}
	defer nc.Close()
	seedKey := engine.DeriveQueueSeedKey([]byte(sec.DataKey))
	sum, err := fleet.Restore(ctx, fleet.RestoreOptions{Conn: nc, Partitions: partitions, Replicas: replicas,
		Target: log, Shards: shards, Users: log, Engine: engine.Config{QueueSeedKey: seedKey}, Logger: logger})
	if err != nil {
		return fmt.Errorf("restore-fleet: %w", err)
	}
	// Restore may have written one shard more (see it): the layout asked for.
	eng, err := engine.Open(engine.Config{Journal: log, Shards: shards, QueueSeedKey: seedKey, Logger: logger})
	if err != nil {
		return fmt.Errorf("restore-fleet: %w", err)
	}
	eng.Close()
	check, err := engine.Check(log, logger)
	if err != nil {
		return fmt.Errorf("restore-fleet: the restored log: %w", err)
	}
	fmt.Fprintf(stdout, "fleet of %d partitions (shards per partition %v) restored into %s: %d shards, %d sales, %d orders, %d accounts; check it with: onsale verify -data %s\n",
		partitions, sum.PartitionShards, data, check.Shards, check.Sales, check.Orders, sum.Accounts, data)
	return nil
}
