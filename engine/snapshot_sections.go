package engine

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// A snapshot section is one feature's own part of a snapshot (format 4 on),
// so that a feature keeps its state, its encoder and its decoder in its own
// file and adds none of them to snapshot.go. Chunk 0 ends with
//
//	nsections | {tag uvarint(len(body)) body}*
//
// in ascending tag order, one entry per section that has something to say.
// A restore that meets a tag it does not know fails: a snapshot written by a
// newer onsale is not silently half-read.
type snapshotSection struct {
	tag byte
	// freeze runs on the shard's loop when a snapshot is taken: it copies
	// (or shares, for data that is only appended to) what the section needs
	// and returns the encoder that the snapshot writer runs later, on its
	// own goroutine. It returns nil when the section is empty.
	freeze func(st *state) func(b []byte) []byte
	// restore runs after every order of the snapshot exists, in tag order.
	restore func(st *state, body []byte) error
}

// snapshotSections are the sections known to this build, by tag. Feature
// files add theirs in an init function with registerSnapshotSection.
var snapshotSections [256]*snapshotSection

func registerSnapshotSection(s snapshotSection) {
	if snapshotSections[s.tag] != nil {
		panic(fmt.Sprintf("engine: snapshot section tag %d registered twice", s.tag))
	}
	snapshotSections[s.tag] = &s
}

// frozenSection is a section's encoder, taken by freeze.
type frozenSection struct {
	tag    byte
	encode func(b []byte) []byte
}

func (st *state) freezeSections() []frozenSection {
	var out []frozenSection
	for _, s := range snapshotSections {
		if s == nil {
			continue
		}
		if enc := s.freeze(st); enc != nil {
			out = append(out, frozenSection{s.tag, enc})
		}
	}
	return out
}

func appendSections(head []byte, sections []frozenSection) []byte {
	head = binary.AppendUvarint(head, uint64(len(sections)))
	var body []byte
	for _, s := range sections {
		body = s.encode(body[:0])
		head = binary.AppendUvarint(head, uint64(s.tag))
		head = binary.AppendUvarint(head, uint64(len(body)))
		head = append(head, body...)
	}
	return head
}

// readSections reads chunk 0's sections; restoreSections applies them once
// the orders exist.
func (r *restorer) readSections(d *decoder) {
	n := d.uvarint(256)
	last := -1
	for i := uint64(0); i < n && d.err == nil; i++ {
		tag := byte(d.uvarint(255))
		body := d.raw(d.uvarint(1 << 30))
		if d.err != nil {
			return
		}
		if int(tag) <= last {
			d.fail("snapshot sections out of order")
			return
		}
		last = int(tag)
		if snapshotSections[tag] == nil {
			d.fail(fmt.Sprintf("snapshot section %d not understood (written by a newer onsale?)", tag))
			return
		}
		// A copy: the journal may reuse the chunk's buffer once add returns,
		// and sections are restored at finish.
		r.sections = append(r.sections, rawSection{tag, slices.Clone(body)})
	}
}

type rawSection struct {
	tag  byte
	body []byte
}

func (r *restorer) restoreSections() error {
	for _, s := range r.sections {
		if err := snapshotSections[s.tag].restore(r.st, s.body); err != nil {
			return err
		}
	}
	r.sections = nil
	return nil
}

// perSaleListSection is a section holding one list per sale that has any:
//
//	nsales | {sale n {item}*n}
//
// in ascending sale order. list runs on the shard's loop (freeze) and
// returns what to write: a copy, or a prefix the loop only appends behind;
// put appends one item. restoreSale reads a sale's n > 0 items from d.
func perSaleListSection[T any](tag byte, name string, list func(*sale) []T, put func([]byte, T) []byte,
	restoreSale func(st *state, si int, n uint64, d *decoder) error) snapshotSection {
	return snapshotSection{
		tag: tag,
		freeze: func(st *state) func([]byte) []byte {
			type saleList struct {
				sale int
				list []T
			}
			var lists []saleList
			for i, sl := range st.sales {
				if l := list(sl); len(l) > 0 {
					lists = append(lists, saleList{i, l})
				}
			}
			if len(lists) == 0 {
				return nil
			}
			return func(b []byte) []byte {
				b = binary.AppendUvarint(b, uint64(len(lists)))
				for _, l := range lists {
					b = binary.AppendUvarint(b, uint64(l.sale))
					b = binary.AppendUvarint(b, uint64(len(l.list)))
					for _, v := range l.list {
						b = put(b, v)
					}
				}
				return b
			}
		},
		restore: func(st *state, body []byte) error {
			d := decoder{b: body}
			n := d.uvarint(uint64(len(st.sales)))
			last := -1
			for range n {
				si := int(d.uvarint(uint64(len(st.sales)) - 1))
				m := d.uvarint(uint64(len(d.b)))
				if d.err != nil {
					break
				}
				if si <= last || m == 0 {
					return fmt.Errorf("%w: %s: sales out of order or empty", errCorrupt, name)
				}
				last = si
				if err := restoreSale(st, si, m, &d); err != nil {
					return err
				}
			}
			if err := d.check(name); err != nil {
				return err
			}
			if len(d.b) != 0 {
				return fmt.Errorf("%w: %s: %d bytes left over", errCorrupt, name, len(d.b))
			}
			return nil
		},
	}
}
