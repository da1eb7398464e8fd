// Command onsale-fsync measures what one fdatasync of a 4 KiB write costs on
// a disk, in time and in the process's CPU, for the three ways a log file
// can grow: appending to a new file, appending into space preallocated with
// fallocate(FALLOC_FL_KEEP_SIZE) (what Pebble does for a new WAL), and
// overwriting blocks already written and synced (a recycled WAL). The first
// two change the file's size or extents, so each sync also commits the
// file system's journal.
//
//	go run ./bench/cmd/onsale-fsync -dir /path/on/the/disk -syncs 1000 -rounds 3
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	dir := flag.String("dir", ".", "directory on the disk to measure (a file is created and removed there)")
	syncs := flag.Int("syncs", 1000, "4 KiB writes, each followed by an fdatasync, per way and round")
	rounds := flag.Int("rounds", 3, "rounds of the three ways, interleaved")
	flag.Parse()
	ways := []struct {
		name string
		prep func(f *os.File, size int64) error
	}{
		{"append", func(*os.File, int64) error { return nil }},
		{"fallocate-keep-size", func(f *os.File, size int64) error {
			return unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, 0, size)
		}},
		{"overwrite", func(f *os.File, size int64) error {
			if _, err := f.Write(make([]byte, size)); err != nil {
				return err
			}
			return f.Sync()
		}},
	}
	for range *rounds {
		for _, w := range ways {
			if err := measure(filepath.Join(*dir, ".onsale-fsync"), w.name, *syncs, w.prep); err != nil {
				fmt.Fprintln(os.Stderr, "onsale-fsync:", err)
				os.Exit(1)
			}
		}
	}
}

func measure(path, name string, n int, prep func(*os.File, int64) error) error {
	os.Remove(path)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(path)
	defer f.Close()
	const block = 4096
	if err := prep(f, int64(n)*block); err != nil {
		return err
	}
	buf := make([]byte, block)
	lat := make([]time.Duration, n)
	cpu0 := cpuTime()
	for i := range n {
		if _, err := f.WriteAt(buf, int64(i)*block); err != nil {
			return err
		}
		start := time.Now()
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			return err
		}
		lat[i] = time.Since(start)
	}
	cpu := cpuTime() - cpu0
	slices.Sort(lat)
	fmt.Printf("%-20s p50 %5d µs  p90 %6d µs  cpu %6.1f µs/sync\n", name,
		lat[n/2].Microseconds(), lat[n*9/10].Microseconds(), float64(cpu.Microseconds())/float64(n))
	return nil
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
