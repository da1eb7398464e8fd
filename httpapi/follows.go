package httpapi

import (
	"bytes"
	"crypto/rand"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/engine"
)

// Follows, the HTTP side (the rule is engine/follows.go; what a follow
// triggers is httpapi/notify's):
//
//	POST   /v1/me/follows              follow {"kind": "event"|"venue"|"category", "value": "..."}
//	GET    /v1/me/follows              the buyer's follows, oldest first
//	DELETE /v1/me/follows/{follow_id}  unfollow
//
// Following what one already follows answers 200 with the follow made
// first; a new follow answers 201.

const followIDPrefix = "fol_"

var prefixMeFollows = []byte("/v1/me/follows/")

// followBody is POST /v1/me/follows (schema FollowInput).
type followBody struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

type followOut struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	Value     string    `json:"value"`
	CreatedAt time.Time `json:"created_at"`
}

func followJSON(f *engine.Follow) followOut {
	return followOut{ID: f.ID, Kind: f.Kind, Value: f.Value, CreatedAt: time.UnixMilli(f.CreatedAtMs).UTC()}
}

// createFollow: POST /v1/me/follows.
func (s *Server) createFollow(ctx *fasthttp.RequestCtx, _ []byte, who principal) {
	var body followBody
	if err := decodeStrict(ctx.PostBody(), &body); err != nil {
		writeDecodeError(ctx, err)
		return
	}
	var id [10]byte
	rand.Read(id[:])
	f := engine.Follow{ID: followIDPrefix + credentialIDEncoding.EncodeToString(id[:]), UserID: who.userID, Kind: body.Kind, Value: body.Value}
	stored, created, err := s.eng.CreateFollow(s.engineCtx(ctx), f)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	status := fasthttp.StatusOK
	if created {
		status = fasthttp.StatusCreated
	}
	ctx.Response.Header.Set("Location", "/v1/me/follows/"+stored.ID)
	s.writeJSON(ctx, status, followJSON(&stored))
}

// listFollows: GET /v1/me/follows.
func (s *Server) listFollows(ctx *fasthttp.RequestCtx, _ []byte, who principal) {
	list, err := s.eng.Follows(s.reqCtx(), who.userID)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	out := struct {
		Follows []followOut `json:"follows"`
	}{Follows: make([]followOut, 0, len(list))}
	for i := range list {
		out.Follows = append(out.Follows, followJSON(&list[i]))
	}
	s.writeJSON(ctx, fasthttp.StatusOK, out)
}

// deleteFollow: DELETE /v1/me/follows/{follow_id}. 200 with the follow;
// another buyer's follow is answered as a missing one.
func (s *Server) deleteFollow(ctx *fasthttp.RequestCtx, id []byte, who principal) {
	f, err := s.eng.DeleteFollow(s.engineCtx(ctx), who.userID, string(id))
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	s.writeJSON(ctx, fasthttp.StatusOK, followJSON(&f))
}

// followRoute picks the route of /v1/me/follows by method.
func followRoute(r route, method []byte) route {
	if r == routeFollow && (bytes.Equal(method, []byte("GET")) || bytes.Equal(method, []byte("HEAD"))) {
		return routeListFollows
	}
	return r
}

// matchFollowRoute matches /v1/me/follows/{follow_id}.
func matchFollowRoute(path []byte) (route, []byte, bool) {
	rest, ok := bytes.CutPrefix(path, prefixMeFollows)
	if !ok {
		return routeNone, nil, false
	}
	if len(rest) == 0 || bytes.IndexByte(rest, '/') >= 0 {
		return routeNone, nil, true
	}
	return routeDeleteFollow, rest, true
}
