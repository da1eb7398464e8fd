// Command onsale-kill kills onsale with SIGKILL at random moments under
// concurrent load, restarts it on the same data directory, and verifies
// that everything it acknowledged survived, that nothing was oversold, and
// that no idempotency key made two orders. It exits 1 on any violation.
//
//	go run ./bench/cmd/onsale-kill -rounds 50
//	go run ./bench/cmd/onsale-kill -preload 1000000 -rounds 3
//	go run ./bench/cmd/onsale-kill -seed 42 -rounds 5   # replays a run's kill schedule and traffic
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/onsale/onsale/bench/reliability"
)

func main() {
	var cfg reliability.Config
	var seed int64
	flag.IntVar(&cfg.Rounds, "rounds", 50, "kills, each followed by a restart and a full verification")
	flag.Int64Var(&seed, "seed", -1, "seed of the kill moments and the traffic; -1 takes one from the clock")
	flag.IntVar(&cfg.Workers, "workers", 16, "concurrent buyers")
	flag.StringVar(&cfg.Bin, "bin", "", "onsale binary; empty builds one from this module")
	flag.StringVar(&cfg.DataDir, "data", "", "data directory; empty uses a temporary one, removed at the end")
	flag.IntVar(&cfg.Shards, "shards", 2, "the server's -shards")
	flag.IntVar(&cfg.StockPerTier, "stock", 60, "stock of each of the two tiers of a round's sale")
	flag.IntVar(&cfg.Preload, "preload", 0, "orders to write into the log before the first start")
	flag.DurationVar(&cfg.RoundTimeout, "round-timeout", time.Minute, "longest load phase of a round")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "onsale-kill: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	if seed < 0 {
		seed = time.Now().UnixNano() & (1<<62 - 1)
	}
	cfg.Seed = uint64(seed)
	cfg.Out = os.Stdout
	fmt.Printf("onsale-kill: seed %d (rerun with -seed %d)\n", seed, seed)

	sum, err := reliability.Run(cfg)
	sum.Report(os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "onsale-kill:", err)
		os.Exit(1)
	}
	if n := sum.Violations.Total(); n > 0 {
		fmt.Fprintf(os.Stderr, "onsale-kill: %d violations (seed %d)\n", n, seed)
		os.Exit(1)
	}
}
