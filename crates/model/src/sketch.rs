//! DDSketch: mergeable quantile sketches with a relative-error guarantee.
//!
//! A value `v > 0` is counted in bin `ceil(log_γ v)` with `γ = (1 + α) / (1 - α)`; every value in a
//! bin is within `α` (here 1%) of the bin's representative `2γ^k / (γ + 1)`, so any quantile read
//! back is within 1% of the exact one, whatever the distribution (Masson, Rim, Lee: "DDSketch", VLDB
//! 2019). Values at or below [`MIN_VALUE`] (latencies of 0, say) count in a zero bin that reads
//! back as 0.
//!
//! Sightline keeps its own implementation rather than `sketches-ddsketch` because rollups need
//! **signed** bins: when a stored call is replaced (its GenAI events arrived later) or re-priced,
//! its old contribution is subtracted from the rollup it was added to, which is exact with
//! per-bin counts and impossible with a sketch that only merges. No bins are ever collapsed (which
//! would make subtraction approximate): they are a dense vector over the keys seen, which for
//! values from 1 µs to a day is at most ~1,300 bins and typically a few hundred, so merging many
//! sketches is a run of additions.
//!
//! [`DdSketch::encode`] writes a compact binary form (varint bin deltas and counts, ~2–3 bytes a
//! bin) for the store; [`DdSketch::decode`] reads it and [`DdSketch::merge_encoded`] merges such
//! bytes without building an intermediate sketch.

/// Relative accuracy of every quantile: 1%.
pub const RELATIVE_ACCURACY: f64 = 0.01;
/// Values at or below this count as zero.
pub const MIN_VALUE: f64 = 1e-9;

const FORMAT_VERSION: u8 = 1;
/// Keys of values from [`MIN_VALUE`] to `f64::MAX` lie within these bounds (about -1,040 and
/// 35,500); anything outside is not a sketch this module wrote.
const MIN_KEY: i32 = -2_000;
const MAX_KEY: i32 = 40_000;

fn gamma() -> f64 {
    (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)
}

/// A sketch that is not in the binary form [`DdSketch::encode`] writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid sketch encoding: {0}")]
pub struct SketchDecodeError(&'static str);

/// A DDSketch with signed bins (see the module documentation). Bins are a dense vector from the
/// lowest key seen to the highest (a few hundred at most for real latencies), so merging is a
/// run of additions; zero bins are allowed inside it and skipped when encoding.
#[derive(Debug, Clone, Default)]
pub struct DdSketch {
    offset: i32,
    bins: Vec<i64>,
    zero: i64,
    sum: f64,
}

impl PartialEq for DdSketch {
    /// Equal when they count the same values (bin layout aside); sums compared exactly.
    fn eq(&self, other: &Self) -> bool {
        self.zero == other.zero && self.sum == other.sum && self.bins().eq(other.bins())
    }
}

impl DdSketch {
    /// An empty sketch.
    pub fn new() -> Self {
        Self::default()
    }

    fn key(value: f64) -> i32 {
        // ln(v) / ln(γ), rounded up; the clamp keeps absurd inputs in range.
        let k = (value.ln() / gamma().ln()).ceil();
        k.clamp(f64::from(MIN_KEY), f64::from(MAX_KEY)) as i32
    }

    fn value_of(key: i32) -> f64 {
        let g = gamma();
        2.0 * g.powi(key) / (g + 1.0)
    }

    /// Counts `value` `weight` times (a negative weight removes earlier additions). NaN and
    /// infinite values are ignored; negative values count as zero.
    pub fn add_weighted(&mut self, value: f64, weight: i64) {
        if !value.is_finite() || weight == 0 {
            return;
        }
        if value <= MIN_VALUE {
            self.zero += weight;
        } else {
            self.add_bin(Self::key(value), weight);
        }
        self.sum += weight as f64 * value.max(0.0);
    }

    /// Counts `value` once.
    pub fn add(&mut self, value: f64) {
        self.add_weighted(value, 1);
    }

    /// Adds every count of `other` (times `sign`: 1 merges, -1 subtracts).
    pub fn merge_signed(&mut self, other: &DdSketch, sign: i64) {
        if let (Some(lo), Some(hi)) = (other.min_key(), other.max_key()) {
            self.reserve_range(lo, hi);
            // Both now hold keys lo..=hi: add the two runs of bins element by element.
            let src = &other.bins[(lo - other.offset) as usize..=(hi - other.offset) as usize];
            let start = (lo - self.offset) as usize;
            for (d, c) in self.bins[start..start + src.len()].iter_mut().zip(src) {
                *d = d.wrapping_add(c.wrapping_mul(sign));
            }
        }
        self.zero += other.zero * sign;
        self.sum += sign as f64 * other.sum;
    }

    /// Merges `other` into this sketch.
    pub fn merge(&mut self, other: &DdSketch) {
        self.merge_signed(other, 1);
    }

    /// Non-zero bins, lowest key first.
    fn bins(&self) -> impl DoubleEndedIterator<Item = (i32, i64)> + '_ {
        let offset = self.offset;
        self.bins
            .iter()
            .enumerate()
            .filter(|(_, c)| **c != 0)
            .map(move |(i, c)| (offset + i as i32, *c))
    }

    fn min_key(&self) -> Option<i32> {
        self.bins().next().map(|(k, _)| k)
    }

    fn max_key(&self) -> Option<i32> {
        self.bins().next_back().map(|(k, _)| k)
    }

    /// Makes room for keys `lo..=hi` (one reallocation at most).
    fn reserve_range(&mut self, lo: i32, hi: i32) {
        if self.bins.is_empty() {
            self.offset = lo;
            self.bins = vec![0; (i64::from(hi) - i64::from(lo) + 1) as usize];
            return;
        }
        let end = self.offset + self.bins.len() as i32; // exclusive
        if lo < self.offset {
            let grow = (self.offset - lo) as usize;
            let mut v = vec![0; grow + self.bins.len()];
            v[grow..].copy_from_slice(&self.bins);
            self.bins = v;
            self.offset = lo;
        }
        if hi >= end {
            let len = (i64::from(hi) - i64::from(self.offset) + 1) as usize;
            self.bins.resize(len, 0);
        }
    }

    fn add_bin(&mut self, key: i32, count: i64) {
        if count == 0 {
            return;
        }
        self.reserve_range(key, key);
        let i = (key - self.offset) as usize;
        self.bins[i] = self.bins[i].wrapping_add(count);
    }

    /// Values counted (the sum of all bins).
    pub fn count(&self) -> i64 {
        self.bins
            .iter()
            .fold(self.zero, |total, c| total.wrapping_add(*c))
    }

    /// Sum of the values counted (exact, not binned).
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// Whether nothing is counted.
    pub fn is_empty(&self) -> bool {
        self.count() <= 0
    }

    /// The `q`-quantile (`0 ≤ q ≤ 1`), within 1% of the value of rank `floor(q · (n - 1))` in the
    /// sorted input; `None` when the sketch is empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n <= 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = (q * (n - 1) as f64).floor() as i64;
        let mut seen = self.zero;
        if seen > rank {
            return Some(0.0);
        }
        for (k, c) in self.bins() {
            seen = seen.saturating_add(c);
            if seen > rank {
                return Some(Self::value_of(k));
            }
        }
        self.max_key().map(Self::value_of)
    }

    /// How many counted values are at most `bound` (bins are attributed by their representative,
    /// so a value within 1% of `bound` may land on either side).
    pub fn count_at_most(&self, bound: f64) -> i64 {
        let mut n = if bound >= 0.0 { self.zero } else { 0 };
        for (k, c) in self.bins() {
            if Self::value_of(k) > bound {
                break;
            }
            n += c;
        }
        n
    }

    /// The compact binary form: version, zero count, sum, bin count, then per bin the key's
    /// difference from the previous key and the count, as zigzag varints.
    pub fn encode(&self) -> Vec<u8> {
        let n = self.bins.iter().filter(|c| **c != 0).count();
        let mut out = Vec::with_capacity(12 + 3 * n);
        out.push(FORMAT_VERSION);
        put_varint(&mut out, zigzag(self.zero));
        out.extend_from_slice(&self.sum.to_le_bytes());
        put_varint(&mut out, n as u64);
        let mut prev = 0i64;
        for (k, c) in self.bins() {
            put_varint(&mut out, zigzag(i64::from(k) - prev));
            put_varint(&mut out, zigzag(c));
            prev = i64::from(k);
        }
        out
    }

    /// Reads the form [`encode`](Self::encode) writes.
    pub fn decode(bytes: &[u8]) -> Result<Self, SketchDecodeError> {
        let mut s = Self::new();
        s.merge_encoded(bytes, 1)?;
        Ok(s)
    }

    /// Merges an encoded sketch (times `sign`) into this one without decoding it first. An empty
    /// byte string is an empty sketch.
    pub fn merge_encoded(&mut self, bytes: &[u8], sign: i64) -> Result<(), SketchDecodeError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let mut r = Reader { bytes, at: 0 };
        if r.byte()? != FORMAT_VERSION {
            return Err(SketchDecodeError("unknown version"));
        }
        let zero = unzigzag(r.varint()?);
        let sum = f64::from_le_bytes(r.array8()?);
        let n = r.varint()?;
        if n > bytes.len() as u64 {
            return Err(SketchDecodeError("bin count exceeds the data"));
        }
        let mut key = 0i64;
        for _ in 0..n {
            key = key
                .checked_add(unzigzag(r.varint()?))
                .ok_or(SketchDecodeError("bin key out of range"))?;
            let k = i32::try_from(key)
                .ok()
                .filter(|k| (MIN_KEY..=MAX_KEY).contains(k))
                .ok_or(SketchDecodeError("bin key out of range"))?;
            let c = unzigzag(r.varint()?);
            self.add_bin(k, c.wrapping_mul(sign));
        }
        if r.at != bytes.len() {
            return Err(SketchDecodeError("trailing bytes"));
        }
        self.zero = self.zero.wrapping_add(zero.wrapping_mul(sign));
        self.sum += sign as f64 * sum;
        Ok(())
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, SketchDecodeError> {
        let b = *self
            .bytes
            .get(self.at)
            .ok_or(SketchDecodeError("truncated"))?;
        self.at += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, SketchDecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(SketchDecodeError("varint too long"))
    }

    fn array8(&mut self) -> Result<[u8; 8], SketchDecodeError> {
        let end = self.at + 8;
        let slice = self
            .bytes
            .get(self.at..end)
            .ok_or(SketchDecodeError("truncated"))?;
        self.at = end;
        let mut a = [0u8; 8];
        a.copy_from_slice(slice);
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const QS: [f64; 7] = [0.0, 0.01, 0.5, 0.9, 0.95, 0.99, 1.0];

    fn exact(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
    }

    fn check(values: &[f64]) {
        let mut s = DdSketch::new();
        for v in values {
            s.add(*v);
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        for q in QS {
            let want = exact(&sorted, q);
            let got = s.quantile(q).unwrap();
            let tolerance = RELATIVE_ACCURACY * want.abs() + 1e-9;
            assert!(
                (got - want).abs() <= tolerance * 1.000_001,
                "q={q}: got {got}, exact {want}"
            );
        }
    }

    proptest! {
        #[test]
        fn quantiles_within_one_percent_uniform(values in prop::collection::vec(0.001f64..1e6, 1..2000)) {
            check(&values);
        }

        #[test]
        fn quantiles_within_one_percent_log_spread(exps in prop::collection::vec(-6.0f64..9.0, 1..2000)) {
            let values: Vec<f64> = exps.iter().map(|e| 10f64.powf(*e)).collect();
            check(&values);
        }

        #[test]
        fn quantiles_within_one_percent_adversarial(
            base in 0.001f64..1e5,
            n_low in 1usize..500,
            n_high in 0usize..20,
            spike in 1e3f64..1e8,
        ) {
            // Heavy mass at one value plus a few far outliers; values exactly on bin boundaries.
            let g = gamma();
            let mut values = vec![base; n_low];
            values.extend((0..n_high).map(|i| spike * g.powi(i as i32)));
            values.extend((0..10).map(|i| g.powi(i - 5)));
            values.push(0.0);
            check(&values);
        }

        #[test]
        fn merging_equals_one_pass(a in prop::collection::vec(0.0f64..1e5, 0..500), b in prop::collection::vec(0.0f64..1e5, 0..500)) {
            let mut one = DdSketch::new();
            let mut left = DdSketch::new();
            let mut right = DdSketch::new();
            for v in &a { one.add(*v); left.add(*v); }
            for v in &b { one.add(*v); right.add(*v); }
            left.merge(&right);
            prop_assert!(left.bins().eq(one.bins()));
            prop_assert_eq!(left.zero, one.zero);
            prop_assert!((left.sum - one.sum).abs() <= 1e-6 * one.sum.abs().max(1.0));
            // Through the binary form too.
            let mut merged = DdSketch::decode(&DdSketch::new().encode()).unwrap();
            merged.merge_encoded(&DdSketch::decode(&left.encode()).unwrap().encode(), 1).unwrap();
            prop_assert!(merged.bins().eq(one.bins()));
        }

        #[test]
        fn subtracting_undoes_adding(a in prop::collection::vec(0.0f64..1e5, 0..300), b in prop::collection::vec(0.0f64..1e5, 0..300)) {
            let mut s = DdSketch::new();
            let mut only_a = DdSketch::new();
            for v in &a { s.add(*v); only_a.add(*v); }
            let mut extra = DdSketch::new();
            for v in &b { s.add(*v); extra.add(*v); }
            let mut t = s.clone();
            s.merge_encoded(&extra.encode(), -1).unwrap();
            prop_assert!(s.bins().eq(only_a.bins()));
            prop_assert_eq!(s.count(), a.len() as i64);
            // And in memory.
            t.merge_signed(&extra, -1);
            prop_assert!(t.bins().eq(only_a.bins()));
            prop_assert_eq!(t.count(), a.len() as i64);
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = DdSketch::decode(&bytes);
        }
    }

    #[test]
    fn empty_and_zero() {
        let s = DdSketch::new();
        assert_eq!(s.quantile(0.5), None);
        assert!(s.is_empty());
        let mut z = DdSketch::new();
        z.add(0.0);
        z.add(f64::NAN);
        assert_eq!(z.count(), 1);
        assert_eq!(z.quantile(0.99), Some(0.0));
        assert_eq!(DdSketch::decode(&[]).unwrap(), DdSketch::new());
        assert!(DdSketch::decode(&[9]).is_err());
    }

    #[test]
    fn encoding_is_compact() {
        let mut s = DdSketch::new();
        for i in 0..10_000 {
            s.add(200.0 + (i % 1000) as f64);
        }
        let bytes = s.encode();
        assert!(bytes.len() < 400, "{} bytes", bytes.len());
        assert!(DdSketch::decode(&bytes).unwrap().bins().eq(s.bins()));
    }

    #[test]
    fn counts_below_a_bound() {
        let mut s = DdSketch::new();
        for v in [0.0, 5.0, 50.0, 500.0] {
            s.add(v);
        }
        assert_eq!(s.count_at_most(10.0), 2);
        assert_eq!(s.count_at_most(1e9), 4);
        assert_eq!(s.count_at_most(-1.0), 0);
    }
}
