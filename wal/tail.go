package wal

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Pebble replays its newest WAL leniently: the first bad chunk is taken for
// the torn tail of a crash and everything after it is dropped without a
// word, unless a chunk in a *later 32 KiB block* promises (by its synced
// offset) that the bad one had been synced. A bit flipped in the last block
// of the newest WAL therefore loses acknowledged entries silently (seen
// with v2.1.7; see TestBitFlipsAreRefused). checkNewestLog closes that
// hole before Pebble opens the directory: it walks the newest WAL's chunks
// itself and, past the first bad one, looks at every offset for a valid
// chunk of the same log whose synced offset lies beyond the bad chunk. One
// is proof that the bad chunk was synced, so it is corruption, not a torn
// write, and Open refuses with pebble.ErrCorruption.
//
// Two more holes of Pebble's reader are closed here. It ends a log at any
// chunk with the next log number, which is what its EOF trailer writes at a
// clean close, so one flip of an even log number's lowest bit ended a log
// early; only the trailer's exact header counts as an end here. And the
// trailer has no synced offset, so nothing vouched for the last chunks of a
// cleanly closed WAL; but Close syncs, and every write onsale makes is
// synced, so a bad chunk before a clean close's trailer is corruption too.
// The trailer counts only as the file's last bytes (prefill.go's Close cuts
// the file there): past a bad chunk, the same bytes inside a payload or in
// a recycled file's old records prove nothing.
//
// A new database's first WAL was the third hole: Pebble writes it before it
// raises the format to the one with synced offsets, so it has none. Open
// starts a new WAL right after creating a database (wal.go), before anything
// is written; a data directory an older build created keeps that first WAL
// until its first restart.
//
// What remains undetectable: a flip in the last chunks synced before a
// crash. Nothing after them vouches for them, and they look exactly like a
// torn write; Pebble and this check both end the log there. Pebble's synced
// offsets also lag the file a little (v2.1.7's LogWriter does not count the
// tail of a block that filled up, about 150 bytes per block in
// TestBitFlipsAreRefused), so "the last chunks" means the last few hundred
// bytes.
//
// The wire format (pebble/record/record.go): 32 KiB blocks; a chunk never
// crosses one. The WAL sync chunk header is
//
//	CRC (4, masked CRC-32C of the rest) | length (2) | type (1) | log number (4) | synced offset (8) | payload
//
// Types 9-12 are WAL sync chunks (full, first, middle, last), 5-8 the same
// without the synced offset, 1-4 the legacy format without a log number.
const (
	chunkBlockSize     = 32 << 10
	legacyHeaderLen    = 7
	recyclableHeadLen  = 11
	syncChunkHeaderLen = 19
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checkNewestLog reports pebble.ErrCorruption when the newest WAL in dir
// has a bad chunk that a later valid chunk says was synced.
func checkNewestLog(fs vfs.FS, dir string) error {
	names, err := fs.List(dir)
	if err != nil {
		return nil // no directory yet: a new log
	}
	var newest string
	var logNum uint64
	for _, name := range names {
		base, ok := strings.CutSuffix(name, ".log")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(base, 10, 64)
		if err != nil {
			continue
		}
		if newest == "" || n > logNum {
			newest, logNum = name, n
		}
	}
	if newest == "" {
		return nil
	}
	path := fs.PathJoin(dir, newest)
	f, err := fs.Open(path)
	if err != nil {
		return fmt.Errorf("wal: cannot open %s: %w", path, err)
	}
	b, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("wal: cannot read %s: %w", path, err)
	}
	bad := firstBadChunk(b, uint32(logNum))
	if bad < 0 {
		return nil
	}
	trailer := len(b) - recyclableHeadLen
	if bad == trailer && isEOFTrailer(b[bad:], uint32(logNum)) {
		return nil // a clean close
	}
	if at, synced, ok := laterSyncedChunk(b, uint32(logNum), bad); ok {
		return fmt.Errorf("wal: %s is corrupt at offset %d: the chunk at offset %d says the log was synced up to %d "+
			"(bit rot or a failing disk; restore the data directory from a copy): %w", path, bad, at, synced, pebble.ErrCorruption)
	}
	if trailer > bad && isEOFTrailer(b[trailer:], uint32(logNum)) {
		return fmt.Errorf("wal: %s is corrupt at offset %d: the log was closed cleanly after it (bit rot or a failing disk; "+
			"restore the data directory from a copy): %w", path, bad, pebble.ErrCorruption)
	}
	return nil
}

// isEOFTrailer reports whether h starts with the header Pebble's LogWriter
// writes when it closes log logNum: zero CRC and length, the recyclable
// full-chunk type and the next log number. Pebble's reader ends a log at
// any chunk that has the next log number, so one flipped bit in a chunk's
// log number (an even one's lowest) would look like a clean end; only this
// exact header counts as one here.
func isEOFTrailer(h []byte, logNum uint32) bool {
	return len(h) >= recyclableHeadLen && allZero(h[:6]) && h[6] == 5 && binary.LittleEndian.Uint32(h[7:]) == logNum+1
}

// firstBadChunk walks the chunks of log logNum and returns the offset of
// the first one that is not valid or not of this log (the EOF trailer of a
// clean close is one), or -1 when the file ends after a valid chunk or in
// zeros.
func firstBadChunk(b []byte, logNum uint32) int {
	for p := 0; p < len(b); {
		blockEnd := min((p/chunkBlockSize+1)*chunkBlockSize, len(b))
		if blockEnd-p < legacyHeaderLen {
			p = blockEnd
			continue
		}
		h := b[p:blockEnd]
		if binary.LittleEndian.Uint32(h) == 0 && binary.LittleEndian.Uint16(h[4:]) == 0 && h[6] == 0 {
			// The writer zero-fills the tail of a block that cannot take
			// another header; Pebble checks the zeros only from 11 bytes.
			if len(h) < recyclableHeadLen || len(h) < syncChunkHeaderLen && allZero(h) {
				p = blockEnd
				continue
			}
			return p
		}
		headerLen, ok := chunkHeaderLen(h[6])
		if !ok || len(h) < headerLen {
			return p
		}
		if headerLen > legacyHeaderLen {
			if n := binary.LittleEndian.Uint32(h[7:]); n != logNum {
				return p // the EOF trailer of a clean close, if checkNewestLog says so
			}
		}
		end := headerLen + int(binary.LittleEndian.Uint16(h[4:]))
		if end > len(h) || binary.LittleEndian.Uint32(h) != maskedCRC(h[6:end]) {
			return p
		}
		p += end
	}
	return -1
}

// laterSyncedChunk looks at every offset after bad for a valid WAL sync
// chunk of log logNum whose synced offset is beyond bad.
func laterSyncedChunk(b []byte, logNum uint32, bad int) (at int, synced uint64, ok bool) {
	for q := bad + 1; q+syncChunkHeaderLen <= len(b); q++ {
		if t := b[q+6]; t < 9 || t > 12 || binary.LittleEndian.Uint32(b[q+7:]) != logNum {
			continue
		}
		blockEnd := min((q/chunkBlockSize+1)*chunkBlockSize, len(b))
		end := q + syncChunkHeaderLen + int(binary.LittleEndian.Uint16(b[q+4:]))
		if end > blockEnd || binary.LittleEndian.Uint32(b[q:]) != maskedCRC(b[q+6:end]) {
			continue
		}
		if s := binary.LittleEndian.Uint64(b[q+11:]); s > uint64(bad) {
			return q, s, true
		}
	}
	return 0, 0, false
}

func chunkHeaderLen(chunkType byte) (int, bool) {
	switch {
	case chunkType >= 1 && chunkType <= 4:
		return legacyHeaderLen, true
	case chunkType >= 5 && chunkType <= 8:
		return recyclableHeadLen, true
	case chunkType >= 9 && chunkType <= 12:
		return syncChunkHeaderLen, true
	}
	return 0, false
}

// maskedCRC is Pebble's chunk checksum (internal/crc): CRC-32C, rotated
// and offset as LevelDB does.
func maskedCRC(b []byte) uint32 {
	c := crc32.Checksum(b, castagnoli)
	return (c>>15 | c<<17) + 0xa282ead8
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// hasManifest reports whether dir holds a Pebble database already: Open
// starts a new one's log afresh (wal.go).
func hasManifest(fs vfs.FS, dir string) bool {
	names, err := fs.List(dir)
	if err != nil {
		return false
	}
	for _, name := range names {
		if strings.HasPrefix(name, "MANIFEST-") {
			return true
		}
	}
	return false
}
