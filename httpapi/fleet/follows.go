package fleet

import (
	"context"
	"errors"
	"fmt"
	"time"

	jsonv2 "github.com/goccy/go-json/v2"
	"github.com/nats-io/nats.go"
)

// Follows (GET/POST/DELETE /v1/me/follows) name no sale: they live in the
// home partition's log (its system shard), routed there like webhook
// endpoints. event.on_sale is written to the outbox of the partition of
// its sale, whose owner mails the sale's followers (httpapi/notify
// onsale.go) once, with its cursor in that partition's outbox: so the
// owner of any other partition asks the home partition's owner for each
// page of followers, over a NATS request (FollowersSubject) rather than
// an HTTP route: nothing else needs the list, and NATS is already how the
// nodes reach one another's state. Copying the follows into a bucket,
// as the webhook endpoints are, was not chosen: a fleet's follows grow
// with its buyers, and one key holding them all would be rewritten on
// every follow.
//
// The home owner answers only while its lease is valid; a request with no
// answer (no owner, a takeover) fails after its context, and the email
// worker tries again with its backoff, from the last buyer it mailed.

// FollowersSubject is the NATS subject of a followers request.
const FollowersSubject = "onsale.fleet.followers"

type followersRequest struct {
	Matches [][2]string `json:"matches"`
	After   string      `json:"after"`
	Limit   int         `json:"limit"`
}

type followersReply struct {
	Users []string `json:"users"`
	Error string   `json:"error,omitempty"`
}

// Followers is engine.Engine.Followers.
type Followers func(ctx context.Context, matches [][2]string, after string, limit int) ([]string, error)

// ServeFollowers answers followers requests from list (the home
// partition's engine) while valid says this node holds the home lease.
// The subscription ends with nc.
func ServeFollowers(nc *nats.Conn, valid func() bool, list Followers) error {
	_, err := nc.Subscribe(FollowersSubject, func(m *nats.Msg) {
		if !valid() {
			return // a deposed owner stays silent; the asker times out and retries
		}
		var req followersRequest
		var rep followersReply
		if err := jsonv2.Unmarshal(m.Data, &req); err != nil {
			rep.Error = "bad request: " + err.Error()
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), followersTimeout)
			rep.Users, err = list(ctx, req.Matches, req.After, req.Limit)
			cancel()
			if err != nil {
				rep.Error = err.Error()
			}
		}
		b, _ := jsonv2.Marshal(rep)
		_ = m.Respond(b)
	})
	if err != nil {
		return fmt.Errorf("fleet: cannot serve the followers: %w", err)
	}
	return nil
}

const followersTimeout = 5 * time.Second // one page of an engine read

// AskFollowers is Followers answered by the home partition's owner.
func AskFollowers(nc *nats.Conn) Followers {
	return func(ctx context.Context, matches [][2]string, after string, limit int) ([]string, error) {
		b, err := jsonv2.Marshal(followersRequest{Matches: matches, After: after, Limit: limit})
		if err != nil {
			return nil, err
		}
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, followersTimeout)
			defer cancel()
		}
		m, err := nc.RequestWithContext(ctx, FollowersSubject, b)
		if err != nil {
			return nil, fmt.Errorf("fleet: the home partition's owner did not list the followers: %w", err)
		}
		var rep followersReply
		if err := jsonv2.Unmarshal(m.Data, &rep); err != nil {
			return nil, fmt.Errorf("fleet: bad followers reply: %w", err)
		}
		if rep.Error != "" {
			return nil, errors.New("fleet: the home partition's owner: " + rep.Error)
		}
		return rep.Users, nil
	}
}
