package wal

// appendSync appends and waits for the sync: the old one-step Append.
// (Lead's note: Append now returns a wait function so that the engine can
// append the next group while the previous one syncs; tests that want the
// one-step form call this.)
func appendSync(l *Log, shard int, firstSeq uint64, entries [][]byte) error {
	wait, err := l.Append(shard, firstSeq, entries)
	if err != nil {
		return err
	}
	return wait()
}
