//go:build !invariants

package engine

// invariantsOn makes every shard recount its state after every batch.
const invariantsOn = false
