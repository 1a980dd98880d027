//! What the order systems share: the order id a harness payload stands for, and the check that a
//! reply is the order sent.
//!
//! Each order system builds its fixed order once per client (with id 0, from
//! [`realistic_order`](crate::realistic_order)), sends a copy numbered after the call's payload,
//! and hands the payload back unchanged when the reply checks out, so the harness's own check of
//! echoed bytes passes.

/// The id of the order sent for `payload`: its first 8 bytes, big-endian, zero-padded when
/// shorter. The load generator stamps each call's number there, so every call sends a
/// different order.
pub(super) fn id_of(payload: &[u8]) -> u64 {
    let mut id = [0; 8];
    let n = payload.len().min(id.len());
    id[..n].copy_from_slice(&payload[..n]);
    u64::from_be_bytes(id)
}

/// Checks a reply: its id, taken out of it as `got`, must be `sent`, and the rest of it (with
/// id 0) must equal `template`, the order every call sends with its own id.
///
/// # Errors
/// What differs, as text.
pub(super) fn check_reply<T: PartialEq>(
    got: u64,
    sent: u64,
    reply: &T,
    template: &T,
) -> Result<(), String> {
    if got != sent {
        return Err(format!("sent order {sent}, the reply is order {got}"));
    }
    if reply != template {
        return Err(format!(
            "the reply to order {sent} differs from the order sent"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::id_of;

    #[test]
    fn id_is_the_first_eight_bytes() {
        assert_eq!(id_of(&7u64.to_be_bytes()), 7);
        assert_eq!(id_of(&[0, 0, 0, 0, 0, 0, 1, 2, 0xff, 0xff]), 0x0102);
        assert_eq!(id_of(&[1]), 1 << 56);
        assert_eq!(id_of(&[]), 0);
    }
}
