package httpapi

import _ "embed"

// openAPIDocument describes every route, schema and problem code; served at
// /openapi.json. Tests check every response they receive against it.
//
//go:embed openapi.json
var openAPIDocument []byte
