package engine

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync/atomic"
)

// Credentials: bearer tokens for door staff and box-office sellers, each
// scoped to a list of sales. They are state like any other: created and
// revoked by logged events, decided by the one shard that owns the system
// key credentialsKey, kept in its snapshot (section credentialsSectionTag),
// and moved with that key when the shard count changes.
//
// The engine never sees a token, only its keyed hash, which the caller
// computes: the log and snapshots hold nothing a stolen disk could log in
// with. After a batch that changed a credential is durable, the owning shard
// publishes a new immutable CredentialTable (one atomic store; readers load
// it without a lock), before it answers the batch: a revocation answered to
// the admin is seen by the next request of every connection.

// credentialsKey routes credential commands: it is not a valid sale id, so no
// sale shares its name, and its shard owns every credential.
const credentialsKey = "~credentials"

// Limits of credentials.
const (
	CredentialsMax        = 10_000 // revoked ones included: they stay listed
	SalesPerCredentialMax = 64
	CredentialIDLenMax    = 32
	credentialsSectionTag = 20
	credentialHashLen     = 32
)

// Role is what a credential may do.
type Role uint8

const (
	// RoleStaff checks tickets in at the door of its sales.
	RoleStaff Role = iota + 1
	// RoleSeller sells at the box office of its sales and takes payment at
	// the counter.
	RoleSeller
)

func (r Role) String() string {
	switch r {
	case RoleStaff:
		return "staff"
	case RoleSeller:
		return "seller"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// Credential is a staff or seller credential as stored: never its token.
type Credential struct {
	ID          string
	Name        string
	Role        Role
	Sales       []string // sale ids it may act on; shared, never modified
	TokenHash   [credentialHashLen]byte
	CreatedAtMs int64
	ExpiresAtMs int64 // 0: never
	RevokedAtMs int64 // 0: not revoked
}

// Active reports whether the credential may be used at nowMs.
func (c *Credential) Active(nowMs int64) bool {
	return c.RevokedAtMs == 0 && (c.ExpiresAtMs == 0 || nowMs < c.ExpiresAtMs)
}

// AllowsSale reports whether the credential is scoped to saleID.
func (c *Credential) AllowsSale(saleID string) bool { return slices.Contains(c.Sales, saleID) }

// CredentialTable is every credential as of the newest durable log entry
// that changed one. It is immutable: any goroutine may read it.
type CredentialTable struct {
	list   []*Credential // creation order
	byHash map[[credentialHashLen]byte]*Credential
}

var emptyCredentialTable = &CredentialTable{}

// ByHash returns the credential whose token has this keyed hash.
func (t *CredentialTable) ByHash(h [credentialHashLen]byte) (*Credential, bool) {
	c, ok := t.byHash[h]
	return c, ok
}

// All returns the credentials in creation order; the caller must not modify
// them.
func (t *CredentialTable) All() []*Credential { return t.list }

// CountActive counts the credentials usable at nowMs.
func (t *CredentialTable) CountActive(nowMs int64) int {
	n := 0
	for _, c := range t.list {
		if c.Active(nowMs) {
			n++
		}
	}
	return n
}

// credentialState is the owning shard's credentials. changed says the table
// must be published again after this batch.
type credentialState struct {
	list    []Credential
	byID    map[string]int
	byHash  map[[credentialHashLen]byte]int
	changed bool
}

func (cs *credentialState) insert(c Credential) {
	if cs.byID == nil {
		cs.byID = make(map[string]int)
		cs.byHash = make(map[[credentialHashLen]byte]int)
	}
	cs.byID[c.ID] = len(cs.list)
	cs.byHash[c.TokenHash] = len(cs.list)
	cs.list = append(cs.list, c)
	cs.changed = true
}

// table builds the immutable table of the current credentials.
func (cs *credentialState) table() *CredentialTable {
	t := &CredentialTable{
		list:   make([]*Credential, len(cs.list)),
		byHash: make(map[[credentialHashLen]byte]*Credential, len(cs.list)),
	}
	for i := range cs.list {
		c := cs.list[i] // a copy: the state may revoke its own later
		t.list[i] = &c
		t.byHash[c.TokenHash] = &c
	}
	return t
}

// takeCredentialTable returns the table to publish after this batch, or
// nil when no credential changed.
func (st *state) takeCredentialTable() *CredentialTable {
	if !st.creds.changed {
		return nil
	}
	st.creds.changed = false
	return st.creds.table()
}

func (st *state) decideCreateCredential(c *Credential, now int64, evs []event) ([]event, *Rejection) {
	if _, taken := st.creds.byID[c.ID]; taken {
		return evs, reject(CodeInvalidRequest, "credential id %q is taken", c.ID)
	}
	if _, taken := st.creds.byHash[c.TokenHash]; taken {
		return evs, reject(CodeInvalidRequest, "this token is taken; draw another")
	}
	if len(st.creds.list) >= CredentialsMax {
		return evs, reject(CodeInvalidRequest, "at most %d credentials, revoked ones included", CredentialsMax)
	}
	if c.ExpiresAtMs != 0 && c.ExpiresAtMs <= now {
		return evs, reject(CodeInvalidRequest, "expires_at is in the past")
	}
	stored := *c
	stored.CreatedAtMs, stored.RevokedAtMs = now, 0
	stored.Sales = slices.Clone(c.Sales)
	return append(evs, event{kind: evCredentialCreated, at: now, cred: &stored}), nil
}

func (st *state) decideRevokeCredential(id string, now int64, evs []event) ([]event, *Rejection) {
	i, ok := st.creds.byID[id]
	if !ok {
		return evs, reject(CodeUnknownCredential, "no credential %q", id)
	}
	if st.creds.list[i].RevokedAtMs != 0 {
		return evs, nil // revoked already: answered as it is
	}
	return append(evs, event{kind: evCredentialRevoked, at: now, cred: &Credential{ID: id}}), nil
}

func (st *state) applyCredential(ev *event) error {
	switch ev.kind {
	case evCredentialCreated:
		if _, dup := st.creds.byID[ev.cred.ID]; dup {
			return fmt.Errorf("%w: credential %q created twice", errCorrupt, ev.cred.ID)
		}
		if _, dup := st.creds.byHash[ev.cred.TokenHash]; dup {
			return fmt.Errorf("%w: two credentials with one token", errCorrupt)
		}
		c := *ev.cred
		c.Sales = slices.Clone(c.Sales) // the event's may be reused
		st.creds.insert(c)
	case evCredentialRevoked:
		i, ok := st.creds.byID[ev.cred.ID]
		if !ok {
			return fmt.Errorf("%w: revocation of unknown credential %q", errCorrupt, ev.cred.ID)
		}
		st.creds.list[i].RevokedAtMs = ev.at
		st.creds.changed = true
	}
	return nil
}

func (st *state) answerCredential(cmd *command, res *result) {
	id := cmd.key
	if cmd.cred != nil {
		id = cmd.cred.ID
	}
	c := st.creds.list[st.creds.byID[id]]
	c.Sales = slices.Clone(c.Sales)
	res.cred = c
}

// Event bodies:
//
//	CredentialCreated at id name role nsales {sale} hash(32) expiresAt
//	CredentialRevoked at id
func appendCredentialEvent(b []byte, ev *event) []byte {
	b = binary.AppendVarint(b, ev.at)
	b = appendString(b, ev.cred.ID)
	if ev.kind == evCredentialRevoked {
		return b
	}
	return appendCredentialFields(b, ev.cred)
}

func appendCredentialFields(b []byte, c *Credential) []byte {
	b = appendString(b, c.Name)
	b = append(b, byte(c.Role))
	b = binary.AppendUvarint(b, uint64(len(c.Sales)))
	for _, s := range c.Sales {
		b = appendString(b, s)
	}
	b = append(b, c.TokenHash[:]...)
	return binary.AppendVarint(b, c.ExpiresAtMs)
}

func decodeCredentialEvent(d *decoder, ev *event) {
	ev.at = d.varint()
	c := &Credential{ID: d.str(CredentialIDLenMax)}
	ev.cred = c
	if ev.kind == evCredentialRevoked {
		return
	}
	d.credentialFields(c)
	c.CreatedAtMs = ev.at
}

func (d *decoder) credentialFields(c *Credential) {
	c.Name = d.str(NameLenMax)
	c.Role = Role(d.uvarint(uint64(RoleSeller)))
	if d.err == nil && c.Role == 0 {
		d.fail("credential role 0")
	}
	n := d.uvarint(SalesPerCredentialMax)
	if d.err == nil && n == 0 {
		d.fail("credential without sales")
	}
	c.Sales = make([]string, 0, n)
	for range n {
		c.Sales = append(c.Sales, d.str(IDLenMax))
	}
	copy(c.TokenHash[:], d.raw(credentialHashLen))
	c.ExpiresAtMs = d.varint()
}

// The credentials' snapshot section: every credential, in creation order.
//
//	n | {id createdAt revokedAt fields as in CredentialCreated}*
func init() {
	registerSnapshotSection(snapshotSection{
		tag: credentialsSectionTag,
		freeze: func(st *state) func([]byte) []byte {
			if len(st.creds.list) == 0 {
				return nil
			}
			list := slices.Clone(st.creds.list) // revocation writes the state's copy
			return func(b []byte) []byte {
				b = binary.AppendUvarint(b, uint64(len(list)))
				for i := range list {
					c := &list[i]
					b = appendString(b, c.ID)
					b = binary.AppendVarint(b, c.CreatedAtMs)
					b = binary.AppendVarint(b, c.RevokedAtMs)
					b = appendCredentialFields(b, c)
				}
				return b
			}
		},
		restore: func(st *state, body []byte) error {
			d := decoder{b: body}
			n := d.uvarint(CredentialsMax)
			for range n {
				c := Credential{ID: d.str(CredentialIDLenMax), CreatedAtMs: d.varint(), RevokedAtMs: d.varint()}
				d.credentialFields(&c)
				if d.err != nil {
					break
				}
				if _, dup := st.creds.byID[c.ID]; dup {
					return fmt.Errorf("%w: snapshot holds credential %q twice", errCorrupt, c.ID)
				}
				if _, dup := st.creds.byHash[c.TokenHash]; dup {
					return fmt.Errorf("%w: snapshot holds two credentials with one token", errCorrupt)
				}
				st.creds.insert(c)
			}
			if err := d.check("credentials section"); err != nil {
				return err
			}
			if len(d.b) != 0 {
				return fmt.Errorf("%w: credentials section: %d bytes left over", errCorrupt, len(d.b))
			}
			return nil
		},
	})
}

// Engine side: commands and the published table.

// credentialViews holds the newest durable table.
type credentialViews struct {
	table atomic.Pointer[CredentialTable]
}

// Credentials returns the credentials as of the newest durable change: one
// atomic load, no shard involved.
func (e *Engine) Credentials() *CredentialTable { return e.creds.table.Load() }

// CreateCredential stores a credential. The caller draws c.ID and the token,
// and passes the token's keyed hash only; CreatedAtMs and RevokedAtMs are
// the engine's.
func (e *Engine) CreateCredential(ctx context.Context, c Credential) (Credential, error) {
	if rej := validateCredential(&c); rej != nil {
		return Credential{}, rej
	}
	r := getRequest()
	r.cmd = command{kind: cmdCreateCredential, cred: &c}
	if err := e.call(ctx, credentialsKey, r); err != nil {
		return Credential{}, err
	}
	out := r.res.cred
	putRequest(r)
	return out, nil
}

// RevokeCredential revokes a credential for good; revoking it again returns
// it unchanged.
func (e *Engine) RevokeCredential(ctx context.Context, id string) (Credential, error) {
	r := getRequest()
	r.cmd = command{kind: cmdRevokeCredential, key: id}
	if err := e.call(ctx, credentialsKey, r); err != nil {
		return Credential{}, err
	}
	out := r.res.cred
	putRequest(r)
	return out, nil
}

func validateCredential(c *Credential) *Rejection {
	switch {
	case len(c.ID) == 0 || len(c.ID) > CredentialIDLenMax:
		return reject(CodeInvalidRequest, "credential id must have 1 to %d bytes", CredentialIDLenMax)
	case !validName(c.Name):
		return reject(CodeInvalidRequest, "name must be 1 to %d bytes of UTF-8 text", NameLenMax)
	case c.Role != RoleStaff && c.Role != RoleSeller:
		return reject(CodeInvalidRequest, "role must be staff or seller")
	case len(c.Sales) == 0 || len(c.Sales) > SalesPerCredentialMax:
		return reject(CodeInvalidRequest, "sales must list 1 to %d sale ids", SalesPerCredentialMax)
	}
	for i, s := range c.Sales {
		if !validID(s) {
			return reject(CodeInvalidRequest, "sales[%d]: a sale id is 1 to %d characters of A-Z a-z 0-9 _ -", i, IDLenMax)
		}
		if slices.Contains(c.Sales[:i], s) {
			return reject(CodeInvalidRequest, "sales[%d]: sale %q appears twice", i, s)
		}
	}
	return nil
}

// publishCredentials makes a durable batch's credential table visible.
func (e *Engine) publishCredentials(t *CredentialTable) {
	if t != nil {
		e.creds.table.Store(t)
	}
}

// moveCredentials gathers the credentials of the old shards into the shard
// that owns credentialsKey under the new count (repartition).
func moveCredentials(old, states []*state) {
	dst := states[shardIndex(credentialsKey, len(states))]
	for _, st := range old {
		for _, c := range st.creds.list {
			if _, dup := dst.creds.byID[c.ID]; dup {
				panic(newInvariantError("credential %q on two shards", c.ID))
			}
			dst.creds.insert(c)
		}
	}
}
