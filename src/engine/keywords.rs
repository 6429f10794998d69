//! The keyword pass: every occurrence of every keyword (ASCII case-insensitive) in one pass
//! over the batch, without a lowercased copy.
//!
//! Why not an Aho-Corasick DFA: a DFA over hundreds of keywords is a chain of dependent
//! table loads, one per byte, and ran at 450-600 MiB/s on the development machine whatever
//! its size; it also needed the batch lowercased first. Here each position costs one
//! unaligned load, an OR, a multiply and one bit test in a small bitmap, with no dependency
//! between positions, so the CPU overlaps them:
//!
//! 1. *Sieve*: the first three bytes of every keyword, case-folded (`| 0x20` on each byte),
//!    are hashed into a bitmap sized so that about one bit in 128 is set (8 KiB for ~500
//!    distinct prefixes: it stays in L1). A position whose folded three bytes hash to a clear
//!    bit cannot start a keyword.
//! 2. *Second sieve*: three bytes are a weak filter (`mar` of `mariadb`, `inf`, `con` are
//!    everywhere in logs: on the issue's corpus one position in 23 passed it). At a position
//!    that passed, a second bitmap keyed on the folded *four* bytes (for keywords of four bytes
//!    or more) or on the three (for the three-byte keywords) drops ~3/4 of what remains
//!    before any table lookup. A folded fourth byte is never 0, so the two kinds of key
//!    never collide.
//! 3. *Verify*: an exact table of the three-byte prefixes gives the keywords that begin with
//!    them, each compared case-insensitively.
//!
//! Folding with `| 0x20` maps more than case (`@` to `` ` ``, `\r` to `-`), but it is the same
//! map on both sides and ASCII lowercase implies it (`lower(t) == k` ⇒ `t | 0x20 == k | 0x20`),
//! so the sieve has false candidates, which the exact check drops, and never a false miss.

/// Every keyword must have at least this many bytes (the rules' minimum).
pub const MIN_LEN: usize = 3;

/// Bits of the sieve's hash, at least and at most: 2^13 bits is 1 KiB, 2^18 bits 32 KiB.
const MIN_BITS: u32 = 13;
const MAX_BITS: u32 = 18;

/// A set of keywords compiled for [`Keywords::for_each`].
#[derive(Debug, Clone)]
pub struct Keywords {
    /// log2 of the sieve's size in bits.
    bits: u32,
    sieve: Box<[u64]>,
    /// The second sieve (see the module docs) and log2 of its size in bits.
    second: Box<[u64]>,
    second_bits: u32,
    /// Open-addressing table of the distinct folded prefixes: `(prefix, first, end)` into
    /// `entries`; `EMPTY` marks a free slot (a prefix is at most 24 bits).
    slots: Box<[(u32, u32, u32)]>,
    slot_bits: u32,
    /// True if some keyword is only three bytes long (the second sieve then also looks up
    /// the three-byte key).
    has_short: bool,
    /// The CPU has AVX2: [`Keywords::for_each`] runs the SIMD first stage.
    avx2: bool,
    /// Keywords grouped by folded prefix: (pattern index, lowercase bytes).
    entries: Vec<(u32, Box<[u8]>)>,
}

const EMPTY: u32 = u32::MAX;

/// `| 0x20` on each of eight bytes: the case fold of [`fold3`], a word at a time.
const FOLD8: u64 = 0x2020_2020_2020_2020;

#[inline(always)]
fn fold3(b0: u8, b1: u8, b2: u8) -> u32 {
    (u32::from(b0) | u32::from(b1) << 8 | u32::from(b2) << 16) | 0x0020_2020
}

#[inline(always)]
fn sieve_hash(k: u32, bits: u32) -> u32 {
    k.wrapping_mul(0x9E37_79B1) >> (32 - bits)
}

#[inline(always)]
fn second_hash(k: u32, bits: u32) -> u32 {
    k.wrapping_mul(0x2545_F491) >> (32 - bits)
}

#[inline(always)]
fn bit(map: &[u64], h: u32) -> bool {
    (map[h as usize >> 6] >> (h & 63)) & 1 != 0
}

/// The second sieve's key: four folded bytes, or three for a keyword of three bytes (its top
/// byte is 0, which no folded byte is).
#[inline(always)]
fn second_key(p: &[u8]) -> u32 {
    let k = fold3(p[0], p[1], p[2]);
    match p.get(3) {
        Some(&b) => k | u32::from(b | 0x20) << 24,
        None => k,
    }
}

fn cpu_has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // LOGVEIL_NO_SIMD=1 forces the portable path (to compare, or on a CPU that
        // misreports).
        std::env::var_os("LOGVEIL_NO_SIMD").is_none() && is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[inline(always)]
fn slot_hash(k: u32, bits: u32) -> u32 {
    k.wrapping_mul(0x85EB_CA77) >> (32 - bits)
}

impl Keywords {
    /// Compiles `patterns` (each at least [`MIN_LEN`] bytes; matched ASCII
    /// case-insensitively; a pattern's index is its position here). Duplicates are kept:
    /// each reports its own index.
    ///
    /// # Panics
    /// If a pattern is shorter than [`MIN_LEN`] (rule packs reject those at load).
    pub fn new<P: AsRef<[u8]>>(patterns: &[P]) -> Keywords {
        let mut by_prefix: Vec<(u32, u32, Box<[u8]>)> = patterns
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let p = p.as_ref();
                assert!(p.len() >= MIN_LEN, "keyword shorter than {MIN_LEN} bytes");
                let lower: Box<[u8]> = p.to_ascii_lowercase().into();
                (fold3(lower[0], lower[1], lower[2]), i as u32, lower)
            })
            .collect();
        by_prefix.sort_by_key(|e| (e.0, e.1));
        let mut distinct: Vec<(u32, u32, u32)> = Vec::new();
        for (i, e) in by_prefix.iter().enumerate() {
            match distinct.last_mut() {
                Some(d) if d.0 == e.0 => d.2 = i as u32 + 1,
                _ => distinct.push((e.0, i as u32, i as u32 + 1)),
            }
        }
        // About one bit in 128 set: few false candidates, and the sieve stays small.
        let want = (distinct.len().max(1) * 128).next_power_of_two();
        let bits = want.trailing_zeros().clamp(MIN_BITS, MAX_BITS);
        let mut sieve = vec![0u64; (1usize << bits) / 64].into_boxed_slice();
        // The exact table at most half full.
        let slot_bits = (distinct.len().max(1) * 2)
            .next_power_of_two()
            .trailing_zeros()
            .max(4);
        let mut slots = vec![(EMPTY, 0, 0); 1 << slot_bits].into_boxed_slice();
        let mask = (1usize << slot_bits) - 1;
        for &(k, first, end) in &distinct {
            let h = sieve_hash(k, bits) as usize;
            sieve[h >> 6] |= 1 << (h & 63);
            let mut s = slot_hash(k, slot_bits) as usize;
            while slots[s].0 != EMPTY {
                s = (s + 1) & mask;
            }
            slots[s] = (k, first, end);
        }
        // Keys of the second sieve: one per keyword (four bytes, or three for short ones).
        let mut keys: Vec<u32> = by_prefix
            .iter()
            .map(|(_, _, p)| second_key(&p[..p.len().min(4)]))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let want = (keys.len().max(1) * 64).next_power_of_two();
        let second_bits = want.trailing_zeros().clamp(MIN_BITS, MAX_BITS);
        let mut second = vec![0u64; (1usize << second_bits) / 64].into_boxed_slice();
        let has_short = by_prefix.iter().any(|(_, _, p)| p.len() == MIN_LEN);
        for &k in &keys {
            let h = second_hash(k, second_bits) as usize;
            second[h >> 6] |= 1 << (h & 63);
        }
        Keywords {
            bits,
            sieve,
            second,
            second_bits,
            has_short,
            avx2: cpu_has_avx2(),
            slots,
            slot_bits,
            entries: by_prefix.into_iter().map(|(_, i, p)| (i, p)).collect(),
        }
    }

    /// Calls `f(start, end, pattern)` for every occurrence of every pattern in `hay`
    /// (overlapping ones included), in order of `start`, then of pattern index.
    #[inline]
    pub fn for_each(&self, hay: &[u8], mut f: impl FnMut(usize, usize, usize)) {
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: `avx2` is set only when the CPU reported AVX2 (see `new`).
            let i = unsafe { self.sieve_avx2(hay, &mut f) };
            return self.sieve_scalar(hay, i, &mut f);
        }
        self.sieve_scalar(hay, 0, &mut f)
    }

    /// [`Keywords::for_each`] without the SIMD first stage: the portable path, and the
    /// reference the SIMD path is tested against.
    pub fn for_each_scalar(&self, hay: &[u8], mut f: impl FnMut(usize, usize, usize)) {
        self.sieve_scalar(hay, 0, &mut f)
    }

    /// The AVX2 first stage: the same sieve (same bitmap, same hash), eight positions per
    /// step. One 16-byte load broadcast to both halves, one shuffle that lays the three bytes
    /// of positions i..i+8 into eight lanes, the fold, the multiply, a gather of the eight
    /// bitmap words and a variable shift: ~10 instructions for eight positions where the
    /// scalar loop spends ~5 per position. Positions that pass go to the same `verify`, in
    /// order. Returns where the scalar loop takes over (the last < 16 bytes).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn sieve_avx2(&self, hay: &[u8], f: &mut impl FnMut(usize, usize, usize)) -> usize {
        use std::arch::x86_64::*;
        let n = hay.len();
        // Lane j (0..8) gets bytes j, j+1, j+2 of the 16 loaded and a zero (index 0x80).
        // The low half of the register holds positions 0..4, the high half 4..8; both
        // halves hold the same 16 bytes and `pshufb` indexes within each half.
        let ctrl = _mm256_setr_epi8(
            0, 1, 2, -128, 1, 2, 3, -128, 2, 3, 4, -128, 3, 4, 5, -128, //
            4, 5, 6, -128, 5, 6, 7, -128, 6, 7, 8, -128, 7, 8, 9, -128,
        );
        let fold = _mm256_set1_epi32(0x0020_2020);
        let mul = _mm256_set1_epi32(0x9E37_79B1_u32 as i32);
        let shift = _mm_cvtsi32_si128(32 - self.bits as i32);
        let low5 = _mm256_set1_epi32(31);
        // The bitmap as 32-bit words (little-endian: bit h of the u64 words is bit h & 31
        // of word h >> 5).
        let base = self.sieve.as_ptr() as *const i32;
        let step = |i: usize| -> i32 {
            // SAFETY (caller): i + 16 <= n.
            let v =
                _mm256_broadcastsi128_si256(_mm_loadu_si128(hay.as_ptr().add(i) as *const __m128i));
            let k = _mm256_or_si256(_mm256_shuffle_epi8(v, ctrl), fold);
            let h = _mm256_srl_epi32(_mm256_mullo_epi32(k, mul), shift);
            let w = _mm256_i32gather_epi32::<4>(base, _mm256_srli_epi32::<5>(h));
            let b = _mm256_sllv_epi32(w, _mm256_sub_epi32(low5, _mm256_and_si256(h, low5)));
            _mm256_movemask_ps(_mm256_castsi256_ps(b))
        };
        let mut i = 0;
        // Sixteen positions per iteration: two independent gathers in flight.
        while i + 24 <= n {
            let mut m = step(i) as u32 | (step(i + 8) as u32) << 8;
            while m != 0 {
                let j = m.trailing_zeros() as usize;
                self.verify(hay, i + j, f);
                m &= m - 1;
            }
            i += 16;
        }
        i
    }

    fn sieve_scalar(&self, hay: &[u8], start: usize, f: &mut impl FnMut(usize, usize, usize)) {
        let n = hay.len();
        if n < MIN_LEN {
            return;
        }
        let bits = self.bits;
        let sieve = &self.sieve[..];
        // Four positions per step, each from its own bytes of one 8-byte load (positions
        // i..i+4 need bytes up to i+6): independent work the CPU runs side by side.
        let mut i = start;
        while i + 8 <= n {
            let w = u64::from_le_bytes(hay[i..i + 8].try_into().expect("8 bytes")) | FOLD8;
            let mut any = 0u64;
            let mut hits = [false; 4];
            for (j, hit) in hits.iter_mut().enumerate() {
                let k = (w >> (8 * j)) as u32 & 0x00FF_FFFF;
                let h = sieve_hash(k, bits) as usize;
                let b = (sieve[h >> 6] >> (h & 63)) & 1;
                *hit = b != 0;
                any |= b;
            }
            if any != 0 {
                for (j, &hit) in hits.iter().enumerate() {
                    if hit {
                        self.verify(hay, i + j, f);
                    }
                }
            }
            i += 4;
        }
        while i + MIN_LEN <= n {
            let k = fold3(hay[i], hay[i + 1], hay[i + 2]);
            if bit(sieve, sieve_hash(k, bits)) {
                self.verify(hay, i, f);
            }
            i += 1;
        }
    }

    /// The keywords that begin at `i` (its folded prefix's bit was set).
    #[inline(never)]
    fn verify(&self, hay: &[u8], i: usize, f: &mut impl FnMut(usize, usize, usize)) {
        let k = fold3(hay[i], hay[i + 1], hay[i + 2]);
        // The four-byte key extends the three-byte one already folded.
        let long = hay.len() > i + 3
            && bit(
                &self.second,
                second_hash(k | u32::from(hay[i + 3] | 0x20) << 24, self.second_bits),
            );
        let short = self.has_short && bit(&self.second, second_hash(k, self.second_bits));
        if !(long || short) {
            return;
        }
        let mask = (1usize << self.slot_bits) - 1;
        let mut s = slot_hash(k, self.slot_bits) as usize;
        let (first, end) = loop {
            let (key, first, end) = self.slots[s];
            if key == k {
                break (first as usize, end as usize);
            }
            if key == EMPTY {
                return;
            }
            s = (s + 1) & mask;
        };
        for (pattern, kw) in &self.entries[first..end] {
            if let Some(t) = hay.get(i..i + kw.len()) {
                if t.eq_ignore_ascii_case(kw) {
                    f(i, i + kw.len(), *pattern as usize);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every occurrence by brute force: the reference the sieve is checked against.
    fn naive(pats: &[&[u8]], hay: &[u8]) -> Vec<(usize, usize, usize)> {
        let mut v = Vec::new();
        for i in 0..hay.len() {
            for (p, kw) in pats.iter().enumerate() {
                if let Some(t) = hay.get(i..i + kw.len()) {
                    if t.eq_ignore_ascii_case(kw) {
                        v.push((i, i + kw.len(), p));
                    }
                }
            }
        }
        v
    }

    /// What `for_each` reports; on a CPU with AVX2 also checks that the SIMD first stage and
    /// the portable one report exactly the same, so every test below covers both paths.
    fn found(k: &Keywords, hay: &[u8]) -> Vec<(usize, usize, usize)> {
        let mut v = Vec::new();
        k.for_each(hay, |s, e, p| v.push((s, e, p)));
        let mut w = Vec::new();
        k.for_each_scalar(hay, |s, e, p| w.push((s, e, p)));
        assert_eq!(
            v,
            w,
            "SIMD and portable paths differ on {} bytes",
            hay.len()
        );
        v
    }

    #[test]
    fn simd_path_is_taken_where_the_cpu_has_it() {
        // The equivalence checks in `found` are only worth something if the SIMD path runs.
        #[cfg(target_arch = "x86_64")]
        if std::env::var_os("LOGVEIL_NO_SIMD").is_none() {
            let k = Keywords::new(&[b"abc"]);
            assert_eq!(k.avx2, is_x86_feature_detected!("avx2"));
        }
    }

    #[test]
    fn simd_stage_hands_over_at_every_length_and_offset() {
        // A keyword at each offset of haystacks around the SIMD loop's 16-position steps and
        // its 24-byte end condition: each occurrence reported once, none lost at the seam.
        let pats: Vec<&[u8]> = vec![b"pwd", b"token", b"x-api-key"];
        let k = Keywords::new(&pats);
        for len in 0..72usize {
            for (p, kw) in pats.iter().enumerate() {
                for at in 0..=len.saturating_sub(kw.len()) {
                    if at + kw.len() > len {
                        continue;
                    }
                    let mut hay = vec![b'.'; len];
                    hay[at..at + kw.len()].copy_from_slice(kw);
                    assert_eq!(
                        found(&k, &hay),
                        vec![(at, at + kw.len(), p)],
                        "len {len} at {at}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_occurrence_in_order_any_case_any_alignment() {
        let pats: Vec<&[u8]> = vec![
            b"token",
            b"tok",
            b"x-auth-token",
            b"://",
            b"pass",
            b"password",
        ];
        let k = Keywords::new(&pats);
        for pad in 0..12 {
            let hay = format!(
                "{}Token=1 X-AUTH-TOKEN: y https://h PassWord=p tok",
                "z".repeat(pad)
            );
            assert_eq!(
                found(&k, hay.as_bytes()),
                naive(&pats, hay.as_bytes()),
                "pad {pad}"
            );
        }
        // A keyword at the very end, and haystacks shorter than a load.
        assert_eq!(found(&k, b"tok"), vec![(0, 3, 1)]);
        assert_eq!(found(&k, b"xx://"), vec![(2, 5, 3)]);
        assert!(found(&k, b"to").is_empty());
        // A long keyword ending the haystack, and its prefix cut short there (the second
        // sieve's four-byte key must not read past the end).
        assert_eq!(found(&k, b"xpass"), vec![(1, 5, 4)]);
        assert!(found(&k, b"xpas").is_empty());
        assert!(found(&k, b"").is_empty());
    }

    #[test]
    fn folding_beyond_case_never_makes_a_false_hit() {
        // `| 0x20` maps `@` to `` ` `` and `\r` to `-`: the sieve lets those through, the
        // exact check must not.
        let pats: Vec<&[u8]> = vec![b"`ab", b"-p'", b"key-"];
        let k = Keywords::new(&pats);
        assert!(found(&k, b"@ab \rp' key\r").is_empty());
        assert_eq!(found(&k, b"`AB -P' KEY-").len(), 3);
    }

    #[test]
    fn same_as_brute_force_on_generated_text() {
        // Keywords of the shapes rules use, and haystacks made of their pieces, their
        // case variants, near misses and random bytes (non-ASCII and control bytes too).
        let pats: Vec<Vec<u8>> = [
            "ghp_",
            "glpat-",
            "xoxb-",
            "akia",
            "password",
            "passwd",
            "pwd",
            "://",
            ".co",
            ".com",
            "secret",
            "token",
            "bearer ",
            "-----begin",
            "sk_live_",
            "eyj",
            "api_key",
            "apikey",
            "authorization",
            "pass",
            "\\/\\/",
            "0q~",
            "1q~",
            "aws",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        let refs: Vec<&[u8]> = pats.iter().map(|p| p.as_slice()).collect();
        let k = Keywords::new(&refs);
        let mut rng = crate::corpus::Rng(11);
        for round in 0..400 {
            let mut hay = Vec::new();
            let len = (rng.next_u64() % 300) as usize;
            while hay.len() < len {
                match rng.next_u64() % 5 {
                    0 | 1 => {
                        let p = &pats[(rng.next_u64() % pats.len() as u64) as usize];
                        // Sometimes cut short, sometimes in random case.
                        let cut = if rng.next_u64() % 4 == 0 {
                            (rng.next_u64() % p.len() as u64) as usize
                        } else {
                            p.len()
                        };
                        for &b in &p[..cut] {
                            hay.push(if rng.next_u64() % 2 == 0 {
                                b.to_ascii_uppercase()
                            } else {
                                b
                            });
                        }
                    }
                    2 => hay.push((rng.next_u64() % 256) as u8),
                    _ => hay.push(b"abcdefgpstwo_-:/.=~ \n"[(rng.next_u64() % 21) as usize]),
                }
            }
            assert_eq!(found(&k, &hay), naive(&refs, &hay), "round {round}");
        }
    }

    #[test]
    fn duplicates_report_each_index_and_big_sets_stay_small() {
        let k = Keywords::new(&[b"abc".as_slice(), b"abc", b"ABCD"]);
        assert_eq!(found(&k, b"xabcd"), vec![(1, 4, 0), (1, 4, 1), (1, 5, 2)]);
        // Thousands of keywords with distinct prefixes: the sieve grows to its cap (32 KiB)
        // and no further, and still finds each one.
        let alpha = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let many: Vec<Vec<u8>> = (0..5000usize)
            .map(|i| {
                let c = |d: usize| alpha[(i / d) % alpha.len()];
                vec![c(1), c(36), c(36 * 36), b'_', b'k']
            })
            .collect();
        let k = Keywords::new(&many);
        assert_eq!(k.sieve.len() * 8, 32 * 1024);
        let hay = b".. ABC_K and 9ZC_k ..";
        let want: Vec<(usize, usize, usize)> = [(3, b"abc_k"), (13, b"9zc_k")]
            .iter()
            .map(|(at, kw)| {
                let p = many.iter().position(|m| m == kw).expect("in the set");
                (*at, at + 5, p)
            })
            .collect();
        assert_eq!(found(&k, hay), want);
    }
}
