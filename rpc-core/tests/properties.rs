//! Properties over generated inputs (proptest): frames survive encode → decode unchanged, and the
//! backoff and retry-budget arithmetic holds for any parameters.

use std::time::Duration;

use bytes::BytesMut;
use proptest::prelude::*;
use rpc_core::backoff::Backoff;
use rpc_core::middleware::RetryBudget;
use rpc_core::protocol::{self, Frame, FrameDecoder, Settings};
use rpc_core::Metadata;

fn metadata() -> impl Strategy<Value = Metadata> {
    prop::collection::vec(
        (
            "[a-z][a-z0-9-]{0,12}",
            prop::collection::vec(any::<u8>(), 0..24),
        ),
        0..6,
    )
    .prop_map(|entries| {
        let mut md = Metadata::new();
        for (k, v) in entries {
            md.append(k, v);
        }
        md
    })
}

fn decoder() -> FrameDecoder {
    FrameDecoder::new(&Settings::default())
}

proptest! {
    #[test]
    fn a_request_decodes_as_it_was_encoded(
        call_id in 1u32..,
        // Any flags but the stream flags, which a 1.0 connection refuses.
        flags in any::<u8>().prop_map(|f| {
            f & !(protocol::flags::CLIENT_STREAM | protocol::flags::SERVER_STREAM)
        }),
        path in prop::collection::vec(any::<u8>(), 0..64),
        codec in any::<u8>(),
        timeout_us in any::<u64>(),
        md in metadata(),
        body in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut wire = BytesMut::new();
        protocol::encode_request(&mut wire, call_id, flags, &path, codec, timeout_us, &md, &body);
        let Ok(Some(Frame::Request(r))) = decoder().decode(&mut wire) else {
            return Err(TestCaseError::fail("the request does not decode"));
        };
        prop_assert!(wire.is_empty());
        prop_assert_eq!(r.call_id, call_id);
        prop_assert_eq!(r.flags, flags);
        prop_assert_eq!(&r.path[..], &path[..]);
        prop_assert_eq!(r.codec, codec);
        prop_assert_eq!(r.timeout_us, timeout_us);
        prop_assert_eq!(r.metadata, md);
        prop_assert_eq!(&r.body[..], &body[..]);
    }

    #[test]
    fn a_response_decodes_as_it_was_encoded(
        call_id in 1u32..,
        flags in any::<u8>(),
        code in 0u8..17,
        message in "\\PC{0,40}",
        md in metadata(),
        body in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut wire = BytesMut::new();
        protocol::encode_response(&mut wire, call_id, flags, code, message.as_bytes(), &md, &body);
        let Ok(Some(Frame::Response(r))) = decoder().decode(&mut wire) else {
            return Err(TestCaseError::fail("the response does not decode"));
        };
        prop_assert!(wire.is_empty());
        prop_assert_eq!(r.call_id, call_id);
        prop_assert_eq!(r.flags, flags);
        prop_assert_eq!(r.code, code);
        prop_assert_eq!(&r.message[..], message.as_bytes());
        prop_assert_eq!(r.metadata, md);
        prop_assert_eq!(&r.body[..], &body[..]);
    }

    #[test]
    fn frames_split_anywhere_decode_the_same(
        bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut wire = BytesMut::new();
        for (i, body) in bodies.iter().enumerate() {
            protocol::encode_request(
                &mut wire, i as u32 + 1, 0, b"a.B/C", 1, 0, &Metadata::new(), body,
            );
        }
        // The bytes arrive in two reads, split at any point: the same frames come out.
        let cut = cut.index(wire.len() + 1);
        let mut rest = wire.split_off(cut);
        let mut buf = wire;
        let mut seen = Vec::new();
        loop {
            match decoder().decode(&mut buf) {
                Ok(Some(Frame::Request(r))) => seen.push(r.body.to_vec()),
                Ok(Some(other)) => return Err(TestCaseError::fail(format!("{other:?}"))),
                Ok(None) if !rest.is_empty() => buf.extend_from_slice(&rest.split()),
                Ok(None) => break,
                Err(e) => return Err(TestCaseError::fail(e.to_string())),
            }
        }
        prop_assert_eq!(seen, bodies);
    }

    #[test]
    fn backoff_waits_grow_to_the_cap_within_their_jitter(
        initial_ms in 1u64..1_000,
        max_ms in 1u64..60_000,
        jitter in 0.0f64..=1.0,
        failures in 0u32..100,
    ) {
        let b = Backoff::new(Duration::from_millis(initial_ms), Duration::from_millis(max_ms))
            .jitter(jitter);
        let ceiling = b.ceiling(failures);
        // Never above the cap (raised to the first wait), never below the first wait
        // before jitter, never shrinking with more failures.
        prop_assert!(ceiling <= Duration::from_millis(max_ms.max(initial_ms)));
        prop_assert!(ceiling >= Duration::from_millis(initial_ms.min(max_ms.max(initial_ms))));
        prop_assert!(b.ceiling(failures + 1) >= ceiling);
        let d = b.delay(failures);
        prop_assert!(d <= ceiling);
        // The jittered wait is at least (1 − jitter) of the ceiling (1 µs of rounding).
        let floor = ceiling.mul_f64(1.0 - jitter);
        prop_assert!(d + Duration::from_micros(1) >= floor, "{d:?} < {floor:?}");
    }
}

proptest! {
    // Each case builds a runtime: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_retry_budget_allows_exactly_its_floor_plus_its_share_of_calls(
        window_s in 1u64..30,
        min_per_sec in 0u32..50,
        ratio_milli in 0u32..2_000,
        calls in 0u64..500,
        wanted in 0u64..2_000,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("a runtime");
        rt.block_on(async {
            let ratio = ratio_milli as f32 / 1000.0;
            let budget = RetryBudget::new(Duration::from_secs(window_s), min_per_sec, ratio);
            for _ in 0..calls {
                budget.deposit();
            }
            // Within one moment: the floor for the whole window plus the ratio of the calls,
            // to the thousandth, rounded down; never one more.
            let earned_milli = u64::from(min_per_sec) * window_s * 1000
                + calls * u64::from((ratio * 1000.0).round() as u32);
            let allowed = earned_milli / 1000;
            let granted = (0..wanted).filter(|_| budget.withdraw()).count() as u64;
            prop_assert_eq!(granted, wanted.min(allowed));
            prop_assert_eq!(budget.available(), allowed - granted);
            // A whole window later, every call and retry is forgotten: the floor again.
            tokio::time::advance(Duration::from_secs(window_s) + Duration::from_millis(1)).await;
            prop_assert_eq!(budget.available(), u64::from(min_per_sec) * window_s);
            Ok(())
        })?;
    }
}
