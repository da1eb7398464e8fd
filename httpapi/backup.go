package httpapi

import (
	"errors"
	"path/filepath"
	"strconv"

	"github.com/valyala/fasthttp"
)

// POST /v1/admin/backup {"to": "/abs/path"}: a consistent copy of the data
// directory, written on the server's disk while sales go on (the log's
// checkpoint plus the secrets and key files beside it). The work is main's
// (Config.Backup, on the wal package): this file only speaks HTTP.

// BackupResult is what Config.Backup wrote.
type BackupResult struct {
	Path         string   // absolute
	SizeBytes    int64    // bytes of the copy's files
	LogPositions []uint64 // per shard: the last log position in the copy
}

// Errors Config.Backup wraps so that the answer says what went wrong.
var (
	// ErrBackupExists: the destination exists (409 backup_exists).
	ErrBackupExists = errors.New("httpapi: the backup destination exists")
	// ErrBackupDestination: the destination cannot be used, such as a path
	// inside the data directory (422 invalid_request with the message).
	ErrBackupDestination = errors.New("httpapi: the backup destination cannot be used")
	// ErrBackupInJetStream: a fleet node, whose data is in JetStream
	// streams, not a data directory (409 backup_in_jetstream; the message
	// names the streams to back up).
	ErrBackupInJetStream = errors.New("httpapi: a fleet's data is in JetStream")
)

const (
	codeBackupExists      = "backup_exists"
	codeBackupInJetStream = "backup_in_jetstream"
)

type backupBody struct {
	To string `json:"to"`
}

func (s *Server) backup(ctx *fasthttp.RequestCtx, _ []byte, _ principal) {
	if s.cfg.Backup == nil {
		writeProblem(ctx, codeNotFound, "backups are not configured on this server", -1)
		return
	}
	var body backupBody
	if err := decodeStrict(ctx.PostBody(), &body); err != nil {
		writeDecodeError(ctx, err)
		return
	}
	if body.To == "" || !filepath.IsAbs(body.To) || len(body.To) > 4096 {
		writeProblem(ctx, codeInvalidRequest, `"to" must be an absolute path on the server's disk, of a directory that does not exist yet`, -1)
		return
	}
	res, err := s.cfg.Backup(filepath.Clean(body.To))
	s.recordBackup(ctx, filepath.Clean(body.To), err)
	switch {
	case errors.Is(err, ErrBackupExists):
		writeProblem(ctx, codeBackupExists, body.To+" exists already; name a new directory for every backup", -1)
		return
	case errors.Is(err, ErrBackupDestination):
		writeProblem(ctx, codeInvalidRequest, err.Error(), -1)
		return
	case errors.Is(err, ErrBackupInJetStream):
		writeProblem(ctx, codeBackupInJetStream, err.Error(), -1)
		return
	case err != nil:
		s.log.Error("backup failed", "to", body.To, "err", err)
		writeProblem(ctx, codeInternal, "the backup failed: "+err.Error(), -1)
		return
	}
	b := append([]byte(nil), `{"path":`...)
	b = appendString(b, res.Path)
	b = append(b, `,"size_bytes":`...)
	b = strconv.AppendInt(b, res.SizeBytes, 10)
	b = append(b, `,"log_positions":[`...)
	for i, p := range res.LogPositions {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, p, 10)
	}
	b = append(b, "]}\n"...)
	ctx.SetStatusCode(fasthttp.StatusCreated)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

// recordBackup puts the backup in the audit trail, after it was written: a
// backup is no shard's command, so its record follows it (engine.RecordAudit)
// and a crash in between loses the record, not the copy.
func (s *Server) recordBackup(ctx *fasthttp.RequestCtx, dest string, err error) {
	a := auditOf(ctx)
	if a == nil {
		return
	}
	entry := *a
	entry.Target = dest
	outcome := "ok"
	switch {
	case errors.Is(err, ErrBackupExists):
		outcome = codeBackupExists
	case errors.Is(err, ErrBackupDestination):
		outcome = codeInvalidRequest
	case errors.Is(err, ErrBackupInJetStream):
		outcome = codeBackupInJetStream
	case err != nil:
		outcome = codeInternal
	}
	if err := s.eng.RecordAudit(s.reqCtx(), entry, outcome); err != nil {
		s.log.Warn("cannot record the backup in the audit trail", "err", err)
	}
}
