package spend

import "hash/maphash"

// idSet maps the externalIds of one request to the index of their first
// occurrence. It is an open-addressing hash table whose slots hold a hash,
// the index and where the externalId's bytes are in one arena, so it holds
// no pointers: the garbage collector does not scan it. Each externalId
// costs its length in the arena and 32 to 64 bytes of slots (24-byte slots,
// from 3/8 to 3/4 full): about 70 MB for a million 20-byte externalIds. Equal hashes are told apart by comparing the bytes, so the
// answer is exact.
type idSet struct {
	seed  maphash.Seed
	slots []idSlot
	n     int
	arena []byte
}

type idSlot struct {
	hash uint64 // 0 for an empty slot; stored hashes have their low bit set
	at   uint64 // arena offset << 16 | length (an externalId has at most 200 bytes)
	idx  int64
}

func newIDSet() *idSet {
	return &idSet{seed: maphash.MakeSeed(), slots: make([]idSlot, 1<<12)}
}

// firstOrAdd returns the index of the first occurrence of id and true, or
// records idx as its first occurrence and returns false.
func (s *idSet) firstOrAdd(id string, idx int64) (int64, bool) {
	h := maphash.String(s.seed, id) | 1
	mask := uint64(len(s.slots) - 1)
	for i := (h >> 32) & mask; ; i = (i + 1) & mask {
		sl := &s.slots[i]
		if sl.hash == 0 {
			off := uint64(len(s.arena))
			s.arena = append(s.arena, id...)
			*sl = idSlot{hash: h, at: off<<16 | uint64(len(id)), idx: idx}
			if s.n++; s.n*4 > len(s.slots)*3 {
				s.grow()
			}
			return 0, false
		}
		if sl.hash == h {
			off, n := sl.at>>16, sl.at&0xffff
			if string(s.arena[off:off+n]) == id {
				return sl.idx, true
			}
		}
	}
}

func (s *idSet) grow() {
	old := s.slots
	s.slots = make([]idSlot, 2*len(old))
	mask := uint64(len(s.slots) - 1)
	for _, sl := range old {
		if sl.hash == 0 {
			continue
		}
		i := (sl.hash >> 32) & mask
		for s.slots[i].hash != 0 {
			i = (i + 1) & mask
		}
		s.slots[i] = sl
	}
}
