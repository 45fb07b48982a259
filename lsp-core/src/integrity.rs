//! Integrity rules for a received Data message (docs/protocol.md §4).

use crate::checksum::checksum;
use crate::message::Message;

/// Why a received Data message failed its integrity check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IntegrityError {
    /// The payload is shorter than `Size`: dropped as if lost; does not count as hearing from
    /// the peer.
    ShortPayload,
    /// The checksum over the fields as received does not match.
    BadChecksum,
}

/// Applies §4 in order: short → error, long → truncate to `Size`, checksum over
/// `(ConnID, SeqNum, Size, payload)` as received → error if it differs.
pub(crate) fn check_data(message: &mut Message) -> Result<(), IntegrityError> {
    let size = usize::try_from(message.size).unwrap_or(usize::MAX);
    if message.payload.len() < size {
        return Err(IntegrityError::ShortPayload);
    }
    message.payload.truncate(size);
    let expected = checksum(
        message.conn_id,
        message.seq_num,
        message.size,
        &message.payload,
    );
    if expected != message.checksum {
        return Err(IntegrityError::BadChecksum);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_apply_in_order() {
        let good = Message::data(3, 9, b"12345".to_vec());
        let mut m = good.clone();
        assert_eq!(check_data(&mut m), Ok(()));

        let mut long = good.clone();
        long.payload.extend_from_slice(&[2, 3, 4]);
        assert_eq!(check_data(&mut long), Ok(()));
        assert_eq!(
            long.payload, b"12345",
            "a long payload is truncated to Size"
        );

        let mut short = good.clone();
        short.payload.truncate(2);
        short.checksum = 0; // even a wrong checksum is not looked at: short comes first
        assert_eq!(check_data(&mut short), Err(IntegrityError::ShortPayload));

        let mut corrupt = good.clone();
        corrupt.payload[0] = !corrupt.payload[0];
        assert_eq!(check_data(&mut corrupt), Err(IntegrityError::BadChecksum));

        let mut wrong_id = good;
        wrong_id.conn_id = 4;
        assert_eq!(
            check_data(&mut wrong_id),
            Err(IntegrityError::BadChecksum),
            "checksum covers ConnID as received"
        );
    }
}
