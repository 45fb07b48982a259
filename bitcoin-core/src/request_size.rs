//! How long a request's message may be: every message about it must fit in one LSP message.
//!
//! The server forwards a request to its miners as Request messages carrying the whole text
//! and a job's bounds, and LSP carries one message per datagram of at most 1500 bytes. Every
//! payload up to [`MAX_PAYLOAD`] bytes fits whatever the connection id and sequence number
//! are, so that is the limit: a job's bounds both lie in the request's range, so its longest
//! Request message has `upper`'s digits twice:
//!
//! ```text
//! {"Type":1,"Data":"<text>","Lower":<upper>,"Upper":<upper>,"Hash":0,"Nonce":0}
//! ```
//!
//! 57 bytes of framing, the text as JSON escapes it (plain ASCII letters, digits and most
//! punctuation one byte each; `"` `\` two; `<` `>` `&` and control characters six), and the
//! digits of `upper` twice. With `upper` = 10⁹ (10 digits) a text of 923 plain bytes is the
//! longest; with `u64::MAX` (20 digits), 903.

use core::fmt;

use crate::message::Message;

/// The largest payload every LSP connection carries in one message, whatever its id and
/// sequence numbers ([`lsp_core::MAX_GUARANTEED_PAYLOAD`]).
pub const MAX_PAYLOAD: usize = lsp_core::MAX_GUARANTEED_PAYLOAD;

/// The length of the longest Request message the server may send for a request of `data`
/// whose range ends at `upper`.
pub fn largest_job_len(data: &str, upper: u64) -> usize {
    Message::Request {
        data: data.to_string(),
        lower: upper,
        upper,
    }
    .encode()
    .len()
}

/// The longest text (in bytes that JSON does not escape, e.g. ASCII letters and digits) a
/// request whose range ends at `upper` may carry.
pub fn max_plain_text_len(upper: u64) -> usize {
    MAX_PAYLOAD.saturating_sub(largest_job_len("", upper))
}

/// [`check`] for a request in `mode`: a target job carries `Zeros` (and `Algo`) too, so its
/// longest job, and the longest text allowed, differ by that much. For
/// [`crate::message::Mode::Minimum`] this is [`check`].
pub fn check_mode(
    data: &str,
    upper: u64,
    mode: crate::message::Mode,
) -> Result<(), RequestTooLong> {
    use crate::message::ext::encode_request;
    let encoded_len = encode_request(data, upper, upper, mode).len();
    if encoded_len <= MAX_PAYLOAD {
        return Ok(());
    }
    Err(RequestTooLong {
        text_len: data.len(),
        encoded_len,
        upper,
        max_plain_text_len: MAX_PAYLOAD
            .saturating_sub(encode_request("", upper, upper, mode).len()),
    })
}

/// Checks that a request of `data` over `lower ..= upper` fits: every message the server
/// would send about it is at most [`MAX_PAYLOAD`] bytes. (`lower` does not matter as long
/// as it is at most `upper`: a job's bounds have at most `upper`'s digits.)
pub fn check(data: &str, upper: u64) -> Result<(), RequestTooLong> {
    check_mode(data, upper, crate::message::Mode::Minimum)
}

/// A request whose messages would not fit in one LSP message (see [`check`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestTooLong {
    /// The text's length in bytes.
    pub text_len: usize,
    /// The longest message about it, encoded.
    pub encoded_len: usize,
    /// The last nonce of the range.
    pub upper: u64,
    /// The longest plain text a request ending at `upper` may carry.
    pub max_plain_text_len: usize,
}

impl fmt::Display for RequestTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.upper.checked_ilog10().unwrap_or(0) + 1;
        write!(
            f,
            "the message is too long ({} bytes): every request must fit in one LSP message of \
             at most {MAX_PAYLOAD} bytes, and this one would take {}. The limit depends on the \
             digits of the range: with nonces up to {} ({digits} digits) the longest message \
             is {} bytes of plain text (fewer with characters JSON escapes: \" \\ < > & and \
             control characters)",
            self.text_len, self.encoded_len, self.upper, self.max_plain_text_len
        )
    }
}

impl std::error::Error for RequestTooLong {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_limits_hold() {
        assert_eq!(largest_job_len("", 0), 57 + 2);
        assert_eq!(max_plain_text_len(1_000_000_000), 923);
        assert_eq!(max_plain_text_len(u64::MAX), 903);
    }

    #[test]
    fn the_longest_text_fits_and_one_more_byte_does_not() {
        for upper in [0, 9, 10, 99_999, 1_000_000_000, u64::MAX] {
            let max = max_plain_text_len(upper);
            let longest = "a".repeat(max);
            assert_eq!(check(&longest, upper), Ok(()));
            assert_eq!(largest_job_len(&longest, upper), MAX_PAYLOAD);
            let error = check(&"a".repeat(max + 1), upper).expect_err("one byte too long");
            assert_eq!(error.encoded_len, MAX_PAYLOAD + 1);
            assert_eq!(error.max_plain_text_len, max);
        }
    }

    #[test]
    fn escaped_characters_count_as_encoded() {
        let max = max_plain_text_len(100);
        // `<` is six bytes escaped: a sixth of the plain limit, plus one, is too long.
        assert!(check(&"<".repeat(max / 6), 100).is_ok());
        assert!(check(&"<".repeat(max / 6 + 1), 100).is_err());
    }

    #[test]
    fn a_job_of_the_range_never_exceeds_the_checked_length() {
        let text = "a".repeat(max_plain_text_len(123_456));
        for (lower, upper) in [(0, 123_456), (99, 123_456), (123_456, 123_456)] {
            let job = Message::Request {
                data: text.clone(),
                lower,
                upper,
            };
            assert!(job.encode().len() <= MAX_PAYLOAD);
        }
    }
}
