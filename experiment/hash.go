package experiment

import "strconv"

// Buckets is the resolution of assignment: a unit's bucket is in
// [0, Buckets), so coverage and weights are honoured to 0.01 %.
const Buckets = 10_000

// fnv1a32 is the 32-bit FNV-1a hash.
func fnv1a32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

// Bucket returns unit's bucket under seed, GrowthBook's hashing v2:
// fnv1a(decimal(fnv1a(seed + unit))) mod 10,000. One FNV-1a round mixes
// the last bytes poorly: sequential ids ("job-1", "job-2", …) differ only
// there and would land in neighbouring buckets; hashing the decimal digits
// of the first hash again spreads them.
func Bucket(seed, unit string) int {
	inner := fnv1a32(seed + unit)
	var buf [10]byte
	return int(fnv1a32(string(strconv.AppendUint(buf[:0], uint64(inner), 10))) % Buckets)
}

// inNamespace reports whether unit falls in the namespace range
// [start, end) of [0, 1). The namespace hash has its own salt, so it is
// independent of every experiment's bucket.
func inNamespace(name string, start, end float64, unit string) bool {
	b := float64(Bucket("__namespace:"+name+":", unit)) / Buckets
	return b >= start && b < end
}
