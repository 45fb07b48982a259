//! The mining kernel: the minimum of [`hash(msg, n)`](crate::hash::hash) over an inclusive
//! range of nonces, ties to the smallest nonce, as fast as the CPU allows — and, for target
//! mode, the smallest nonce whose hash has enough leading zero bits ([`first_hit`]). Both
//! searches work for either [`Algo`]: `sha256` (the default) and `sha256d`.
//!
//! ```
//! use bitcoin_core::hash::{Algo, Zeros};
//! use bitcoin_core::kernel::{first_hit, min_hash, Hit, MinHash};
//! assert_eq!(min_hash("msg", 0, 2), MinHash { hash: 4754799531757243342, nonce: 1 });
//! let zeros = Zeros::new(2).unwrap();
//! // hash("msg", n) starts with the bits 1…, 01…, 01… for n = 0, 1, 2.
//! assert_eq!(first_hit("msg", Algo::Sha256, 0, 2, zeros), None);
//! let one = Zeros::new(1).unwrap();
//! assert_eq!(first_hit("msg", Algo::Sha256, 0, 2, one),
//!            Some(Hit { hash: 4754799531757243342, nonce: 1 }));
//! ```
//!
//! # How
//!
//! Nothing is allocated or formatted per nonce. The full 64-byte blocks of `msg ‖ " "` are
//! compressed once (the midstate); the one or two blocks left — the rest of the prefix, the
//! nonce's digits, SHA-256's padding and length — are laid out once per digit count, and the
//! digits are then incremented in place. Several nonces are hashed at once, in the lanes of a
//! [`Path`]: AVX-512 (16), AVX2 (8), interleaved SHA-NI (4), or the portable
//! `sha2::compress256` (1). [`Path::best`] picks the fastest one the CPU supports;
//! [`Kernel::new`] forces one.
//!
//! # Chunked use
//!
//! The per-call setup is small (a few hundred nanoseconds once the message is [prepared](
//! Kernel::prepare)), so a caller that must stay cancellable can split its range into chunks
//! and fold the results with `min` ([`MinHash`]'s order is the answer's: smaller hash, then
//! smaller nonce; [`MinHash::MAX`] is the identity).
//!
//! A target search ([`Prepared::first_hit`]) is itself chunked: it walks its range in
//! ascending chunks of [`FIRST_HIT_CHUNK`] nonces and stops after the first chunk holding a
//! qualifying nonce. A caller splitting a range itself must do the same — search the chunks in
//! ascending order, and keep the smallest nonce found — for the answer to be the smallest.
//!
//! # `sha256d`
//!
//! The second SHA-256 hashes the 32-byte digest: one block whose last eight words are constant
//! padding. Each path runs it straight after the first, with what depends only on the padding
//! computed at compile time (round 0, `K + W` of rounds 8..16, the constant terms of
//! `W[16..32]`); a nonce costs one compression more than under `sha256`. SHA-NI keeps the
//! first digest in registers; the AVX paths store it to their lane arrays between two calls,
//! which measured faster (AVX2 0.48× against 0.45× of the `sha256` rate) than one fused
//! function twice the size.

mod driver;
mod engine;
#[cfg(any(target_arch = "x86_64", test))]
mod lanes;
mod layout;
mod parallel;
#[cfg(target_arch = "x86_64")]
mod simd;

use crate::hash::{Algo, Zeros};
use core::fmt;
use core::num::NonZeroUsize;
use core::str::FromStr;

pub use parallel::cores;

/// The answer for a range: the minimum hash and the nonce giving it.
///
/// Ordered by `hash`, then `nonce`, so the minimum of two answers is the answer for the union of
/// their ranges (ties go to the smaller nonce).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MinHash {
    /// The smallest `hash(msg, n)` over the range.
    pub hash: u64,
    /// The smallest `n` of the range giving that hash.
    pub nonce: u64,
}

impl MinHash {
    /// The greatest value: the answer for an empty range, and the identity of `min`.
    pub const MAX: MinHash = MinHash {
        hash: u64::MAX,
        nonce: u64::MAX,
    };
}

/// A qualifying nonce of a target search and its hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hit {
    /// The nonce's hash: it has at least the difficulty's leading zero bits.
    pub hash: u64,
    /// The smallest qualifying nonce of the range searched.
    pub nonce: u64,
}

/// How many nonces a target search ([`Prepared::first_hit`]) hashes between two looks at
/// whether it found one: the most work it does past its answer (2 ms at 30 Mh/s, the
/// one-core sha256d rate of AVX-512 here; 6.5 ms at the scalar path's 10 Mh/s).
pub const FIRST_HIT_CHUNK: u64 = 1 << 16;

/// An implementation of the kernel's SHA-256 compressions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Path {
    /// One nonce at a time through `sha2::compress256` (which uses SHA-NI when it can).
    /// Always available.
    Scalar,
    /// Four nonces at a time through the SHA extensions, interleaved (x86-64).
    ShaNi,
    /// Eight nonces at a time in AVX2 registers (x86-64).
    Avx2,
    /// Sixteen nonces at a time in AVX-512 registers (x86-64 with AVX-512F).
    Avx512,
}

impl Path {
    /// Every path, available or not, in the order of [`Path::available`].
    pub const ALL: [Path; 4] = [Path::Scalar, Path::ShaNi, Path::Avx2, Path::Avx512];

    /// The paths this CPU can run, `Scalar` first.
    pub fn available() -> Vec<Path> {
        Self::ALL
            .into_iter()
            .filter(|path| path.is_available())
            .collect()
    }

    /// Whether this CPU can run `self`.
    pub fn is_available(self) -> bool {
        Kernel::new(self).is_ok()
    }

    /// The fastest path this CPU can run: AVX-512, else SHA-NI, else AVX2, else scalar.
    ///
    /// The order is fixed, not measured at run time. On AMD Zen, per core and short message:
    /// SHA-NI ≈ 1.75× AVX2 ≈ 2.3× scalar (measured on a Zen 5 VM without AVX-512); the
    /// project's 16-lane AVX-512 prototype ran at ≈ 1.7× 4-stream SHA-NI on Zen 5.
    pub fn best() -> Path {
        [Path::Avx512, Path::ShaNi, Path::Avx2]
            .into_iter()
            .find(|path| path.is_available())
            .unwrap_or(Path::Scalar)
    }

    /// The path's name, as [`FromStr`] accepts it: `scalar`, `sha-ni`, `avx2`, `avx512`.
    pub fn name(self) -> &'static str {
        match self {
            Path::Scalar => "scalar",
            Path::ShaNi => "sha-ni",
            Path::Avx2 => "avx2",
            Path::Avx512 => "avx512",
        }
    }

    /// How many nonces the path hashes at once.
    pub fn lanes(self) -> usize {
        match self {
            Path::Scalar => 1,
            Path::ShaNi => 4,
            Path::Avx2 => 8,
            Path::Avx512 => 16,
        }
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Path {
    type Err = UnknownPath;
    fn from_str(name: &str) -> Result<Path, UnknownPath> {
        Path::ALL
            .into_iter()
            .find(|path| path.name() == name)
            .ok_or_else(|| UnknownPath(name.to_string()))
    }
}

/// A name that is not one of [`Path`]'s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownPath(pub String);

impl fmt::Display for UnknownPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown kernel path `{}` (expected scalar, sha-ni, avx2 or avx512)",
            self.0
        )
    }
}

impl std::error::Error for UnknownPath {}

/// A path this CPU (or this build's architecture) cannot run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnavailablePath(pub Path);

impl fmt::Display for UnavailablePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kernel path {} is not available on this CPU", self.0)
    }
}

impl std::error::Error for UnavailablePath {}

/// A kernel bound to one available [`Path`].
#[derive(Clone, Copy, Debug)]
pub struct Kernel {
    backend: Backend,
}

/// The engine behind a [`Kernel`]; holding a SIMD token proves the CPU supports it.
#[derive(Clone, Copy, Debug)]
enum Backend {
    Scalar(engine::Scalar),
    #[cfg(target_arch = "x86_64")]
    ShaNi(simd::ShaNi),
    #[cfg(target_arch = "x86_64")]
    Avx2(simd::Avx2),
    #[cfg(target_arch = "x86_64")]
    Avx512(simd::Avx512),
}

impl Kernel {
    /// The kernel running `path`, if this CPU supports it.
    pub fn new(path: Path) -> Result<Kernel, UnavailablePath> {
        let backend = match path {
            Path::Scalar => Some(Backend::Scalar(engine::Scalar)),
            #[cfg(target_arch = "x86_64")]
            Path::ShaNi => simd::ShaNi::detect().map(Backend::ShaNi),
            #[cfg(target_arch = "x86_64")]
            Path::Avx2 => simd::Avx2::detect().map(Backend::Avx2),
            #[cfg(target_arch = "x86_64")]
            Path::Avx512 => simd::Avx512::detect().map(Backend::Avx512),
            #[cfg(not(target_arch = "x86_64"))]
            Path::ShaNi | Path::Avx2 | Path::Avx512 => None,
        };
        backend
            .map(|backend| Kernel { backend })
            .ok_or(UnavailablePath(path))
    }

    /// The kernel running [`Path::best`].
    pub fn best() -> Kernel {
        Kernel::new(Path::best()).unwrap_or(Kernel {
            backend: Backend::Scalar(engine::Scalar),
        })
    }

    /// The path this kernel runs.
    pub fn path(&self) -> Path {
        match self.backend {
            Backend::Scalar(_) => Path::Scalar,
            #[cfg(target_arch = "x86_64")]
            Backend::ShaNi(_) => Path::ShaNi,
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2(_) => Path::Avx2,
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512(_) => Path::Avx512,
        }
    }

    /// Prepares `msg` for any number of `sha256` searches: compresses its full blocks once.
    pub fn prepare(&self, msg: impl AsRef<[u8]>) -> Prepared {
        self.prepare_algo(msg, Algo::Sha256)
    }

    /// Prepares `msg` for any number of searches under `algo`.
    pub fn prepare_algo(&self, msg: impl AsRef<[u8]>, algo: Algo) -> Prepared {
        Prepared {
            kernel: *self,
            algo,
            prefix: layout::Prefix::new(msg.as_ref()),
        }
    }

    /// The smallest `n` in `lower ..= upper` whose hash under `algo` has at least `zeros`
    /// leading zero bits, with its hash; `None` if there is none (or the range is empty).
    /// See [`Prepared::first_hit`].
    pub fn first_hit(
        &self,
        msg: impl AsRef<[u8]>,
        algo: Algo,
        lower: u64,
        upper: u64,
        zeros: Zeros,
    ) -> Option<Hit> {
        self.prepare_algo(msg, algo).first_hit(lower, upper, zeros)
    }

    /// The minimum of `hash(msg, n)` over `lower ..= upper`, ties to the smallest nonce, on
    /// this thread. An empty range (`lower > upper`) gives [`MinHash::MAX`].
    pub fn min_hash(&self, msg: impl AsRef<[u8]>, lower: u64, upper: u64) -> MinHash {
        self.prepare(msg).min_hash(lower, upper)
    }

    /// [`Kernel::min_hash`] on `threads` threads (see [`min_hash_parallel`]).
    pub fn min_hash_parallel(
        &self,
        msg: impl AsRef<[u8]>,
        lower: u64,
        upper: u64,
        threads: NonZeroUsize,
    ) -> MinHash {
        parallel::min_hash(&self.prepare(msg), lower, upper, threads)
    }
}

/// A message prepared for searching by one [`Kernel`] (see [`Kernel::prepare`]).
#[derive(Clone, Debug)]
pub struct Prepared {
    kernel: Kernel,
    algo: Algo,
    prefix: layout::Prefix,
}

impl Prepared {
    /// The kernel this message was prepared for.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// The hash this message is searched under.
    pub fn algo(&self) -> Algo {
        self.algo
    }

    /// The minimum of the hash of `(msg, n)` (under [`Prepared::algo`]) over `lower ..=
    /// upper`, ties to the smallest nonce. An empty range (`lower > upper`) gives
    /// [`MinHash::MAX`]. Any range up to `u64::MAX` works.
    pub fn min_hash(&self, lower: u64, upper: u64) -> MinHash {
        match self.search(lower, upper, driver::Goal::Min(MinHash::MAX)) {
            driver::Goal::Min(best) => best,
            driver::Goal::First { .. } => MinHash::MAX,
        }
    }

    /// [`Prepared::min_hash`] on `threads` scoped threads (see [`min_hash_parallel`]).
    pub fn min_hash_parallel(&self, lower: u64, upper: u64, threads: NonZeroUsize) -> MinHash {
        parallel::min_hash(self, lower, upper, threads)
    }

    /// The smallest `n` in `lower ..= upper` whose hash (under [`Prepared::algo`]) has at
    /// least `zeros` leading zero bits, with that hash; `None` if no nonce of the range
    /// qualifies or the range is empty (`lower > upper`). Any range up to `u64::MAX` works.
    ///
    /// The range is walked in ascending chunks of [`FIRST_HIT_CHUNK`] nonces, and the search
    /// returns after the first chunk that holds a qualifying nonce.
    pub fn first_hit(&self, lower: u64, upper: u64, zeros: Zeros) -> Option<Hit> {
        let mut start = lower;
        while start <= upper {
            let end = start.saturating_add(FIRST_HIT_CHUNK - 1).min(upper);
            let goal = driver::Goal::First {
                limit: zeros.limit(),
                hit: None,
            };
            if let driver::Goal::First { hit: Some(hit), .. } = self.search(start, end, goal) {
                return Some(hit);
            }
            start = end.checked_add(1)?;
        }
        None
    }

    /// [`Prepared::first_hit`] on `threads` scoped threads: the same answer, the range handed
    /// out in ascending chunks of [`FIRST_HIT_CHUNK`]; no thread starts a chunk past one that
    /// held a hit.
    pub fn first_hit_parallel(
        &self,
        lower: u64,
        upper: u64,
        zeros: Zeros,
        threads: NonZeroUsize,
    ) -> Option<Hit> {
        parallel::first_hit(self, lower, upper, zeros, threads)
    }

    /// Runs this message's engine over `lower ..= upper` for `goal` (unchanged when empty).
    fn search(&self, lower: u64, upper: u64, goal: driver::Goal) -> driver::Goal {
        if lower > upper {
            return goal;
        }
        let (prefix, algo) = (&self.prefix, self.algo);
        match self.kernel.backend {
            Backend::Scalar(engine) => driver::search(engine, algo, prefix, lower, upper, goal),
            #[cfg(target_arch = "x86_64")]
            Backend::ShaNi(engine) => driver::search(engine, algo, prefix, lower, upper, goal),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2(engine) => driver::search(engine, algo, prefix, lower, upper, goal),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512(engine) => driver::search(engine, algo, prefix, lower, upper, goal),
        }
    }
}

/// The minimum of `hash(msg, n)` over `lower ..= upper` with the [best](Path::best) path, on
/// this thread. An empty range (`lower > upper`) gives [`MinHash::MAX`].
pub fn min_hash(msg: impl AsRef<[u8]>, lower: u64, upper: u64) -> MinHash {
    Kernel::best().min_hash(msg, lower, upper)
}

/// The smallest `n` in `lower ..= upper` whose hash under `algo` has at least `zeros` leading
/// zero bits, with its hash, by the [best](Path::best) path on this thread; `None` if there is
/// none. See [`Prepared::first_hit`].
pub fn first_hit(
    msg: impl AsRef<[u8]>,
    algo: Algo,
    lower: u64,
    upper: u64,
    zeros: Zeros,
) -> Option<Hit> {
    Kernel::best().first_hit(msg, algo, lower, upper, zeros)
}

/// [`min_hash`] spread over `threads` scoped threads ([`cores`] gives one per core).
///
/// The range is handed out in chunks from a shared counter, so a thread slowed down by other
/// work on its core does not hold the others up. The answer is the same as [`min_hash`]'s.
pub fn min_hash_parallel(
    msg: impl AsRef<[u8]>,
    lower: u64,
    upper: u64,
    threads: NonZeroUsize,
) -> MinHash {
    Kernel::best().min_hash_parallel(msg, lower, upper, threads)
}

#[cfg(test)]
mod tests;
