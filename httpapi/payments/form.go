package payments

import (
	"errors"
	"net/url"
	"sort"
	"strings"
)

// formFieldsMax bounds the fields of a form notification; Alipay's and
// UnionPay's carry a few dozen.
const formFieldsMax = 128

// formField is one decoded key and value of an
// application/x-www-form-urlencoded body.
type formField struct{ key, value string }

// form is a decoded form body, sorted by key (byte order, which is Java's
// String order for the ASCII keys providers use), each key once.
type form []formField

var (
	errFormSyntax    = errors.New("not an application/x-www-form-urlencoded body")
	errFormDuplicate = errors.New("a form field appears twice")
	errFormTooMany   = errors.New("too many form fields")
)

// parseForm decodes a form body strictly: every pair has a non-empty key
// and an '=', escapes are valid, no key repeats. Providers sign the decoded
// values, so the signature is checked on what this returns.
func parseForm(body []byte) (form, error) {
	if len(body) == 0 {
		return nil, errFormSyntax
	}
	var f form
	for _, pair := range strings.Split(string(body), "&") {
		if len(f) == formFieldsMax {
			return nil, errFormTooMany
		}
		k, v, ok := strings.Cut(pair, "=")
		if !ok || k == "" {
			return nil, errFormSyntax
		}
		key, err := url.QueryUnescape(k)
		if err != nil || key == "" {
			return nil, errFormSyntax
		}
		value, err := url.QueryUnescape(v)
		if err != nil {
			return nil, errFormSyntax
		}
		f = append(f, formField{key, value})
	}
	sort.Slice(f, func(i, j int) bool { return f[i].key < f[j].key })
	for i := 1; i < len(f); i++ {
		if f[i].key == f[i-1].key {
			return nil, errFormDuplicate
		}
	}
	return f, nil
}

// get returns the value of key, or "".
func (f form) get(key string) string {
	i := sort.Search(len(f), func(i int) bool { return f[i].key >= key })
	if i < len(f) && f[i].key == key {
		return f[i].value
	}
	return ""
}

// has reports whether key is present, even with an empty value.
func (f form) has(key string) bool {
	i := sort.Search(len(f), func(i int) bool { return f[i].key >= key })
	return i < len(f) && f[i].key == key
}

// signedContent joins the fields, sorted, as "k=v&k=v", leaving out the
// keys in skip and, when skipEmpty, the fields whose value is empty.
func (f form) signedContent(skipEmpty bool, skip ...string) []byte {
	var b []byte
	for _, fv := range f {
		if skipEmpty && fv.value == "" || contains(skip, fv.key) {
			continue
		}
		if len(b) > 0 {
			b = append(b, '&')
		}
		b = append(b, fv.key...)
		b = append(b, '=')
		b = append(b, fv.value...)
	}
	return b
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
