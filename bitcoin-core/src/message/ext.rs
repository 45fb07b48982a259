//! The target-mode extension of the miner protocol: what rides in new JSON keys and in the
//! Cancel message, never in what the reference sends or expects.
//!
//! - **Join** may carry `"Caps": ["target", "sha256d", "cancel"]`, the extensions the miner
//!   supports ([`Caps`]). Unknown names, other JSON types and a `null` are ignored (no caps).
//! - **Request** may carry `"Zeros": z` (1 ..= 64) and `"Algo": "sha256"|"sha256d"`
//!   ([`Mode`]). Without `Zeros` the request is the reference's minimum search; a `Zeros`
//!   or `Algo` that is not valid, or `"Algo": "sha256d"` without `Zeros`, is a
//!   [`ModeError`]: the payload still decodes (so the server can refuse the request and
//!   close the client, as for other bad requests) but carries the error.
//! - **Result** may carry `"Found": false`: the target job or request holds no qualifying
//!   nonce. Any other value (or none) is a found answer, as the reference's Results are.
//! - **Cancel** (`Type` 3, [`super::Message::Cancel`]): server → miner, stop that job and
//!   answer nothing for it; sent only to miners whose Join listed `"cancel"`.
//! - **Job** (`"Job": n`, an unsigned integer): the server's name for one assignment, on
//!   every Request and Cancel it sends to a miner whose Join listed `"cancel"` (never to
//!   others). Such a miner echoes it in its Result for that job (found or `"Found": false`),
//!   and the server matches a Result carrying `Job` to that assignment only: an answer that
//!   crossed a Cancel on the wire is recognised as stale even if the miner already holds
//!   another job its content would verify against ([`with_job`]).
//!
//! The encoders below write the reference's six keys exactly as [`super::Message::encode`]
//! does, then the extension keys, and write nothing extra when there is nothing to say: a
//! Join with no caps and a minimum-mode Request are the reference's bytes.

use core::fmt;

use crate::hash::{decimal, Algo, Zeros, ZerosOutOfRange, MAX_DIGITS};

use super::Message;

/// One extension a miner may announce in its Join's `Caps`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cap {
    /// `"target"`: it searches for the first nonce meeting a difficulty ([`Mode::Target`]).
    Target,
    /// `"sha256d"`: it hashes with double SHA-256 ([`Algo::Sha256d`]).
    Sha256d,
    /// `"cancel"`: it obeys [`super::Message::Cancel`].
    Cancel,
}

impl Cap {
    /// Every capability, in wire order.
    pub const ALL: [Cap; 3] = [Cap::Target, Cap::Sha256d, Cap::Cancel];

    /// The name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Cap::Target => "target",
            Cap::Sha256d => "sha256d",
            Cap::Cancel => "cancel",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of [`Cap`]s. The empty set is what a reference miner has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Caps(u8);

impl Caps {
    /// No capability: a reference miner.
    pub const NONE: Caps = Caps(0);
    /// Every capability: our miner.
    pub const ALL: Caps = Caps(0b111);

    /// This set with `cap` added.
    #[must_use]
    pub fn with(self, cap: Cap) -> Caps {
        Caps(self.0 | cap.bit())
    }

    /// Whether `cap` is in the set.
    pub fn has(self, cap: Cap) -> bool {
        self.0 & cap.bit() != 0
    }

    /// Whether every capability of `other` is in this set.
    pub fn covers(self, other: Caps) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The capabilities in the set, in wire order.
    pub fn iter(self) -> impl Iterator<Item = Cap> {
        Cap::ALL.into_iter().filter(move |cap| self.has(*cap))
    }

    /// The set a JSON value names: the known names of an array of strings; anything else
    /// (another type, unknown names, non-strings in the array) adds nothing.
    pub(super) fn from_json(raw: &str) -> Caps {
        let names: Vec<serde_json::Value> = serde_json::from_str(raw).unwrap_or_default();
        names
            .iter()
            .filter_map(|v| v.as_str())
            .filter_map(|name| Cap::ALL.into_iter().find(|c| c.name() == name))
            .fold(Caps::NONE, Caps::with)
    }
}

impl fmt::Display for Caps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.iter().map(Cap::name).collect();
        write!(f, "[{}]", names.join(","))
    }
}

/// What a request asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    /// The reference's search: the least `hash(msg, n)` over the range (sha256).
    #[default]
    Minimum,
    /// The smallest nonce of the range whose hash under `algo` has at least `zeros` leading
    /// zero bits, or none.
    Target {
        /// The difficulty.
        zeros: Zeros,
        /// The hash.
        algo: Algo,
    },
}

impl Mode {
    /// The capabilities a miner needs to be given a job of this mode.
    pub fn needs(self) -> Caps {
        match self {
            Mode::Minimum => Caps::NONE,
            Mode::Target {
                algo: Algo::Sha256, ..
            } => Caps::NONE.with(Cap::Target),
            Mode::Target {
                algo: Algo::Sha256d,
                ..
            } => Caps::NONE.with(Cap::Target).with(Cap::Sha256d),
        }
    }

    /// Whether this is target mode.
    pub fn is_target(self) -> bool {
        matches!(self, Mode::Target { .. })
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Minimum => f.write_str("minimum"),
            Mode::Target { zeros, algo } => write!(f, "target {zeros} zeros {algo}"),
        }
    }
}

/// A Request's `Zeros` or `Algo` that asks for no valid mode. The request is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModeError {
    /// `Zeros` is not an integer (the raw JSON, at most 32 bytes of it).
    ZerosNotANumber(String),
    /// `Zeros` is an integer outside 1 ..= 64.
    Zeros(ZerosOutOfRange),
    /// `Algo` is not the name of a hash (the raw JSON, at most 32 bytes of it).
    Algo(String),
    /// `"Algo": "sha256d"` without `Zeros`: there is no minimum search under sha256d.
    AlgoWithoutZeros(Algo),
}

impl fmt::Display for ModeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModeError::ZerosNotANumber(raw) => write!(f, "Zeros {raw} is not an integer"),
            ModeError::Zeros(e) => write!(f, "Zeros: {e}"),
            ModeError::Algo(raw) => write!(f, "Algo {raw} is not sha256 or sha256d"),
            ModeError::AlgoWithoutZeros(algo) => {
                write!(f, "Algo {algo} asks for target mode but Zeros is missing")
            }
        }
    }
}

impl std::error::Error for ModeError {}

/// At most 32 bytes of `raw`, cut at a character boundary (for error messages).
fn excerpt(raw: &str) -> String {
    let mut end = raw.len().min(32);
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    raw[..end].to_string()
}

/// The mode that a Request's raw `Zeros` and `Algo` values ask for (`None`: key absent or
/// `null`).
pub(super) fn mode_from_json(zeros: Option<&str>, algo: Option<&str>) -> Result<Mode, ModeError> {
    let algo = match algo {
        None => None,
        Some(raw) => Some(
            serde_json::from_str::<String>(raw)
                .ok()
                .and_then(|name| name.parse::<Algo>().ok())
                .ok_or_else(|| ModeError::Algo(excerpt(raw)))?,
        ),
    };
    let zeros = match zeros {
        None => None,
        Some(raw) => {
            let n =
                super::parse_uint(raw).ok_or_else(|| ModeError::ZerosNotANumber(excerpt(raw)))?;
            Some(Zeros::try_from(n).map_err(ModeError::Zeros)?)
        }
    };
    match (zeros, algo) {
        (None, None | Some(Algo::Sha256)) => Ok(Mode::Minimum),
        (None, Some(algo)) => Err(ModeError::AlgoWithoutZeros(algo)),
        (Some(zeros), algo) => Ok(Mode::Target {
            zeros,
            algo: algo.unwrap_or_default(),
        }),
    }
}

/// What a payload carries beyond the reference's six keys (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extensions {
    /// The `Caps` of a Join (empty when absent, for any type).
    pub caps: Caps,
    /// The mode its `Zeros` and `Algo` ask for ([`Mode::Minimum`] when both are absent).
    pub mode: Result<Mode, ModeError>,
    /// `false` only for `"Found": false`: a Result saying that no nonce qualifies.
    pub found: bool,
    /// The `Job` id of a Request, Cancel or Result (`None` when absent, `null` or not an
    /// unsigned 64-bit integer).
    pub job: Option<u64>,
}

impl Default for Extensions {
    fn default() -> Self {
        Extensions {
            caps: Caps::NONE,
            mode: Ok(Mode::Minimum),
            found: true,
            job: None,
        }
    }
}

/// Writes `message` (the reference's bytes) with `extra` inserted before the closing brace.
fn with_keys(message: &Message, extra: &[u8]) -> Vec<u8> {
    let mut out = message.encode();
    if !extra.is_empty() {
        out.pop();
        out.extend_from_slice(extra);
        out.push(b'}');
    }
    out
}

/// `encoded` (a JSON object from the encoders here or [`Message::encode`]) with
/// `"Job": job` appended before its closing brace; unchanged for `None`.
pub fn with_job(mut encoded: Vec<u8>, job: Option<u64>) -> Vec<u8> {
    if let (Some(job), Some(b'}')) = (job, encoded.last()) {
        let mut digits = [0u8; MAX_DIGITS];
        encoded.pop();
        encoded.extend_from_slice(b",\"Job\":");
        encoded.extend_from_slice(decimal(job, &mut digits));
        encoded.push(b'}');
    }
    encoded
}

/// A Join announcing `caps`: the reference's Join when `caps` is empty.
pub fn encode_join(caps: Caps) -> Vec<u8> {
    let mut extra = Vec::new();
    if !caps.is_empty() {
        extra.extend_from_slice(b",\"Caps\":[");
        for (i, cap) in caps.iter().enumerate() {
            if i > 0 {
                extra.push(b',');
            }
            extra.push(b'"');
            extra.extend_from_slice(cap.name().as_bytes());
            extra.push(b'"');
        }
        extra.push(b']');
    }
    with_keys(&Message::Join, &extra)
}

/// A Request for `data` over `lower ..= upper` in `mode`: the reference's Request in
/// minimum mode; `"Zeros"` and (for sha256d only) `"Algo"` appended in target mode.
pub fn encode_request(data: &str, lower: u64, upper: u64, mode: Mode) -> Vec<u8> {
    let request = Message::Request {
        data: data.to_string(),
        lower,
        upper,
    };
    let mut extra = Vec::new();
    if let Mode::Target { zeros, algo } = mode {
        let mut digits = [0u8; MAX_DIGITS];
        extra.extend_from_slice(b",\"Zeros\":");
        extra.extend_from_slice(decimal(u64::from(zeros.get()), &mut digits));
        if algo != Algo::Sha256 {
            extra.extend_from_slice(b",\"Algo\":\"");
            extra.extend_from_slice(algo.name().as_bytes());
            extra.push(b'"');
        }
    }
    with_keys(&request, &extra)
}

/// A target-mode Result: `Some((hash, nonce))` for a hit, `None` for `"Found": false`
/// (`Hash` and `Nonce` 0). `range` is echoed in `Lower` and `Upper` (a miner answering
/// a job echoes the job's range; the server answering a client writes `(0, 0)`).
pub fn encode_target_result(hit: Option<(u64, u64)>, range: (u64, u64)) -> Vec<u8> {
    let (hash, nonce) = hit.unwrap_or((0, 0));
    let mut out = Message::Result { hash, nonce }.encode();
    if range != (0, 0) {
        // Rewrite with the echoed range: same keys, same order.
        let mut digits = [0u8; MAX_DIGITS];
        out.clear();
        out.extend_from_slice(b"{\"Type\":2,\"Data\":\"\",\"Lower\":");
        out.extend_from_slice(decimal(range.0, &mut digits));
        out.extend_from_slice(b",\"Upper\":");
        out.extend_from_slice(decimal(range.1, &mut digits));
        out.extend_from_slice(b",\"Hash\":");
        out.extend_from_slice(decimal(hash, &mut digits));
        out.extend_from_slice(b",\"Nonce\":");
        out.extend_from_slice(decimal(nonce, &mut digits));
        out.push(b'}');
    }
    if hit.is_none() {
        out.pop();
        out.extend_from_slice(b",\"Found\":false}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(zeros: u32, algo: Algo) -> Mode {
        Mode::Target {
            zeros: Zeros::new(zeros).unwrap(),
            algo,
        }
    }

    #[test]
    fn nothing_extra_is_the_reference_s_bytes() {
        assert_eq!(encode_join(Caps::NONE), Message::Join.encode());
        let plain = Message::Request {
            data: "hello".into(),
            lower: 0,
            upper: 10_000_000,
        };
        assert_eq!(
            encode_request("hello", 0, 10_000_000, Mode::Minimum),
            plain.encode()
        );
        assert_eq!(
            encode_request("hello", 0, 10_000_000, Mode::Minimum),
            br#"{"Type":1,"Data":"hello","Lower":0,"Upper":10000000,"Hash":0,"Nonce":0}"#
        );
    }

    #[test]
    fn extension_bytes_and_round_trips() {
        let join = encode_join(Caps::ALL);
        assert_eq!(
            join,
            br#"{"Type":0,"Data":"","Lower":0,"Upper":0,"Hash":0,"Nonce":0,"Caps":["target","sha256d","cancel"]}"#
        );
        let d = Message::decode_full(&join).unwrap();
        assert_eq!((d.message, d.ext.caps), (Message::Join, Caps::ALL));

        let r = encode_request("m", 5, 9, target(12, Algo::Sha256d));
        assert_eq!(
            r,
            br#"{"Type":1,"Data":"m","Lower":5,"Upper":9,"Hash":0,"Nonce":0,"Zeros":12,"Algo":"sha256d"}"#
        );
        assert_eq!(
            Message::decode_full(&r).unwrap().ext.mode,
            Ok(target(12, Algo::Sha256d))
        );
        let r = encode_request("m", 5, 9, target(3, Algo::Sha256));
        assert!(r.ends_with(br#""Nonce":0,"Zeros":3}"#));
        assert_eq!(
            Message::decode_full(&r).unwrap().ext.mode,
            Ok(target(3, Algo::Sha256))
        );

        let none = encode_target_result(None, (0, 0));
        assert_eq!(
            none,
            br#"{"Type":2,"Data":"","Lower":0,"Upper":0,"Hash":0,"Nonce":0,"Found":false}"#
        );
        let d = Message::decode_full(&none).unwrap();
        assert!(!d.ext.found);
        let hit = encode_target_result(Some((7, 8)), (5, 9));
        assert_eq!(
            hit,
            br#"{"Type":2,"Data":"","Lower":5,"Upper":9,"Hash":7,"Nonce":8}"#
        );
        let d = Message::decode_full(&hit).unwrap();
        assert_eq!(
            (d.message, d.range, d.ext.found),
            (Message::Result { hash: 7, nonce: 8 }, (5, 9), true)
        );
        assert_eq!(
            encode_target_result(Some((7, 8)), (0, 0)),
            Message::Result { hash: 7, nonce: 8 }.encode()
        );

        let cancel = Message::Cancel {
            data: "m".into(),
            lower: 5,
            upper: 9,
        };
        let bytes = br#"{"Type":3,"Data":"m","Lower":5,"Upper":9,"Hash":0,"Nonce":0}"#;
        assert_eq!(cancel.encode(), bytes);
        assert_eq!(Message::decode(bytes), Ok(cancel));
    }

    #[test]
    fn job_ids_ride_in_their_own_key() {
        let r = with_job(encode_request("m", 5, 9, Mode::Minimum), Some(42));
        assert_eq!(
            r,
            br#"{"Type":1,"Data":"m","Lower":5,"Upper":9,"Hash":0,"Nonce":0,"Job":42}"#
        );
        assert_eq!(Message::decode_full(&r).unwrap().ext.job, Some(42));
        let plain = encode_request("m", 5, 9, Mode::Minimum);
        assert_eq!(with_job(plain.clone(), None), plain);
        assert_eq!(Message::decode_full(&plain).unwrap().ext.job, None);
        let none = with_job(encode_target_result(None, (5, 9)), Some(u64::MAX));
        let d = Message::decode_full(&none).unwrap();
        assert_eq!((d.ext.job, d.ext.found), (Some(u64::MAX), false));
        for bad in ["null", "-1", "\"7\"", "1.5", "18446744073709551616"] {
            let text = format!(r#"{{"Type":2,"Job":{bad}}}"#);
            assert_eq!(Message::decode_full(text.as_bytes()).unwrap().ext.job, None);
        }
    }

    #[test]
    fn caps_ignore_what_they_do_not_know() {
        let caps = |text: &str| Message::decode_full(text.as_bytes()).unwrap().ext.caps;
        assert_eq!(caps(r#"{"Type":0}"#), Caps::NONE);
        assert_eq!(
            caps(r#"{"Type":0,"caps":["cancel","warp",7,null,"target"]}"#),
            Caps::NONE.with(Cap::Cancel).with(Cap::Target)
        );
        for value in ["null", "\"target\"", "{}", "5", "[[\"target\"]]"] {
            assert_eq!(caps(&format!(r#"{{"Type":0,"Caps":{value}}}"#)), Caps::NONE);
        }
        assert_eq!(
            caps(r#"{"Caps":["sha256d"],"Caps":[]}"#),
            Caps::NONE,
            "last wins"
        );
    }

    #[test]
    fn bad_zeros_or_algo_is_a_typed_error_not_a_decoding_failure() {
        let mode = |extra: &str| {
            let text = format!(r#"{{"Type":1,"Data":"x","Upper":9{extra}}}"#);
            Message::decode_full(text.as_bytes()).unwrap().ext.mode
        };
        assert_eq!(mode(""), Ok(Mode::Minimum));
        assert_eq!(mode(r#","Zeros":null,"Algo":null"#), Ok(Mode::Minimum));
        assert_eq!(mode(r#","Algo":"sha256""#), Ok(Mode::Minimum));
        assert_eq!(mode(r#","zeros":64"#), Ok(target(64, Algo::Sha256)));
        assert_eq!(
            mode(r#","Zeros":0"#),
            Err(ModeError::Zeros(ZerosOutOfRange(0)))
        );
        assert_eq!(
            mode(r#","Zeros":65"#),
            Err(ModeError::Zeros(ZerosOutOfRange(65)))
        );
        assert!(matches!(
            mode(r#","Zeros":"5""#),
            Err(ModeError::ZerosNotANumber(_))
        ));
        assert!(matches!(
            mode(r#","Zeros":5.0"#),
            Err(ModeError::ZerosNotANumber(_))
        ));
        assert!(matches!(
            mode(r#","Zeros":-1"#),
            Err(ModeError::ZerosNotANumber(_))
        ));
        assert!(matches!(
            mode(r#","Zeros":5,"Algo":"md5""#),
            Err(ModeError::Algo(_))
        ));
        assert!(matches!(
            mode(r#","Zeros":5,"Algo":1"#),
            Err(ModeError::Algo(_))
        ));
        assert_eq!(
            mode(r#","Algo":"sha256d""#),
            Err(ModeError::AlgoWithoutZeros(Algo::Sha256d))
        );
        let long = format!(r#","Zeros":"{}""#, "z".repeat(500));
        match mode(&long) {
            Err(ModeError::ZerosNotANumber(raw)) => assert!(raw.len() <= 32),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn needs() {
        assert_eq!(Mode::Minimum.needs(), Caps::NONE);
        assert_eq!(
            target(3, Algo::Sha256).needs(),
            Caps::NONE.with(Cap::Target)
        );
        assert!(Caps::ALL.covers(target(3, Algo::Sha256d).needs()));
        assert!(!Caps::NONE
            .with(Cap::Target)
            .covers(target(3, Algo::Sha256d).needs()));
    }
}
