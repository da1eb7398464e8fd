package console

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"io/fs"
	"path"
	"sort"

	"github.com/valyala/fasthttp"
)

//go:embed assets
var assets embed.FS

// ContentSecurityPolicy is sent with every file of the console. Nothing
// inline, nothing from another origin; blob: images are the rush chart
// and ticket QR codes the page fetched with its bearer token.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; " +
	"connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// file is one embedded asset, read once at start.
type file struct {
	body        []byte
	contentType string
	etag        string
}

// files maps a path under /console/ ("" is the page) to its asset.
var files = loadFiles()

func loadFiles() map[string]file {
	out := map[string]file{}
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		name := p[len("assets/"):]
		out[name] = file{body: body, contentType: contentTypes[path.Ext(name)],
			etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	if err != nil {
		panic("console: cannot read embedded assets: " + err.Error()) // a build without them is a programmer error
	}
	out[""] = out["index.html"]
	return out
}

var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".json": "application/manifest+json",
}

// Serve answers GET /console/{name}: name is the path after "/console/"
// ("" for the page itself). A name it does not have is 404 in plain text:
// the console is not the API, and its answers are not problems.
func Serve(ctx *fasthttp.RequestCtx, name []byte) {
	h := &ctx.Response.Header
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Permissions-Policy", "camera=(self), microphone=(), geolocation=()")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	f, ok := files[string(name)]
	if !ok {
		ctx.SetStatusCode(fasthttp.StatusNotFound)
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString("no such file in the console\n")
		return
	}
	// Revalidated on every load: a new binary serves new files at once.
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", f.etag)
	if string(ctx.Request.Header.Peek("If-None-Match")) == f.etag {
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		return
	}
	ctx.SetContentType(f.contentType)
	ctx.SetBody(f.body)
}

// Asset is one embedded file, for tests and the README's page weight.
type Asset struct {
	Name  string
	Bytes int
}

// Assets lists the embedded files by name.
func Assets() []Asset {
	var out []Asset
	for name, f := range files {
		if name != "" {
			out = append(out, Asset{name, len(f.body)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
