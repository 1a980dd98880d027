//! The reference shop: a short run with replicas killed loses nothing, the audit catches what
//! would be lost or applied twice, and the services' repeat rules hold on their own.

use std::time::Duration;

use examples::shop::audit::{invariants, Snapshot};
use examples::shop::inventory::{Inventory, InventoryAudit, InventoryError, Warehouse};
use examples::shop::local::{run, RunConfig};
use examples::shop::notifications::{Notice, Notices};
use examples::shop::orders::{Order, OrderList, OrderState};
use examples::shop::payments::{
    Charge, ChargeAudit, MemoryPayments, PaymentError, Payments, PaymentsAudit, TopUp, WalletAudit,
};
use examples::shop::users::{MemoryUsers, SignIn, SignUp, Users};
use examples::shop::ReserveRequest;
use rpc_core::{Code, Context};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_run_with_two_replicas_killed_loses_nothing() {
    let config = RunConfig {
        customers: 40,
        duration: Duration::from_millis(1500),
        seed: 3,
        kill: true,
        secure: false,
    };
    let outcome = run(&config).await.expect("the shop runs");
    println!("{}{}", outcome.report, outcome.summary);
    assert!(outcome.passed(), "{}{}", outcome.report, outcome.summary);
    assert!(outcome.snapshot.count(OrderState::Paid) > 0);
    assert!(outcome.summary.starts_with("shop: customers=40 orders="));
    assert!(outcome.summary.ends_with(" failed=0 invariants=ok"));
}

fn order(id: u64, state: OrderState, total: u64) -> Order {
    Order {
        order_id: id,
        account_id: 1,
        sku: "mug".into(),
        quantity: 1,
        total_cents: total,
        state: state as i32,
        reason: String::new(),
        notified: true,
    }
}

fn notice(order_id: u64, kind: &str) -> Notice {
    Notice {
        account_id: 1,
        order_id,
        kind: kind.into(),
        text: String::new(),
    }
}

fn charge(order_id: u64, amount: u64, refunded: bool) -> ChargeAudit {
    ChargeAudit {
        charge: Some(Charge {
            order_id,
            account_id: 1,
            amount_cents: amount,
        }),
        refunded,
        requests: 1,
    }
}

/// One paid order (1 mug for 500), one cancelled and refunded: consistent.
fn consistent() -> Snapshot {
    Snapshot {
        inventory: InventoryAudit {
            skus: vec![examples::shop::inventory::SkuAudit {
                sku: "mug".into(),
                initial: 10,
                restocked: 0,
                on_hand: 9,
                held: 0,
                sold: 1,
            }],
            holds: vec![],
            underflows: 0,
        },
        payments: PaymentsAudit {
            charges: vec![charge(1, 500, false), charge(2, 500, true)],
            wallets: vec![WalletAudit {
                account_id: 1,
                topped_up_cents: 2_000,
                balance_cents: 1_500,
            }],
        },
        orders: OrderList {
            orders: vec![
                order(1, OrderState::Paid, 500),
                order(2, OrderState::Cancelled, 500),
            ],
        },
        notices: Notices {
            notices: vec![notice(1, "paid"), notice(2, "cancelled")],
        },
    }
}

fn violated(s: &Snapshot) -> Vec<&'static str> {
    invariants(s)
        .into_iter()
        .filter(|c| !c.ok())
        .map(|c| c.name)
        .collect()
}

#[test]
fn the_audit_catches_what_a_lost_or_doubled_step_leaves_behind() {
    assert!(violated(&consistent()).is_empty());

    // The cancelled order was never refunded (a lost step of the cancel).
    let mut s = consistent();
    s.payments.charges[1].refunded = false;
    assert!(violated(&s).contains(&"refused and cancelled orders hold no stock and no charge"));

    // A paid order without its charge.
    let mut s = consistent();
    s.payments.charges.remove(0);
    assert!(violated(&s).contains(&"every paid order charged exactly once, for its total"));

    // Stock sold that no paid order accounts for (a confirm applied twice).
    let mut s = consistent();
    s.inventory.skus[0].sold = 2;
    s.inventory.skus[0].on_hand = 8;
    assert!(
        violated(&s).contains(&"stock = initial + restocked - sold to paid orders; nothing held")
    );

    // An order left pending, and one never notified.
    let mut s = consistent();
    s.orders.orders.push(order(3, OrderState::Pending, 0));
    s.notices.notices.remove(0);
    assert_eq!(
        violated(&s),
        ["every order final, notified of how it ended and of nothing else"]
    );

    // A paid order whose customer was also told it was refused.
    let mut s = consistent();
    s.notices.notices.push(notice(1, "refused"));
    assert_eq!(
        violated(&s),
        ["every order final, notified of how it ended and of nothing else"]
    );

    // A pending order that holds a live charge.
    let mut s = consistent();
    s.orders.orders.push(order(3, OrderState::Pending, 0));
    s.payments.charges.push(charge(3, 100, false));
    s.payments.wallets[0].topped_up_cents += 100;
    assert!(violated(&s).contains(&"every paid order charged exactly once, for its total"));

    // Money that appeared or vanished.
    let mut s = consistent();
    s.payments.wallets[0].balance_cents += 1;
    assert_eq!(violated(&s), ["every wallet = top-ups - live charges"]);
}

#[tokio::test(start_paused = true)]
async fn repeats_apply_once_and_an_unconfirmed_hold_expires() {
    // Holds expire by a clock that follows tokio's, which the test pauses.
    let start = tokio::time::Instant::now();
    let inventory = Warehouse::with_stock([("mug", 5)])
        .hold_ttl(Duration::from_millis(50))
        .clock(std::sync::Arc::new(move || {
            start.elapsed().as_millis() as u64
        }));
    let ctx = Context::default();
    let reserve = ReserveRequest {
        order_id: 7,
        sku: "mug".into(),
        quantity: 2,
    };
    // A repeat of a reservation returns the same hold, without holding twice.
    inventory.reserve(&ctx, reserve.clone()).await.unwrap();
    inventory.reserve(&ctx, reserve.clone()).await.unwrap();
    assert_eq!(inventory.check("mug".into()).await.unwrap().available, 3);
    // Unconfirmed, it expires (in the periodic sweep) and the units come back; a late confirm
    // is refused.
    tokio::time::advance(Duration::from_millis(120)).await;
    assert_eq!(inventory.expire_holds().await.unwrap(), 1);
    assert_eq!(inventory.expire_holds().await.unwrap(), 0);
    assert_eq!(inventory.check("mug".into()).await.unwrap().available, 5);
    assert!(matches!(
        inventory.confirm(7).await,
        Err(InventoryError::NoHold { order_id: 7 })
    ));
    // Given back, a hold is never made again for the order.
    assert!(matches!(
        inventory.reserve(&ctx, reserve.clone()).await,
        Err(InventoryError::NoHold { order_id: 7 })
    ));
    // Released before it held anything (a reservation delayed in the network), neither.
    inventory.release(11).await.unwrap();
    let delayed = ReserveRequest {
        order_id: 11,
        ..reserve.clone()
    };
    assert!(matches!(
        inventory.reserve(&ctx, delayed).await,
        Err(InventoryError::NoHold { order_id: 11 })
    ));
    // Confirmed twice, sold once; released, the units return.
    let other = ReserveRequest {
        order_id: 8,
        ..reserve
    };
    inventory.reserve(&ctx, other).await.unwrap();
    inventory.confirm(8).await.unwrap();
    inventory.confirm(8).await.unwrap();
    let audit = inventory.audit().await.unwrap();
    assert_eq!((audit.skus[0].on_hand, audit.skus[0].sold), (3, 2));
    inventory.release(8).await.unwrap();
    inventory.release(8).await.unwrap();
    assert_eq!(inventory.check("mug".into()).await.unwrap().available, 5);

    // A hold past its time and not swept yet cannot be confirmed either: it expires then.
    let late = ReserveRequest {
        order_id: 9,
        sku: "mug".into(),
        quantity: 1,
    };
    inventory.reserve(&ctx, late).await.unwrap();
    tokio::time::advance(Duration::from_millis(120)).await;
    assert!(matches!(
        inventory.confirm(9).await,
        Err(InventoryError::NoHold { order_id: 9 })
    ));
    assert_eq!(inventory.check("mug".into()).await.unwrap().available, 5);
    assert_eq!(inventory.expire_holds().await.unwrap(), 0);

    let payments = MemoryPayments::default();
    let top_up = TopUp {
        account_id: 1,
        top_up_id: 1,
        amount_cents: 1_000,
    };
    payments.top_up(&ctx, top_up.clone()).await.unwrap();
    payments.top_up(&ctx, top_up).await.unwrap();
    let charge = Charge {
        order_id: 7,
        account_id: 1,
        amount_cents: 600,
    };
    assert_eq!(
        payments.charge(charge.clone()).await.unwrap().balance_cents,
        400
    );
    assert_eq!(payments.charge(charge).await.unwrap().balance_cents, 400);
    let too_much = Charge {
        order_id: 8,
        account_id: 1,
        amount_cents: 600,
    };
    assert!(matches!(
        payments.charge(too_much).await,
        Err(PaymentError::Declined {
            balance_cents: 400,
            amount_cents: 600
        })
    ));
    payments.refund(7).await.unwrap();
    payments.refund(7).await.unwrap();
    let audit = payments.audit().await.unwrap();
    assert_eq!(audit.wallets[0].balance_cents, 1_000);
    assert_eq!(audit.charges[0].requests, 2);
    // A refund is final: the order cannot be charged again, and an order refunded before its
    // charge arrived (a charge delayed in the network) is never charged.
    let again = Charge {
        order_id: 7,
        account_id: 1,
        amount_cents: 600,
    };
    assert!(matches!(
        payments.charge(again).await,
        Err(PaymentError::Void { order_id: 7 })
    ));
    payments.refund(9).await.unwrap();
    let late = Charge {
        order_id: 9,
        account_id: 1,
        amount_cents: 100,
    };
    assert!(matches!(
        payments.charge(late).await,
        Err(PaymentError::Void { order_id: 9 })
    ));
    assert_eq!(
        payments.audit().await.unwrap().wallets[0].balance_cents,
        1_000
    );
}

/// A memory store whose reads yield to other tasks first, so that transactions interleave
/// between their read and their commit; counts the commits refused for a conflict.
#[derive(Default)]
struct Interleaving {
    inner: examples::shop::store::MemoryStore,
    conflicts: std::sync::atomic::AtomicU64,
}

impl examples::shop::store::Store for Interleaving {
    fn get(
        &self,
        key: &str,
    ) -> rpc_core::BoxFuture<'_, Result<Option<examples::shop::store::Versioned>, rpc_core::Status>>
    {
        self.inner.get(key)
    }

    fn get_many(
        &self,
        keys: &[&str],
    ) -> rpc_core::BoxFuture<
        '_,
        Result<Vec<Option<examples::shop::store::Versioned>>, rpc_core::Status>,
    > {
        let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        Box::pin(async move {
            tokio::task::yield_now().await;
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            self.inner.get_many(&keys).await
        })
    }

    fn commit(
        &self,
        expect: Vec<(String, u64)>,
        writes: Vec<examples::shop::store::Write>,
    ) -> rpc_core::BoxFuture<'_, Result<bool, rpc_core::Status>> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            let done = self.inner.commit(expect, writes).await?;
            if !done {
                self.conflicts
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(done)
        })
    }

    fn list(
        &self,
        prefix: &str,
    ) -> rpc_core::BoxFuture<'_, Result<Vec<examples::shop::store::Record>, rpc_core::Status>> {
        self.inner.list(prefix)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_transactions_on_one_record_lose_no_update() {
    use examples::shop::store::transact;

    let store = std::sync::Arc::new(Interleaving::default());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let store = store.clone();
        tasks.spawn(async move {
            for _ in 0..250 {
                transact(&*store, &["counter"], |tx| {
                    let n = tx.get::<u64>("counter")?.unwrap_or(0);
                    tx.put("counter", &(n + 1));
                    Ok::<_, rpc_core::Status>(())
                })
                .await
                .unwrap();
            }
        });
    }
    while let Some(t) = tasks.join_next().await {
        t.unwrap();
    }
    let total = transact(&*store, &["counter"], |tx| tx.get::<u64>("counter"))
        .await
        .unwrap();
    assert_eq!(total, Some(1000));
    // The transactions did interleave: some commits found the record changed and ran again.
    assert!(store.conflicts.load(std::sync::atomic::Ordering::Relaxed) > 0);
}

/// A password is checked, the same refusal for an unknown address and a wrong password, and
/// without a token signer signing in is refused as not set up.
#[tokio::test]
async fn sign_in_checks_the_password() {
    struct Counting;
    impl examples::shop::users::SessionTokens for Counting {
        fn issue(&self, account_id: u64) -> Result<String, rpc_core::Status> {
            Ok(format!("token-for-{account_id}"))
        }
    }
    let users = MemoryUsers::with_tokens(std::sync::Arc::new(Counting));
    let sign_up = SignUp {
        name: "Ada".into(),
        email: "ada@example.com".into(),
        password: "correct horse".into(),
    };
    let account = users.sign_up(sign_up).await.unwrap();
    let sign_in = |email: &str, password: &str| SignIn {
        email: email.into(),
        password: password.into(),
    };
    let session = users
        .sign_in(sign_in("ada@example.com", "correct horse"))
        .await
        .unwrap();
    assert_eq!(
        (session.account_id, session.token.as_str()),
        (account.id, "token-for-1")
    );
    let wrong = users
        .sign_in(sign_in("ada@example.com", "battery staple"))
        .await
        .unwrap_err();
    let unknown = users
        .sign_in(sign_in("bob@example.com", "correct horse"))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    assert_eq!(
        (wrong.code(), wrong.message()),
        (unknown.code(), unknown.message())
    );

    // Signing up again: the same password gets the account, another one only learns the
    // address is taken.
    let again = |password: &str| SignUp {
        name: "Ada".into(),
        email: "ada@example.com".into(),
        password: password.into(),
    };
    assert_eq!(
        users.sign_up(again("correct horse")).await.unwrap().id,
        account.id
    );
    let taken = users.sign_up(again("guess")).await.unwrap_err();
    assert_eq!(taken.code(), Code::AlreadyExists);

    let without = MemoryUsers::default()
        .sign_in(sign_in("ada@example.com", "correct horse"))
        .await
        .unwrap_err();
    assert_eq!(without.code(), Code::FailedPrecondition);
}

/// The secure shop: every service over mutual TLS, customers signed in, orders and payments
/// authorized. It loses nothing with replicas killed, every forbidden call is refused, and the
/// report counts what the auth layers decided.
#[cfg(feature = "secure")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secure_shop_refuses_what_customers_must_not_do() {
    let config = RunConfig {
        customers: 30,
        duration: Duration::from_millis(1500),
        seed: 5,
        kill: true,
        secure: true,
    };
    let outcome = run(&config).await.expect("the secure shop runs");
    println!("{}{}", outcome.report, outcome.summary);
    assert!(outcome.passed(), "{}{}", outcome.report, outcome.summary);
    assert!(outcome.snapshot.count(OrderState::Paid) > 0);
    let tally = &outcome.tally;
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(load(&tally.forbidden), 3 * 30);
    assert_eq!(load(&tally.forbidden_refused), 3 * 30);
    assert!(
        outcome
            .report
            .contains("security    mutual TLS between every process"),
        "{}",
        outcome.report
    );
}

/// Without the feature, `--secure` is refused with how to get it, not silently ignored.
#[cfg(not(feature = "secure"))]
#[tokio::test]
async fn secure_without_the_feature_is_an_error() {
    let config = RunConfig {
        secure: true,
        ..RunConfig::default()
    };
    let e = run(&config).await.unwrap_err();
    assert!(e.to_string().contains("--features secure"), "{e}");
}
