package payments

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// rsaKeyBitsMin refuses toy keys in configuration.
const rsaKeyBitsMin = 2048

// ParseRSAPublicKey reads an RSA public key as providers hand them out: a
// PEM "PUBLIC KEY" (PKIX) or "RSA PUBLIC KEY" (PKCS#1) block, a PEM
// certificate (its key), or the bare base64 of a PKIX key that Alipay's
// console shows.
func ParseRSAPublicKey(data []byte) (*rsa.PublicKey, error) {
	var der []byte
	kind := "PUBLIC KEY"
	if block, _ := pem.Decode(data); block != nil {
		der, kind = block.Bytes, block.Type
	} else {
		s := strings.Join(strings.Fields(string(data)), "")
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, errors.New("payments: neither PEM nor base64")
		}
		der = b
	}
	var pub any
	var err error
	switch kind {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(der)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(der)
	case "CERTIFICATE":
		var c *x509.Certificate
		if c, err = x509.ParseCertificate(der); err == nil {
			pub = c.PublicKey
		}
	default:
		return nil, fmt.Errorf("payments: a PEM %q block is not a public key", kind)
	}
	if err != nil {
		return nil, fmt.Errorf("payments: cannot parse the public key: %w", err)
	}
	k, ok := pub.(*rsa.PublicKey)
	if !ok {
		return nil, errors.New("payments: not an RSA public key")
	}
	if k.N.BitLen() < rsaKeyBitsMin {
		return nil, fmt.Errorf("payments: a %d-bit RSA key; at least %d bits expected", k.N.BitLen(), rsaKeyBitsMin)
	}
	return k, nil
}

// parseCertificates reads every PEM certificate in data.
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("payments: cannot parse a certificate: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("payments: no PEM certificate found")
	}
	return certs, nil
}
