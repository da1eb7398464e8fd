package fleet

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// Users is httpapi.UserStore on a replicated JetStream key-value bucket
// (onsale_users), shared by every node: a buyer registered on one node logs
// in on any. Put returns once a quorum stored the value.
type Users struct {
	kv      natsjs.KeyValue
	timeout time.Duration
}

// OpenUsers opens (or creates) the bucket.
func OpenUsers(ctx context.Context, nc *nats.Conn, replicas int) (*Users, error) {
	js, err := natsjs.New(nc)
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, natsjs.KeyValueConfig{
		Bucket: "onsale_users", Replicas: replicas, Storage: natsjs.FileStorage, History: 1,
		Description: "onsale accounts (httpapi.UserStore), keys base64url",
	})
	if err != nil {
		return nil, fmt.Errorf("fleet: cannot open the users bucket: %w", err)
	}
	return &Users{kv: kv, timeout: 10 * time.Second}, nil
}

// Get implements httpapi.UserStore.
func (u *Users) Get(key string) ([]byte, bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), u.timeout)
	defer cancel()
	e, err := u.kv.Get(ctx, userKey(key))
	if errors.Is(err, natsjs.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("fleet: cannot read an account: %w", err)
	}
	return e.Value(), true, nil
}

// Put implements httpapi.UserStore.
func (u *Users) Put(key string, value []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), u.timeout)
	defer cancel()
	if _, err := u.kv.Put(ctx, userKey(key), value); err != nil {
		return fmt.Errorf("fleet: cannot store an account: %w", err)
	}
	return nil
}

// userKey spells any key in the bucket's key alphabet.
func userKey(key string) string { return "k" + base64.RawURLEncoding.EncodeToString([]byte(key)) }
