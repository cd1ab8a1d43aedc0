//! Example hippo plugin: pure compute tasks that never touch the host.
//!
//! - `example.fib` `{"n": 90}` → `{"value": 2880067194370816120}`: the n-th
//!   Fibonacci number (`fib(0) = 0`, `fib(1) = 1`). Past `n = 93` the value
//!   does not fit in a u64 and the input is rejected as bad input.
//! - `example.primes` `{"n": 100}` → `{"count": 25}`: how many primes are
//!   below `n`, by a sieve over odd numbers (one bit each).
//!
//! Neither task logs, reports progress or reads its deadline, so the
//! component imports none of the `hippo:tasks` host interfaces.

use hippo_sdk::{Context, Plugin, Task, TaskError};
use serde::{Deserialize, Serialize};

/// Input of `example.fib`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FibInput {
    n: u32,
}

/// Output of `example.fib`.
#[derive(Debug, Serialize)]
struct FibOutput {
    value: u64,
}

/// Computes the n-th Fibonacci number, or rejects `n` whose value overflows.
fn fib(_ctx: &Context, input: FibInput) -> Result<FibOutput, TaskError> {
    let (mut current, mut next) = (0u64, 1u64);
    for i in 0..input.n {
        let after = current.checked_add(next);
        current = next;
        next = match after {
            Some(after) => after,
            // `current` is fib(i + 1); it only matters if the loop goes on.
            None if i + 1 == input.n => 0,
            None => {
                return Err(TaskError::bad_input(format!(
                    "fib({}) does not fit in a u64; n must be at most 93",
                    input.n
                )));
            }
        };
    }
    Ok(FibOutput { value: current })
}

/// The largest `n` `example.primes` accepts: the sieve then takes 62.5 MB.
const MAX_PRIMES_N: u64 = 1_000_000_000;

/// Input of `example.primes`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrimesInput {
    n: u64,
}

/// Output of `example.primes`.
#[derive(Debug, Serialize)]
struct PrimesOutput {
    count: u64,
}

/// Counts the primes below `n`.
fn primes(_ctx: &Context, input: PrimesInput) -> Result<PrimesOutput, TaskError> {
    if input.n > MAX_PRIMES_N {
        return Err(TaskError::bad_input(format!(
            "n = {} is too large; at most {MAX_PRIMES_N}",
            input.n
        )));
    }
    Ok(PrimesOutput {
        count: count_primes_below(input.n),
    })
}

/// Sieve of Eratosthenes over the odd numbers below `n`; bit `i` of the
/// sieve stands for `2 * i + 1` and is set once that number is known not to
/// be prime.
fn count_primes_below(n: u64) -> u64 {
    if n <= 2 {
        return 0;
    }
    let n = usize::try_from(n).expect("n is capped well below usize::MAX");
    // The odd numbers below n are 1, 3, ..., n / 2 of them.
    let odds = n / 2;
    let mut composite = vec![0u64; odds.div_ceil(64)];
    let set = |bits: &mut [u64], i: usize| bits[i / 64] |= 1 << (i % 64);
    let is_set = |bits: &[u64], i: usize| bits[i / 64] & (1 << (i % 64)) != 0;
    // 1 is not prime.
    set(&mut composite, 0);
    let mut p = 3;
    while p * p < n {
        if !is_set(&composite, p / 2) {
            // The odd multiples of p from p², 2p apart: p apart as indices.
            let mut j = p * p / 2;
            while j < odds {
                set(&mut composite, j);
                j += p;
            }
        }
        p += 2;
    }
    let odd_primes = (0..odds).filter(|&i| !is_set(&composite, i)).count();
    // 2 is the one even prime.
    u64::try_from(odd_primes).expect("the count is below n") + 1
}

/// The plugin: both tasks, on the default queue.
fn plugin() -> Plugin {
    Plugin::new("example-fib", env!("CARGO_PKG_VERSION"))
        .task(
            Task::new(
                "example.fib",
                "Computes the n-th Fibonacci number (n at most 93)",
                fib,
            )
            .soft_time_limit_ms(2_000),
        )
        .task(
            Task::new(
                "example.primes",
                "Counts the primes below n (n at most 1e9)",
                primes,
            )
            .soft_time_limit_ms(10_000)
            .hard_time_limit_ms(30_000)
            .memory_bytes(128 * 1024 * 1024),
        )
}

hippo_sdk::export_plugin!(plugin);

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context::new("00000000-0000-4000-8000-000000000000", 1, "default", 0, 0)
    }

    fn run(task: &str, input: &str) -> Result<String, TaskError> {
        plugin()
            .run(&ctx(), task, input.as_bytes())
            .map(|out| String::from_utf8(out).unwrap())
    }

    #[test]
    fn fib_small_values() {
        let values: Vec<u64> = (0..10)
            .map(|n| fib(&ctx(), FibInput { n }).unwrap().value)
            .collect();
        assert_eq!(values, [0, 1, 1, 2, 3, 5, 8, 13, 21, 34]);
    }

    #[test]
    fn fib_93_is_the_largest() {
        assert_eq!(
            run("example.fib", r#"{"n": 93}"#).unwrap(),
            r#"{"value":12200160415121876738}"#
        );
        let err = run("example.fib", r#"{"n": 94}"#).unwrap_err();
        assert_eq!(
            err,
            TaskError::bad_input("fib(94) does not fit in a u64; n must be at most 93")
        );
    }

    #[test]
    fn fib_rejects_malformed_input() {
        assert!(matches!(
            run("example.fib", r#"{"n": -1}"#),
            Err(TaskError::BadInput(_))
        ));
        assert!(matches!(
            run("example.fib", r#"{"m": 1}"#),
            Err(TaskError::BadInput(_))
        ));
    }

    #[test]
    fn primes_below_n() {
        let counts: Vec<u64> = [0, 1, 2, 3, 4, 10, 11, 12, 100, 1_000, 1_000_000]
            .into_iter()
            .map(count_primes_below)
            .collect();
        assert_eq!(counts, [0, 0, 0, 1, 2, 4, 4, 5, 25, 168, 78_498]);
        assert_eq!(
            run("example.primes", r#"{"n": 100}"#).unwrap(),
            r#"{"count":25}"#
        );
    }

    #[test]
    fn primes_caps_n() {
        assert!(matches!(
            run("example.primes", r#"{"n": 1000000001}"#),
            Err(TaskError::BadInput(_))
        ));
    }
}
