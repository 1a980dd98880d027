//! Simulated customers: each signs up and tops up a wallet, then until the time is up browses
//! the catalogue, places orders (some for products with little stock, some beyond its wallet)
//! and cancels some of those paid, topping up again after a declined payment (and leaving after
//! the third); at the end it reads what it was told.
//!
//! In the secure shop ([`Frontend::signs_in`]) a customer also signs in after signing up, sends
//! its token with every order, top-up and reading of its notices, and once tries what it must
//! not: to place an order for another customer's account, to read an order without its token,
//! and to read another customer's notices. All three must be refused.
//!
//! A customer retries an operation that failed for a reason of the transport (the stack's own
//! retries were not enough, or its retry budget was spent), as a shop's front end would, up to
//! [`ATTEMPTS`] times with a growing pause: every operation is idempotent, so this is safe. An
//! operation that still fails counts as failed.

use std::future::{Future, IntoFuture};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rpc_core::client::UnaryCall;
use rpc_core::middleware::auth::AUTHORIZATION;
use rpc_core::{Code, Status};
use tokio::time::Instant;

use super::catalogue::{CatalogueClient, Product};
use super::inventory::{InventoryClient, InventoryError};
use super::notifications::NotificationsClient;
use super::orders::{Order, OrderState, OrdersClient, PlaceOrder};
use super::payments::{PaymentError, PaymentsClient, TopUp};
use super::users::{SignIn, SignUp, UsersClient};
use super::wiring::{Stack, Wiring};

/// Stands for the gateway's client without the `http` feature (never made).
#[cfg(not(feature = "http"))]
#[derive(Debug)]
pub enum NoWeb {}

#[cfg(not(feature = "http"))]
impl NoWeb {
    async fn search(&self, _query: &str) -> Result<super::catalogue::Products, Status> {
        match *self {}
    }

    async fn product(&self, _sku: &str) -> Result<Product, Status> {
        match *self {}
    }

    async fn stock(&self, _sku: &str) -> Result<super::inventory::StockLevel, Status> {
        match *self {}
    }
}

/// How many times a customer tries one operation.
pub const ATTEMPTS: u32 = 8;

/// The shop's products: (SKU, name, price in cents, initial stock). The last two have little
/// stock, so that some orders are refused for it.
pub const PRODUCTS: &[(&str, &str, u64, u32)] = &[
    ("mug-red", "red ceramic mug", 1_200, 100_000),
    ("mug-blue", "blue ceramic mug", 1_200, 100_000),
    ("tea-green", "green tea 250 g", 900, 100_000),
    ("tea-black", "black tea 250 g", 800, 100_000),
    ("beans", "espresso beans 1 kg", 2_400, 100_000),
    ("kettle", "steel kettle", 4_900, 100_000),
    ("teapot", "glass teapot", 3_500, 100_000),
    ("tray", "oak tray", 2_900, 100_000),
    ("print", "limited print, signed", 15_000, 40),
    ("book", "first edition tea book", 9_000, 25),
];

/// Words customers search for.
const SEARCHES: &[&str] = &[
    "mug", "tea", "ceramic", "steel", "oak", "signed", "", "glass",
];

/// Counts of what the customers did.
#[derive(Debug, Default)]
pub struct Tally {
    /// Customers that finished their journey.
    pub customers: AtomicU64,
    /// Operations (a call the customer made, with its own repeats counted once).
    pub operations: AtomicU64,
    /// Operations that failed after every attempt.
    pub failed: AtomicU64,
    /// Repeats the customers made.
    pub repeats: AtomicU64,
    /// Orders placed (each order id once).
    pub placed: AtomicU64,
    /// Orders that ended paid (before any cancel).
    pub paid: AtomicU64,
    /// Paid orders then cancelled.
    pub cancelled: AtomicU64,
    /// Orders refused for stock.
    pub refused_stock: AtomicU64,
    /// Orders refused for payment.
    pub refused_payment: AtomicU64,
    /// Orders refused for another reason.
    pub refused_other: AtomicU64,
    /// Calls a customer made that it must not (the secure shop): another's account, no token.
    pub forbidden: AtomicU64,
    /// Of those, the ones refused with `Unauthenticated` or `PermissionDenied`.
    pub forbidden_refused: AtomicU64,
    /// Orders placed and followed to their end through `Orders/Watch` (one in ten).
    pub watched: AtomicU64,
    /// Of those, the ones whose watch ended in another state than their placing returned (a
    /// bug if ever non-zero).
    pub watch_disagreed: AtomicU64,
}

impl Tally {
    /// Orders refused, for any reason.
    pub fn refused(&self) -> u64 {
        self.refused_stock.load(Ordering::Relaxed)
            + self.refused_payment.load(Ordering::Relaxed)
            + self.refused_other.load(Ordering::Relaxed)
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// An error a customer may repeat the operation after: the transport's, not a refusal.
pub trait Transient {
    /// `true` for `Unavailable`, `DeadlineExceeded`, `ResourceExhausted`, `Aborted`,
    /// `Cancelled` and `Unknown`.
    fn transient(&self) -> bool;
}

impl Transient for Status {
    fn transient(&self) -> bool {
        matches!(
            self.code(),
            Code::Unavailable
                | Code::DeadlineExceeded
                | Code::ResourceExhausted
                | Code::Aborted
                | Code::Cancelled
                | Code::Unknown
        )
    }
}

impl Transient for PaymentError {
    fn transient(&self) -> bool {
        matches!(self, PaymentError::Rpc(s) if s.transient())
    }
}

impl Transient for InventoryError {
    fn transient(&self) -> bool {
        matches!(self, InventoryError::Rpc(s) if s.transient())
    }
}

/// The customer-facing clients (the shop's front end).
#[derive(Clone)]
pub struct Frontend {
    /// `shop.Users`.
    pub users: UsersClient<Stack>,
    /// `shop.Catalogue`.
    pub catalogue: CatalogueClient<Stack>,
    /// `shop.Inventory`.
    pub inventory: InventoryClient<Stack>,
    /// `shop.Orders`.
    pub orders: OrdersClient<Stack>,
    /// `shop.Payments`.
    pub payments: PaymentsClient<Stack>,
    /// `shop.Notifications`.
    pub notifications: NotificationsClient<Stack>,
    /// Customers sign in and send their token (the secure shop).
    pub signs_in: bool,
    /// Customers browse the catalogue and stock levels over HTTP through the shop's gateway.
    #[cfg(feature = "http")]
    pub web: Option<super::web::WebClient>,
}

impl std::fmt::Debug for Frontend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frontend").finish_non_exhaustive()
    }
}

impl Frontend {
    /// Clients of every service through `wiring`.
    ///
    /// # Errors
    /// The registry's, if a watch cannot start.
    pub async fn new(wiring: &Wiring) -> Result<Frontend, rpc_discovery::DiscoveryError> {
        Ok(Frontend {
            users: UsersClient::new(wiring.stack("shop.Users").await?),
            catalogue: CatalogueClient::new(wiring.stack("shop.Catalogue").await?),
            inventory: InventoryClient::new(wiring.stack("shop.Inventory").await?),
            orders: OrdersClient::new(wiring.stack("shop.Orders").await?),
            payments: PaymentsClient::new(wiring.stack("shop.Payments").await?),
            notifications: NotificationsClient::new(wiring.stack("shop.Notifications").await?),
            signs_in: false,
            #[cfg(feature = "http")]
            web: None,
        })
    }

    /// The gateway's client, when customers browse through it.
    #[cfg(feature = "http")]
    fn web(&self) -> Option<&super::web::WebClient> {
        self.web.as_ref()
    }

    /// Without the `http` feature there is no gateway.
    #[cfg(not(feature = "http"))]
    fn web(&self) -> Option<&NoWeb> {
        None
    }

    /// Customers sign in after signing up and send their token with orders and top-ups.
    #[must_use]
    pub fn signing_in(mut self) -> Frontend {
        self.signs_in = true;
        self
    }
}

/// `call` with `authorization: Bearer TOKEN` when there is a token.
fn bearer<S, Req, Resp, E>(
    call: UnaryCall<S, Req, Resp, E>,
    token: Option<&str>,
) -> UnaryCall<S, Req, Resp, E> {
    match token {
        Some(token) => call.metadata(AUTHORIZATION, format!("Bearer {token}")),
        None => call,
    }
}

/// Counts a call that must be refused, and whether it was.
fn forbidden<T>(tally: &Tally, what: &str, result: Result<T, Status>) {
    bump(&tally.forbidden);
    match result {
        Err(e) if matches!(e.code(), Code::Unauthenticated | Code::PermissionDenied) => {
            bump(&tally.forbidden_refused);
        }
        Err(e) => eprintln!(
            "customer: {what}: refused, but with {}: {}",
            e.code(),
            e.message()
        ),
        Ok(_) => eprintln!("customer: {what}: was allowed"),
    }
}

/// Runs `op` until it succeeds, fails for good, or [`ATTEMPTS`] runs out, counting it in `tally`.
///
/// # Errors
/// The last error; the operation counts as failed only if it is transient (a refusal is an
/// answer).
pub async fn attempt<T, E, F, Fut>(tally: &Tally, what: &str, mut op: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: IntoFuture<Output = Result<T, E>>,
    E: Transient + std::fmt::Display,
{
    bump(&tally.operations);
    let mut pause = Duration::from_millis(20);
    let mut tries = 1;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if e.transient() && tries < ATTEMPTS => {
                bump(&tally.repeats);
                tracing::info!(what, tries, error = %e, "repeating an operation");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(640));
                tries += 1;
            }
            Err(e) => {
                if e.transient() {
                    // The first few are printed; the report counts them all.
                    if tally.failed.fetch_add(1, Ordering::Relaxed) < 10 {
                        eprintln!("customer operation failed for good: {what}: {e}");
                    }
                }
                return Err(e);
            }
        }
    }
}

/// Runs `place` and `watch` together: the watch is abandoned if the placing fails (the order may
/// never exist), else awaited to its end.
async fn place_watched<P, W, T, E>(
    place: P,
    watch: W,
) -> (Result<T, E>, Option<Result<Order, Status>>)
where
    P: Future<Output = Result<T, E>>,
    W: Future<Output = Result<Order, Status>>,
{
    let mut place = std::pin::pin!(place);
    let mut watch = std::pin::pin!(watch);
    let mut watched = None;
    let placed = loop {
        tokio::select! {
            placed = &mut place => break placed,
            seen = &mut watch, if watched.is_none() => watched = Some(seen),
        }
    };
    if placed.is_ok() && watched.is_none() {
        watched = Some(watch.await);
    }
    (placed, watched)
}

/// Follows order `id` through `Orders/Watch` until it is settled, opening the watch again after
/// an error of the transport (a replica may die under it); returns the order as it settled.
async fn follow(
    orders: &OrdersClient<Stack>,
    tally: &Tally,
    id: u64,
    token: Option<&str>,
) -> Result<Order, Status> {
    attempt(tally, "watch order", || async move {
        let mut call = orders.watch(id);
        if let Some(token) = token {
            call = call.metadata(AUTHORIZATION, format!("Bearer {token}"));
        }
        let mut updates = call.await?;
        let mut last = None;
        while let Some(order) = updates.message().await? {
            last = Some(order);
        }
        last.filter(|o| o.state != OrderState::Pending as i32)
            .ok_or_else(|| Status::internal("the watch ended before the order was settled"))
    })
    .await
}

/// A small deterministic generator (SplitMix64), so a run is the same journey every time.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `lo..hi` (`lo` if the range is empty).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo)
    }

    /// `true` with probability `percent` %.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.range(0, 100) < percent
    }
}

/// One customer's whole journey, until `end`. Errors are counted in `tally`; a customer whose
/// sign-up fails for good stops there.
pub async fn customer(front: Frontend, tally: &Tally, n: u64, seed: u64, end: Instant) {
    let mut rng = Rng::new(seed ^ n.wrapping_mul(0x2545_f491_4f6c_dd1d));
    let sign_up = SignUp {
        name: format!("customer {n}"),
        email: format!("customer{n}@example.com"),
        password: format!("secret-{:016x}", rng.next_u64()),
    };
    let Ok(account) = attempt(tally, "sign up", || front.users.sign_up(sign_up.clone())).await
    else {
        return;
    };
    let mut token = None;
    if front.signs_in {
        let sign_in = SignIn {
            email: sign_up.email.clone(),
            password: sign_up.password.clone(),
        };
        let Ok(session) = attempt(tally, "sign in", || front.users.sign_in(sign_in.clone())).await
        else {
            return;
        };
        token = Some(session.token);
        // What a customer must not do: each is refused before anything changes. (Repeated, as
        // any operation, after an error of the transport: only the answer tells.)
        let other = PlaceOrder {
            order_id: (n << 20) | 0xf_ffff,
            account_id: account.id + 1,
            sku: PRODUCTS[0].0.to_owned(),
            quantity: 1,
        };
        let place = attempt(tally, "order for another account", || {
            bearer(front.orders.place(other.clone()), token.as_deref())
        })
        .await;
        forbidden(tally, "an order for another account", place);
        let get = attempt(tally, "order without a token", || {
            front.orders.get((n << 20) | 1)
        })
        .await;
        forbidden(tally, "reading an order without a token", get);
        let notices = attempt(tally, "another customer's notices", || {
            bearer(front.notifications.sent(account.id + 1), token.as_deref())
        })
        .await;
        forbidden(tally, "reading another customer's notices", notices);
    }
    let token = token.as_deref();
    // Most wallets cover many orders; one in five holds little, so some payments are declined.
    let mut top_ups = 0u64;
    let mut declined = 0;
    let mut orders = 0u64;
    let mut unfinished = Vec::new();
    while Instant::now() < end {
        if declined == top_ups {
            // The first top-up, or one after a declined payment; a customer declined three times
            // leaves.
            if top_ups == 3 {
                break;
            }
            let amount = if rng.chance(20) {
                rng.range(1_000, 5_000)
            } else {
                rng.range(100_000, 400_000)
            };
            top_ups += 1;
            let top_up = TopUp {
                account_id: account.id,
                top_up_id: (n << 20) | top_ups,
                amount_cents: amount,
            };
            if attempt(tally, "top up", || {
                bearer(front.payments.top_up(top_up.clone()), token)
            })
            .await
            .is_err()
            {
                break;
            }
        }
        let search = SEARCHES[rng.range(0, SEARCHES.len() as u64) as usize].to_owned();
        let found = match front.web() {
            Some(web) => attempt(tally, "search", || web.search(&search)).await,
            None => attempt(tally, "search", || front.catalogue.search(search.clone())).await,
        };
        // One in ten orders is for a scarce product, whatever the search found.
        let product: Option<Product> = match found {
            Ok(list) if !list.products.is_empty() && !rng.chance(10) => {
                let i = rng.range(0, list.products.len() as u64) as usize;
                list.products.into_iter().nth(i)
            }
            Ok(_) => {
                let (sku, ..) =
                    PRODUCTS[rng.range(PRODUCTS.len() as u64 - 2, PRODUCTS.len() as u64) as usize];
                match front.web() {
                    Some(web) => attempt(tally, "product", || web.product(sku)).await.ok(),
                    None => attempt(tally, "product", || front.catalogue.get(sku.to_owned()))
                        .await
                        .ok(),
                }
            }
            Err(_) => None,
        };
        let Some(product) = product else { continue };
        match front.web() {
            Some(web) => {
                let _ = attempt(tally, "check stock", || web.stock(&product.sku)).await;
            }
            None => {
                let _ = attempt(tally, "check stock", || {
                    front.inventory.check(product.sku.clone())
                })
                .await;
            }
        }
        orders += 1;
        let request = PlaceOrder {
            order_id: (n << 20) | orders,
            account_id: account.id,
            sku: product.sku.clone(),
            quantity: rng.range(1, 4) as u32,
        };
        bump(&tally.placed);
        let place = attempt(tally, "place order", || {
            bearer(front.orders.place(request.clone()), token)
        });
        // One in ten orders the customer follows as it is placed, as an order page would.
        let placed = if rng.chance(10) {
            let (placed, watched) =
                place_watched(place, follow(&front.orders, tally, request.order_id, token)).await;
            if let (Ok(order), Some(Ok(seen))) = (&placed, watched) {
                bump(&tally.watched);
                if seen.state != order.state {
                    bump(&tally.watch_disagreed);
                    eprintln!(
                        "customer: order {} was placed {:?} but its watch ended {:?}",
                        order.order_id, order.state, seen.state
                    );
                }
            }
            placed
        } else {
            place.await
        };
        let Ok(order) = placed else {
            // Counted as failed; placed again at the end, so that it does not stay half-done.
            unfinished.push(request);
            continue;
        };
        match OrderState::try_from(order.state) {
            Ok(OrderState::Paid) => {
                bump(&tally.paid);
                if rng.chance(15) {
                    let id = order.order_id;
                    let cancel = || bearer(front.orders.cancel(id), token);
                    if let Ok(o) = attempt(tally, "cancel order", cancel).await {
                        if o.state == OrderState::Cancelled as i32 {
                            bump(&tally.cancelled);
                        }
                    }
                }
            }
            Ok(OrderState::Refused) => match order.reason.as_str() {
                "out of stock" => bump(&tally.refused_stock),
                "payment declined" => {
                    bump(&tally.refused_payment);
                    declined += 1;
                }
                _ => bump(&tally.refused_other),
            },
            _ => {}
        }
        // Thinking before the next order.
        tokio::time::sleep(Duration::from_millis(rng.range(20, 120))).await;
    }
    for request in unfinished {
        let _ = attempt(tally, "place order again", || {
            bearer(front.orders.place(request.clone()), token)
        })
        .await;
    }
    let id = account.id;
    let _ = attempt(tally, "read notices", || {
        bearer(front.notifications.sent(id), token)
    })
    .await;
    bump(&tally.customers);
}
