//! Properties over generated inputs (proptest): consistent hashing keeps every key whose
//! endpoint stays, and sends the same key to the same endpoint.

use proptest::prelude::*;
use rpc_core::Request;
use rpc_discovery::{
    BalanceConfig, BalancedChannel, EndpointSet, Instance, Strategy, Watch, HASH_KEY,
};

fn channel(addrs: &[String]) -> BalancedChannel {
    let set = EndpointSet::new(addrs.iter().map(|a| Instance::new("prop.Svc", a.clone())));
    let config = BalanceConfig::new().strategy(Strategy::ConsistentHash);
    BalancedChannel::with_config(Watch::fixed(set), config)
}

fn pick(channel: &BalancedChannel, key: &str) -> Option<String> {
    let mut req = Request::new("prop.Svc/M", "");
    req.metadata_mut().insert(HASH_KEY, key.to_owned());
    channel.pick(&req)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn an_endpoint_leaving_moves_only_its_own_keys(
        ports in prop::collection::btree_set(1u16..60_000, 2..8),
        keys in prop::collection::btree_set("[a-z0-9]{1,16}", 1..200),
        leaving in any::<prop::sample::Index>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let _guard = rt.enter();
        let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let gone = addrs[leaving.index(addrs.len())].clone();
        let rest: Vec<String> = addrs.iter().filter(|a| **a != gone).cloned().collect();
        let all = channel(&addrs);
        let fewer = channel(&rest);
        for key in &keys {
            let before = pick(&all, key);
            let after = pick(&fewer, key);
            prop_assert!(before.is_some() && after.is_some());
            // The same key twice: the same endpoint.
            prop_assert_eq!(pick(&all, key), before.clone());
            prop_assert_ne!(after.as_deref(), Some(gone.as_str()));
            if before.as_deref() != Some(gone.as_str()) {
                prop_assert_eq!(&after, &before, "key {} moved though its endpoint stayed", key);
            }
        }
    }
}
