package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// The test side of openapi.json: kin-openapi's openapi3filter checks every
// exchange a test makes through testEnv.do. The answer must be documented
// (status, content type, headers, body schema); the request, when the
// server accepted it (2xx), must be one the document allows, so the
// document can be neither looser nor stricter than the server about what
// succeeds. Requests the server refused are not held to the document: many
// tests send bad requests on purpose.

// openAPIChecker validates exchanges against the document.
type openAPIChecker struct {
	doc    *openapi3.T
	router routers.Router
}

var (
	checkerOnce sync.Once
	checker     *openAPIChecker
	checkerErr  error
)

// loadSpec parses and validates openapi.json once per test binary.
func loadSpec(t testing.TB) *openAPIChecker {
	t.Helper()
	checkerOnce.Do(func() { checker, checkerErr = newOpenAPIChecker(openAPIDocument) })
	if checkerErr != nil {
		t.Fatalf("openapi.json: %v", checkerErr)
	}
	return checker
}

func newOpenAPIChecker(document []byte) (*openAPIChecker, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(document)
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("invalid document: %w", err)
	}
	// Route on paths alone: the test server listens on a random port,
	// not on the document's example server.
	doc.Servers = nil
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, err
	}
	return &openAPIChecker{doc: doc, router: router}, nil
}

// exchange is one request and its answer as the client saw them.
type exchange struct {
	req     *http.Request // its Body is not read; reqBody is the body sent
	reqBody []byte
	status  int
	header  http.Header
	body    []byte
}

// check reports how an exchange differs from the document. A path or
// method the document does not list must be answered with a problem.
func (c *openAPIChecker) check(x exchange) error {
	ctx := context.Background()
	req := x.req.Clone(ctx)
	req.Body = io.NopCloser(bytes.NewReader(x.reqBody))
	find := req
	if req.Method == http.MethodHead {
		// HEAD is GET without the body: GET's route, and kin-openapi
		// skips checking the answer of a HEAD.
		find = req.Clone(ctx)
		find.Method = http.MethodGet
	}
	route, params, err := c.router.FindRoute(find)
	if err != nil {
		if !errors.Is(err, routers.ErrPathNotFound) && !errors.Is(err, routers.ErrMethodNotAllowed) {
			return fmt.Errorf("%s %s: %v", x.req.Method, x.req.URL.Path, err)
		}
		if x.status < 400 {
			return fmt.Errorf("%s %s: %d for a route the document does not have", x.req.Method, x.req.URL.Path, x.status)
		}
		return c.checkProblem(x)
	}
	opts := &openapi3filter.Options{
		IncludeResponseStatus: true,
		MultiError:            true,
		AuthenticationFunc:    presentCredentials,
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	if x.status < 300 {
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			return fmt.Errorf("%s %s: answered %d, but the document does not allow the request: %v",
				x.req.Method, x.req.URL.Path, x.status, err)
		}
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: x.status, Header: x.header, Options: opts,
	}
	out.SetBodyBytes(x.body)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		return fmt.Errorf("%s %s: %v", x.req.Method, x.req.URL.Path, err)
	}
	return nil
}

// checkProblem checks an answer against the Problem schema.
func (c *openAPIChecker) checkProblem(x exchange) error {
	if ct := x.header.Get("Content-Type"); ct != "application/problem+json" {
		return fmt.Errorf("%s %s %d: content type %q, want application/problem+json", x.req.Method, x.req.URL.Path, x.status, ct)
	}
	if err := c.checkProblemBody(x.body); err != nil {
		return fmt.Errorf("%s %s %d: %v", x.req.Method, x.req.URL.Path, x.status, err)
	}
	return nil
}

// checkProblemBody checks a body against the Problem schema.
func (c *openAPIChecker) checkProblemBody(body []byte) error {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("body is not JSON: %v", err)
	}
	return c.doc.Components.Schemas["Problem"].Value.VisitJSON(v, openapi3.MultiErrors())
}

// presentCredentials stands in for authentication: a request that the
// document secures must carry the credential's header in its form. Whether
// the credential is valid is the server's to say.
func presentCredentials(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	h := in.RequestValidationInput.Request.Header
	switch s := in.SecurityScheme; {
	case s.Type == "http" && s.Scheme == "bearer":
		if auth := h.Get("Authorization"); len(auth) > 7 && strings.EqualFold(auth[:7], "bearer ") {
			return nil
		}
		return errors.New("no Authorization: Bearer header")
	case s.Type == "apiKey" && s.In == "header":
		if h.Get(s.Name) != "" {
			return nil
		}
		return fmt.Errorf("no %s header", s.Name)
	}
	return fmt.Errorf("security scheme %q is not checked by the tests", in.SecuritySchemeName)
}
