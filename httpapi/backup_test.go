package httpapi

import (
	"fmt"
	"net/http"
	"testing"
)

// TestAdminBackup: the route hands an absolute, clean path to
// Config.Backup and answers 201 with what it wrote; refusals map to 409
// and 422; bad bodies and non-admins change nothing.
func TestAdminBackup(t *testing.T) {
	var calls []string
	env := startEnv(t, envOptions{cfg: func(c *Config) {
		c.Backup = func(dest string) (BackupResult, error) {
			calls = append(calls, dest)
			switch dest {
			case "/backups/exists":
				return BackupResult{}, fmt.Errorf("wal: exists: %w", ErrBackupExists)
			case "/data/inside":
				return BackupResult{}, fmt.Errorf("%w: /data/inside lies inside the data directory", ErrBackupDestination)
			}
			return BackupResult{Path: dest, SizeBytes: 1234, LogPositions: []uint64{7, 0}}, nil
		}
	}})
	r := env.want(env.do("POST", "/v1/admin/backup", env.admin(), `{"to":"/backups/b1/../b2"}`), http.StatusCreated, "")
	if m := r.json(); m["path"] != "/backups/b2" || fmt.Sprint(m["size_bytes"]) != "1234" || fmt.Sprint(m["log_positions"]) != "[7 0]" {
		t.Fatalf("answer %s", r.body)
	}
	env.want(env.do("POST", "/v1/admin/backup", env.admin(), `{"to":"/backups/exists"}`), http.StatusConflict, codeBackupExists)
	env.want(env.do("POST", "/v1/admin/backup", env.admin(), `{"to":"/data/inside"}`), http.StatusUnprocessableEntity, codeInvalidRequest)
	before := len(calls)
	env.want(env.do("POST", "/v1/admin/backup", env.admin(), `{"to":"relative/path"}`), http.StatusUnprocessableEntity, codeInvalidRequest)
	env.want(env.do("POST", "/v1/admin/backup", env.admin(), `{"to":"/x","extra":1}`), http.StatusUnprocessableEntity, codeInvalidRequest)
	env.want(env.do("POST", "/v1/admin/backup", env.admin(), `{`), http.StatusBadRequest, codeMalformedJSON)
	env.want(env.do("POST", "/v1/admin/backup", env.buyer("u1"), `{"to":"/backups/b3"}`), http.StatusForbidden, "")
	env.want(env.do("POST", "/v1/admin/backup", nil, `{"to":"/backups/b3"}`), http.StatusUnauthorized, "")
	if len(calls) != before {
		t.Fatalf("refused requests reached Config.Backup: %v", calls[before:])
	}
}

func TestAdminBackupNotConfigured(t *testing.T) {
	env := startEnv(t, envOptions{})
	env.want(env.do("POST", "/v1/admin/backup", env.admin(), `{"to":"/backups/b1"}`), http.StatusNotFound, codeNotFound)
}
