//! The CPU-bound workload of the runtime benchmark.
//!
//! The same source is compiled twice: natively into the bench driver, and to
//! `wasm32-wasip2` into the bench guest (`bench.crunch`), so the driver can
//! compare guest speed with native speed on identical code. It is pure
//! integer work on small stack buffers (a sieve of Eratosthenes, then a
//! multiply-xorshift hash folding the primes into a 256-word buffer), with
//! no allocation and no host calls, and gives the same result on 32-bit and
//! 64-bit targets.

/// Numbers the sieve covers in the first round; later rounds cover up to
/// [`LIMIT_SPREAD`] fewer, so no two neighbouring rounds do the same work.
pub const SIEVE_LEN: usize = 16 * 1024;
/// How far the sieve limit moves between rounds (cyclically).
pub const LIMIT_SPREAD: u64 = 4096;
const MIX_LEN: usize = 256;
/// The state before the first round: `crunch(0)`.
pub const SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// Runs `rounds` rounds of the workload and returns a checksum of all of
/// them: each round sieves the primes below a round-dependent limit, hashes
/// every prime into the buffer and the running state, then stirs the buffer.
/// Every round's work feeds the result, so none of it can be optimized away.
#[must_use]
pub fn crunch(rounds: u64) -> u64 {
    let mut composite = [false; SIEVE_LEN];
    let mut mix = [0u64; MIX_LEN];
    let mut state = SEED;
    for round in 0..rounds {
        let limit = SIEVE_LEN - (round % LIMIT_SPREAD) as usize;
        let sieve = &mut composite[..limit];
        mark_composites(sieve);
        for (n, _) in sieve
            .iter()
            .enumerate()
            .filter(|(_, composite)| !**composite)
        {
            let slot = n % MIX_LEN;
            mix[slot] = hash(mix[slot] ^ n as u64 ^ state);
            state = state.rotate_left(7) ^ mix[slot];
        }
        for i in 0..MIX_LEN {
            mix[i] = hash(mix[i].wrapping_add(mix[(i + 1) % MIX_LEN]) ^ round);
            state ^= mix[i];
        }
    }
    state
}

/// Sieve of Eratosthenes: afterwards `sieve[n]` is false exactly when `n`
/// is prime.
fn mark_composites(sieve: &mut [bool]) {
    sieve.fill(false);
    for n in sieve.iter_mut().take(2) {
        *n = true;
    }
    let mut p = 2;
    while p * p < sieve.len() {
        if !sieve[p] {
            let mut multiple = p * p;
            while multiple < sieve.len() {
                sieve[multiple] = true;
                multiple += p;
            }
        }
        p += 1;
    }
}

/// A 64-bit finalizer (splitmix64's): every input bit affects every output bit.
fn hash(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sieve_finds_the_primes() {
        let mut sieve = [false; 10_000];
        mark_composites(&mut sieve);
        let primes: Vec<usize> = (0..sieve.len()).filter(|&n| !sieve[n]).collect();
        assert_eq!(primes.len(), 1229);
        assert_eq!(&primes[..10], [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
        assert_eq!(primes.last(), Some(&9973));
    }

    #[test]
    fn zero_rounds_is_the_seed() {
        assert_eq!(crunch(0), SEED);
    }

    #[test]
    fn deterministic_and_every_round_counts() {
        let results: Vec<u64> = (0..8).map(crunch).collect();
        assert_eq!(results, (0..8).map(crunch).collect::<Vec<_>>());
        let mut distinct = results.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), results.len(), "{results:x?}");
    }

    #[test]
    fn pinned_checksum() {
        // Pins the workload: if this changes, figures measured before the
        // change are not comparable with figures measured after it.
        assert_eq!(crunch(5), 4_489_538_162_589_488_266);
    }

    #[test]
    fn hash_spreads_single_bits() {
        let base = hash(0);
        for bit in 0..64 {
            let flipped = (hash(1 << bit) ^ base).count_ones();
            assert!(
                (16..=48).contains(&flipped),
                "bit {bit}: {flipped} bits flipped"
            );
        }
    }
}
