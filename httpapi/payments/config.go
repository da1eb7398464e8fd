package payments

import (
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Options are the providers' settings as main reads them from flags and
// the environment. A provider is configured when any of its settings is
// set, and then all it needs must be; paths that are not absolute are read
// from Dir (the data directory).
type Options struct {
	Dir string

	StripeWebhookSecret string // whsec_...; comma-separated while rolling a secret

	AlipayAppID     string
	AlipayPublicKey string // path: PEM public key or certificate, or the bare base64 key

	WeChatPayMchID         string
	WeChatPayAppID         string
	WeChatPayAPIv3Key      string // the 32-character key, or a path to a file holding it
	WeChatPayPlatformCerts string // comma-separated PEM paths; each is named by its serial
	WeChatPayPublicKeys    string // comma-separated PUB_KEY_ID_...=path of a WeChat Pay public key
	UnionPayMerID          string
	UnionPayRootCert       string // path
	UnionPayMiddleCert     string // path
	UnionPayCertOwner      string // [UnionPayOwner]; 00040000:SIGN in UnionPay's test environment

	// Refunds (refund.go): a provider's refund client is configured when
	// its key is set; base URLs default to the provider's production API.
	StripeSecretKey         string        // sk_test_... / sk_live_..., or a path to a file holding it
	StripeAPIBase           string        // [StripeAPIDefault]
	AlipayPrivateKey        string        // path: the app's private key (PEM)
	AlipayGateway           string        // [AlipayGatewayDefault]
	WeChatPayMerchantKey    string        // path: apiclient_key.pem
	WeChatPayMerchantSerial string        // serial number of the merchant API certificate
	WeChatPayAPIBase        string        // [WeChatPayAPIDefault]
	UnionPaySignKey         string        // path: the merchant signing key (PEM)
	UnionPaySignCert        string        // path: its certificate (PEM); the serial is certId
	UnionPayBackURL         string        // backUrl of refunds
	UnionPayGateway         string        // [UnionPayGatewayDefault]
	RefundTimeout           time.Duration // one refund call at most [15s]
}

// Providers are the configured verifiers; nil for a provider that is not.
type Providers struct {
	Stripe    *Stripe
	Alipay    *Alipay
	WeChatPay *WeChatPay
	UnionPay  *UnionPay

	// Refunds are the configured refund clients by provider name
	// (ProviderStripe, ...); a provider without one has its payouts
	// settled by hand.
	Refunds map[string]Refunder
}

// Load builds the verifiers of the configured providers, reading their
// keys and certificates. It names the setting at fault in its error.
func Load(o Options) (*Providers, error) {
	var p Providers
	var errs []error
	if o.StripeWebhookSecret != "" {
		p.Stripe = NewStripe(splitList(o.StripeWebhookSecret), 0)
	}
	if o.AlipayAppID != "" || o.AlipayPublicKey != "" {
		a, err := loadAlipay(o)
		errs = append(errs, err)
		p.Alipay = a
	}
	if o.WeChatPayMchID != "" || o.WeChatPayAppID != "" || o.WeChatPayAPIv3Key != "" || o.WeChatPayPlatformCerts != "" || o.WeChatPayPublicKeys != "" {
		w, err := loadWeChatPay(o)
		errs = append(errs, err)
		p.WeChatPay = w
	}
	if o.UnionPayMerID != "" || o.UnionPayRootCert != "" || o.UnionPayMiddleCert != "" {
		u, err := loadUnionPay(o)
		errs = append(errs, err)
		p.UnionPay = u
	}
	errs = append(errs, loadRefunds(o, &p))
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &p, nil
}

// loadRefunds builds the refund clients of the providers whose refund
// settings are given. Alipay's and WeChat Pay's need their notification
// verifier too (the answers are verified with the same keys).
func loadRefunds(o Options, p *Providers) error {
	p.Refunds = map[string]Refunder{}
	timeout := o.RefundTimeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	client := &http.Client{Timeout: timeout}
	var errs []error
	if o.StripeSecretKey != "" {
		key := o.StripeSecretKey
		if !strings.HasPrefix(key, "sk_") && !strings.HasPrefix(key, "rk_") {
			data, err := o.read(key)
			if err != nil {
				return fmt.Errorf("stripe: -stripe-secret-key is neither sk_.../rk_... nor a readable file: %w", err)
			}
			key = strings.TrimSpace(string(data))
		}
		p.Refunds[ProviderStripe] = &StripeRefunds{BaseURL: orDefault(o.StripeAPIBase, StripeAPIDefault), SecretKey: key, Client: client}
	}
	if o.AlipayPrivateKey != "" {
		key, err := o.privateKey(o.AlipayPrivateKey)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("alipay: -alipay-private-key: %w", err))
		case p.Alipay == nil:
			errs = append(errs, errors.New("alipay: -alipay-private-key needs -alipay-app-id and -alipay-public-key (its answers are verified with it)"))
		default:
			p.Refunds[ProviderAlipay] = &AlipayRefunds{GatewayURL: orDefault(o.AlipayGateway, AlipayGatewayDefault),
				AppID: o.AlipayAppID, PrivateKey: key, AlipayKey: p.Alipay.key, Client: client}
		}
	}
	if o.WeChatPayMerchantKey != "" || o.WeChatPayMerchantSerial != "" {
		key, err := o.privateKey(o.WeChatPayMerchantKey)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("wechatpay: -wechatpay-merchant-key: %w", err))
		case o.WeChatPayMerchantSerial == "":
			errs = append(errs, errors.New("wechatpay: -wechatpay-merchant-key and -wechatpay-merchant-serial go together"))
		case p.WeChatPay == nil:
			errs = append(errs, errors.New("wechatpay: refunds need the notification settings too (their answers are verified with the platform keys)"))
		default:
			p.Refunds[ProviderWeChatPay] = &WeChatPayRefunds{BaseURL: orDefault(o.WeChatPayAPIBase, WeChatPayAPIDefault),
				MchID: o.WeChatPayMchID, MerchantKey: key, MerchantCert: o.WeChatPayMerchantSerial, Verifier: p.WeChatPay, Client: client}
		}
	}
	if o.UnionPaySignKey != "" || o.UnionPaySignCert != "" || o.UnionPayBackURL != "" {
		u, err := o.unionPayRefunds(p.UnionPay, client)
		if err != nil {
			errs = append(errs, fmt.Errorf("unionpay: %w", err))
		} else {
			p.Refunds[ProviderUnionPay] = u
		}
	}
	return errors.Join(errs...)
}

func (o Options) unionPayRefunds(v *UnionPay, client *http.Client) (*UnionPayRefunds, error) {
	if o.UnionPaySignKey == "" || o.UnionPaySignCert == "" || o.UnionPayBackURL == "" {
		return nil, errors.New("-unionpay-sign-key, -unionpay-sign-cert and -unionpay-back-url go together")
	}
	if v == nil {
		return nil, errors.New("refunds need the notification settings too (-unionpay-mer-id, -unionpay-root-cert, -unionpay-middle-cert: its answers are verified with them)")
	}
	key, err := o.privateKey(o.UnionPaySignKey)
	if err != nil {
		return nil, fmt.Errorf("-unionpay-sign-key: %w", err)
	}
	data, err := o.read(o.UnionPaySignCert)
	if err != nil {
		return nil, fmt.Errorf("-unionpay-sign-cert: %w", err)
	}
	certs, err := parseCertificates(data)
	if err != nil || len(certs) != 1 {
		return nil, fmt.Errorf("-unionpay-sign-cert %s: not one PEM certificate", o.UnionPaySignCert)
	}
	if pub, ok := certs[0].PublicKey.(*rsa.PublicKey); !ok || !pub.Equal(&key.PublicKey) {
		return nil, errors.New("-unionpay-sign-cert is not the certificate of -unionpay-sign-key")
	}
	if !strings.HasPrefix(o.UnionPayBackURL, "https://") && !strings.HasPrefix(o.UnionPayBackURL, "http://") {
		return nil, errors.New("-unionpay-back-url is not an http(s) URL")
	}
	return &UnionPayRefunds{GatewayURL: orDefault(o.UnionPayGateway, UnionPayGatewayDefault), MerID: v.merID, SignKey: key,
		CertID: certs[0].SerialNumber.String(), BackURL: o.UnionPayBackURL, Verifier: v, Client: client}, nil
}

func (o Options) privateKey(path string) (*rsa.PrivateKey, error) {
	if path == "" {
		return nil, errors.New("no path given")
	}
	data, err := o.read(path)
	if err != nil {
		return nil, err
	}
	return ParseRSAPrivateKey(data)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func loadAlipay(o Options) (*Alipay, error) {
	if o.AlipayAppID == "" || o.AlipayPublicKey == "" {
		return nil, errors.New("alipay: -alipay-app-id and -alipay-public-key go together")
	}
	data, err := o.read(o.AlipayPublicKey)
	if err != nil {
		return nil, fmt.Errorf("alipay: -alipay-public-key: %w", err)
	}
	key, err := ParseRSAPublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("alipay: -alipay-public-key: %w", err)
	}
	return NewAlipay(o.AlipayAppID, key), nil
}

func loadWeChatPay(o Options) (*WeChatPay, error) {
	if o.WeChatPayMchID == "" || o.WeChatPayAppID == "" || o.WeChatPayAPIv3Key == "" ||
		o.WeChatPayPlatformCerts == "" && o.WeChatPayPublicKeys == "" {
		return nil, errors.New("wechatpay: -wechatpay-mchid, -wechatpay-appid, -wechatpay-apiv3-key and -wechatpay-platform-certs or -wechatpay-public-keys go together")
	}
	key := []byte(o.WeChatPayAPIv3Key)
	if len(key) != 32 {
		data, err := o.read(o.WeChatPayAPIv3Key)
		if err != nil {
			return nil, fmt.Errorf("wechatpay: -wechatpay-apiv3-key is neither 32 characters nor a readable file: %w", err)
		}
		key = []byte(strings.TrimSpace(string(data)))
	}
	var certs []*x509.Certificate
	for _, path := range splitList(o.WeChatPayPlatformCerts) {
		data, err := o.read(path)
		if err != nil {
			return nil, fmt.Errorf("wechatpay: -wechatpay-platform-certs: %w", err)
		}
		cs, err := parseCertificates(data)
		if err != nil {
			return nil, fmt.Errorf("wechatpay: -wechatpay-platform-certs %s: %w", path, err)
		}
		certs = append(certs, cs...)
	}
	pubs := map[string]*rsa.PublicKey{}
	for _, item := range splitList(o.WeChatPayPublicKeys) {
		id, path, ok := strings.Cut(item, "=")
		if !ok || id == "" || path == "" {
			return nil, fmt.Errorf("wechatpay: -wechatpay-public-keys wants PUB_KEY_ID_...=path items, not %q", item)
		}
		data, err := o.read(path)
		if err != nil {
			return nil, fmt.Errorf("wechatpay: -wechatpay-public-keys: %w", err)
		}
		k, err := ParseRSAPublicKey(data)
		if err != nil {
			return nil, fmt.Errorf("wechatpay: -wechatpay-public-keys %s: %w", id, err)
		}
		pubs[id] = k
	}
	w, err := NewWeChatPay(o.WeChatPayMchID, o.WeChatPayAppID, key, certs, pubs, 0)
	if err != nil {
		return nil, fmt.Errorf("wechatpay: %w", err)
	}
	return w, nil
}

func loadUnionPay(o Options) (*UnionPay, error) {
	if o.UnionPayMerID == "" || o.UnionPayRootCert == "" || o.UnionPayMiddleCert == "" {
		return nil, errors.New("unionpay: -unionpay-mer-id, -unionpay-root-cert and -unionpay-middle-cert go together")
	}
	var pools [2][]*x509.Certificate
	for i, path := range []string{o.UnionPayRootCert, o.UnionPayMiddleCert} {
		data, err := o.read(path)
		if err != nil {
			return nil, fmt.Errorf("unionpay: %w", err)
		}
		if pools[i], err = parseCertificates(data); err != nil {
			return nil, fmt.Errorf("unionpay: %s: %w", path, err)
		}
	}
	u, err := NewUnionPay(o.UnionPayMerID, pools[0], pools[1], o.UnionPayCertOwner)
	if err != nil {
		return nil, fmt.Errorf("unionpay: %w", err)
	}
	return u, nil
}

// keyFileMax bounds what is read as a key or certificate file.
const keyFileMax = 1 << 20

func (o Options) read(path string) ([]byte, error) {
	if !filepath.IsAbs(path) && o.Dir != "" {
		path = filepath.Join(o.Dir, path)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Size() > keyFileMax {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, keyFileMax)
	}
	return os.ReadFile(path)
}

func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
