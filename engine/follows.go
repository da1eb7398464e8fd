package engine

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
)

// Follows: a buyer follows an event, a venue or a category and is told
// when a matching sale is announced and when it opens. A follow is state
// like a webhook endpoint: created and deleted by logged events, decided
// by the one shard that owns the system key followsKey, kept in its
// snapshot (section followsSectionTag) and moved with that key when the
// shard count changes.
//
// Values are normalized (NormalizeFollowValue: trimmed, lower case) when
// a follow is made and when a sale's catalogue is matched, so "Arena" and
// "arena " are one follow and match a sale at "ARENA". Following the same
// thing again changes nothing and returns the follow made first.
//
// What a follow triggers is derived from the log like every notification
// (outbox.go): a sale's creation entry holds its SalePut and its first
// TicketKeyAdded, and DecodeNotifications turns that pair into an
// event.on_sale notification (phase "announced"); the deliverer
// (httpapi/notify) asks Followers who is told.

// followsKey routes follow commands: not a valid sale id.
const followsKey = "~follows"

// Limits of follows.
const (
	FollowsPerUserMax = 100
	FollowsMax        = 1 << 20 // in all: bounds the owning shard's memory and snapshot
	FollowIDLenMax    = 32
	FollowValueLenMax = NameLenMax
	FollowersPageMax  = 1000
	followsSectionTag = 81
)

// Follow errors.
const (
	CodeUnknownFollow Code = "unknown_follow"
	CodeFollowsLimit  Code = "follows_limit"
)

// FollowKinds are what a buyer may follow: a sale's Catalogue.Event,
// Catalogue.Venue or Catalogue.Category.
var FollowKinds = []string{"event", "venue", "category"}

// Follow is one buyer's follow.
type Follow struct {
	ID          string
	UserID      string
	Kind        string // one of FollowKinds
	Value       string // normalized
	CreatedAtMs int64
}

// NormalizeFollowValue is how follows and catalogues are compared: spaces
// around trimmed, case folded.
func NormalizeFollowValue(v string) string { return strings.ToLower(strings.TrimSpace(v)) }

// FollowMatches are the (kind, value) pairs a sale's catalogue matches,
// normalized; none for a sale without a catalogue.
func FollowMatches(c *Catalogue) [][2]string {
	var out [][2]string
	for i, v := range []string{c.Event, c.Venue, c.Category} {
		if v = NormalizeFollowValue(v); v != "" {
			out = append(out, [2]string{FollowKinds[i], v})
		}
	}
	return out
}

// followState is the owning shard's follows: per user in creation order,
// and per (kind, value) the users who follow it, sorted.
type followState struct {
	byUser  map[string][]Follow
	byMatch map[string][]string
	n       int
}

func matchKey(kind, value string) string { return kind + "\x00" + value }

func (fs *followState) find(user string, fn func(f *Follow) bool) int {
	return slices.IndexFunc(fs.byUser[user], func(f Follow) bool { return fn(&f) })
}

func (fs *followState) add(f Follow) {
	if fs.byUser == nil {
		fs.byUser, fs.byMatch = make(map[string][]Follow), make(map[string][]string)
	}
	fs.byUser[f.UserID] = append(fs.byUser[f.UserID], f)
	k := matchKey(f.Kind, f.Value)
	users := fs.byMatch[k]
	i, _ := slices.BinarySearch(users, f.UserID)
	fs.byMatch[k] = slices.Insert(users, i, f.UserID)
	fs.n++
}

func (fs *followState) remove(user string, i int) {
	f := fs.byUser[user][i]
	list := slices.Delete(slices.Clone(fs.byUser[user]), i, i+1) // snapshots share the old slice
	if len(list) == 0 {
		delete(fs.byUser, user)
	} else {
		fs.byUser[user] = list
	}
	k := matchKey(f.Kind, f.Value)
	users := fs.byMatch[k]
	if j, ok := slices.BinarySearch(users, user); ok {
		users = slices.Delete(slices.Clone(users), j, j+1)
	}
	if len(users) == 0 {
		delete(fs.byMatch, k)
	} else {
		fs.byMatch[k] = users
	}
	fs.n--
}

// followCommand is what the follow commands carry.
type followCommand struct {
	follow  Follow      // cmdFollow; cmdUnfollow: ID and UserID
	matches [][2]string // cmdFollowers
	after   string      // cmdFollowers: users after this one
	limit   int
}

// CreateFollow makes f.UserID follow f.Kind f.Value, or returns the
// follow they already have of it (created false). The caller draws f.ID;
// CreatedAtMs is the engine's.
func (e *Engine) CreateFollow(ctx context.Context, f Follow) (Follow, bool, error) {
	if rej := validateFollow(&f); rej != nil {
		return Follow{}, false, rej
	}
	var out Follow
	var created bool
	err := e.one(ctx, followsKey, command{kind: cmdFollow, follows: &followCommand{follow: f}}, func(r *result) {
		out, created = r.follows[0], r.created
	})
	return out, created, err
}

// DeleteFollow removes user's follow id and returns it.
func (e *Engine) DeleteFollow(ctx context.Context, user, id string) (Follow, error) {
	var out Follow
	cmd := command{kind: cmdUnfollow, follows: &followCommand{follow: Follow{ID: id, UserID: user}}}
	err := e.one(ctx, followsKey, cmd, func(r *result) { out = r.follows[0] })
	return out, err
}

// Follows returns user's follows, oldest first.
func (e *Engine) Follows(ctx context.Context, user string) ([]Follow, error) {
	var out []Follow
	cmd := command{kind: cmdFollows, follows: &followCommand{follow: Follow{UserID: user}}}
	err := e.one(ctx, followsKey, cmd, func(r *result) { out = r.follows })
	return out, err
}

// FollowsCount returns how many follows exist.
func (e *Engine) FollowsCount(ctx context.Context) (int, error) {
	var n int
	err := e.one(ctx, followsKey, command{kind: cmdFollows, follows: &followCommand{}}, func(r *result) { n = r.next })
	return n, err
}

// Followers returns the users who follow any of matches (FollowMatches),
// each once, in user id order: at most limit (FollowersPageMax) of them
// after the user id after.
func (e *Engine) Followers(ctx context.Context, matches [][2]string, after string, limit int) ([]string, error) {
	var out []string
	limit = min(max(limit, 1), FollowersPageMax)
	cmd := command{kind: cmdFollowers, follows: &followCommand{matches: matches, after: after, limit: limit}}
	err := e.one(ctx, followsKey, cmd, func(r *result) { out = r.followers })
	return out, err
}

func validateFollow(f *Follow) *Rejection {
	f.Value = NormalizeFollowValue(f.Value)
	switch {
	case len(f.ID) == 0 || len(f.ID) > FollowIDLenMax:
		return reject(CodeInvalidRequest, "follow id must have 1 to %d bytes", FollowIDLenMax)
	case len(f.UserID) == 0 || len(f.UserID) > UserLenMax:
		return reject(CodeInvalidRequest, "user id must have 1 to %d bytes", UserLenMax)
	case !slices.Contains(FollowKinds, f.Kind):
		return reject(CodeInvalidRequest, "kind must be one of event, venue, category")
	case f.Value == "" || !validText(f.Value, FollowValueLenMax, false):
		return reject(CodeInvalidRequest, "value must be 1 to %d bytes of text without control characters", FollowValueLenMax)
	case f.Kind == "event" && len(f.Value) > IDLenMax:
		return reject(CodeInvalidRequest, "an event id has at most %d bytes", IDLenMax)
	case f.Kind == "category" && !slices.Contains(Categories, f.Value):
		return reject(CodeInvalidRequest, "category must be one of %s", strings.Join(Categories, ", "))
	}
	return nil
}

func (st *state) decideFollow(cmd *command, now int64, res *result, evs []event) ([]event, *Rejection) {
	fc := cmd.follows
	fs := &st.follows
	switch cmd.kind {
	case cmdFollow:
		f := fc.follow
		if fs.find(f.UserID, func(g *Follow) bool { return g.Kind == f.Kind && g.Value == f.Value }) >= 0 {
			return evs, nil // answer returns the one they have
		}
		if len(fs.byUser[f.UserID]) >= FollowsPerUserMax {
			return evs, reject(CodeFollowsLimit, "at most %d follows per buyer; delete one first", FollowsPerUserMax)
		}
		if fs.n >= FollowsMax {
			return evs, reject(CodeFollowsLimit, "onsale holds its maximum of %d follows", FollowsMax)
		}
		if fs.find(f.UserID, func(g *Follow) bool { return g.ID == f.ID }) >= 0 {
			return evs, reject(CodeInvalidRequest, "follow id %q is taken", f.ID)
		}
		f.CreatedAtMs = now
		return append(evs, event{kind: evFollowed, at: now, follow: &f}), nil
	case cmdUnfollow:
		i := fs.find(fc.follow.UserID, func(g *Follow) bool { return g.ID == fc.follow.ID })
		if i < 0 {
			return evs, reject(CodeUnknownFollow, "you have no follow %q", fc.follow.ID)
		}
		res.follows = []Follow{fs.byUser[fc.follow.UserID][i]}
		return append(evs, event{kind: evUnfollowed, at: now, follow: &Follow{ID: fc.follow.ID, UserID: fc.follow.UserID}}), nil
	}
	return evs, nil
}

func (st *state) applyFollow(ev *event) error {
	fs := &st.follows
	f := ev.follow
	i := fs.find(f.UserID, func(g *Follow) bool { return g.ID == f.ID })
	switch ev.kind {
	case evFollowed:
		if i >= 0 {
			return fmt.Errorf("%w: follow %q made twice", errCorrupt, f.ID)
		}
		fs.add(*f)
	case evUnfollowed:
		if i < 0 {
			return fmt.Errorf("%w: deletion of unknown follow %q", errCorrupt, f.ID)
		}
		fs.remove(f.UserID, i)
	}
	return nil
}

func (st *state) answerFollow(cmd *command, res *result, changed bool) {
	fc := cmd.follows
	fs := &st.follows
	switch cmd.kind {
	case cmdFollow:
		f := fc.follow
		i := fs.find(f.UserID, func(g *Follow) bool { return g.Kind == f.Kind && g.Value == f.Value })
		res.follows, res.created = []Follow{fs.byUser[f.UserID][i]}, changed
	case cmdFollows:
		res.follows = slices.Clone(fs.byUser[fc.follow.UserID])
		res.next = fs.n
	case cmdFollowers:
		res.followers = fs.followers(fc.matches, fc.after, fc.limit)
	} // cmdUnfollow: decide set the follow it deletes
}

// followers merges the sorted user lists of matches: the first limit
// users after after, each once.
func (fs *followState) followers(matches [][2]string, after string, limit int) []string {
	var out []string
	for _, m := range matches {
		users := fs.byMatch[matchKey(m[0], m[1])]
		i, found := slices.BinarySearch(users, after)
		if found {
			i++
		}
		out = append(out, users[i:min(len(users), i+limit)]...)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	return out[:min(len(out), limit)]
}

// Event bodies:
//
//	Followed   at id user kind(0..2) value
//	Unfollowed at id user
func appendFollowEvent(b []byte, ev *event) []byte {
	b = binary.AppendVarint(b, ev.at)
	b = appendString(b, ev.follow.ID)
	b = appendString(b, ev.follow.UserID)
	if ev.kind == evUnfollowed {
		return b
	}
	return appendFollowFields(b, ev.follow)
}

func appendFollowFields(b []byte, f *Follow) []byte {
	b = binary.AppendUvarint(b, uint64(slices.Index(FollowKinds, f.Kind)))
	return appendString(b, f.Value)
}

func decodeFollowEvent(d *decoder, ev *event) {
	ev.at = d.varint()
	ev.follow = &Follow{ID: d.str(FollowIDLenMax), UserID: d.str(UserLenMax), CreatedAtMs: ev.at}
	if ev.kind == evFollowed {
		d.followFields(ev.follow)
	}
}

func (d *decoder) followFields(f *Follow) {
	f.Kind = FollowKinds[d.uvarint(uint64(len(FollowKinds)-1))]
	f.Value = d.str(FollowValueLenMax)
}

// The follows' snapshot section: every follow, by user id, then in
// creation order.
//
//	n | {id user createdAt kind value}*
func init() {
	registerSnapshotSection(snapshotSection{
		tag: followsSectionTag,
		freeze: func(st *state) func([]byte) []byte {
			if st.follows.n == 0 {
				return nil
			}
			users := make([]string, 0, len(st.follows.byUser))
			for u := range st.follows.byUser {
				users = append(users, u)
			}
			slices.Sort(users)
			lists := make([][]Follow, len(users))
			for i, u := range users {
				lists[i] = st.follows.byUser[u] // never written in place
			}
			n := st.follows.n
			return func(b []byte) []byte {
				b = binary.AppendUvarint(b, uint64(n))
				for _, list := range lists {
					for i := range list {
						b = appendString(b, list[i].ID)
						b = appendString(b, list[i].UserID)
						b = binary.AppendVarint(b, list[i].CreatedAtMs)
						b = appendFollowFields(b, &list[i])
					}
				}
				return b
			}
		},
		restore: func(st *state, body []byte) error {
			d := decoder{b: body}
			n := d.uvarint(FollowsMax)
			for range n {
				f := Follow{ID: d.str(FollowIDLenMax), UserID: d.str(UserLenMax), CreatedAtMs: d.varint()}
				d.followFields(&f)
				if d.err != nil {
					break
				}
				if st.follows.find(f.UserID, func(g *Follow) bool { return g.ID == f.ID }) >= 0 {
					return fmt.Errorf("%w: snapshot holds follow %q twice", errCorrupt, f.ID)
				}
				st.follows.add(f)
			}
			if err := d.check("follows section"); err != nil {
				return err
			}
			if len(d.b) != 0 {
				return fmt.Errorf("%w: follows section: %d bytes left over", errCorrupt, len(d.b))
			}
			return nil
		},
	})
}

// moveFollows gathers the follows of the old shards into the shard that
// owns followsKey under the new count (repartition).
func moveFollows(old, states []*state) {
	dst := &states[shardIndex(followsKey, len(states))].follows
	for _, st := range old {
		users := make([]string, 0, len(st.follows.byUser))
		for u := range st.follows.byUser {
			users = append(users, u)
		}
		slices.Sort(users)
		for _, u := range users {
			for _, f := range st.follows.byUser[u] {
				if dst.find(u, func(g *Follow) bool { return g.ID == f.ID }) >= 0 {
					panic(newInvariantError("follow %q on two shards", f.ID))
				}
				dst.add(f)
			}
		}
	}
}
