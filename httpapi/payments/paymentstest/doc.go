// Package paymentstest signs payment notifications the way each provider
// documents it (Stripe, Alipay, WeChat Pay API v3, UnionPay 5.1.0), with
// keys and certificates it generates, for tests and, later, for the bench
// harness to pay through each adapter. It is written from the providers'
// documentation and SDKs, independently of package payments, and imports
// nothing of onsale: a test that signs here and verifies there checks one
// reading of the documentation against another.
//
// Keys are generated once per process (RSA 2048 takes a while on small
// machines) and shared; everything is safe for concurrent use.
package paymentstest
