//! The shop's invariants, checked from the services' own `Audit` answers after a run.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use rpc_core::Status;
use tokio::time::Instant;

use super::inventory::InventoryAudit;
use super::journey::{attempt, Frontend, Tally};
use super::notifications::Notices;
use super::orders::{unfinished, Order, OrderList, OrderState};
use super::payments::PaymentsAudit;

/// What every service holds at the end of a run.
#[derive(Debug)]
pub struct Snapshot {
    /// `shop.Inventory/Audit`.
    pub inventory: InventoryAudit,
    /// `shop.Payments/Audit`.
    pub payments: PaymentsAudit,
    /// `shop.Orders/Audit`.
    pub orders: OrderList,
    /// `shop.Notifications/Audit`.
    pub notices: Notices,
}

impl Snapshot {
    /// Reads every service's audit. Waits first, up to `settle`, until no stock is held for an
    /// unconfirmed order (holds of orders abandoned half-way expire) and no order is unfinished
    /// (the orders replicas recover abandoned ones).
    ///
    /// # Errors
    /// A service that could not be reached.
    pub async fn take(
        front: &Frontend,
        tally: &Tally,
        settle: Duration,
    ) -> Result<Snapshot, Status> {
        let until = Instant::now() + settle;
        let inventory = loop {
            let a = attempt(tally, "audit inventory", || front.inventory.audit()).await?;
            let held = a.skus.iter().any(|s| s.held > 0);
            let open = attempt(tally, "audit orders", || front.orders.audit())
                .await?
                .orders
                .iter()
                .any(unfinished);
            if !(held || open) || Instant::now() >= until {
                break a;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        Ok(Snapshot {
            inventory,
            payments: attempt(tally, "audit payments", || front.payments.audit()).await?,
            orders: attempt(tally, "audit orders", || front.orders.audit()).await?,
            notices: attempt(tally, "audit notices", || front.notifications.audit()).await?,
        })
    }

    /// Orders by final state.
    pub fn count(&self, state: OrderState) -> usize {
        self.orders
            .orders
            .iter()
            .filter(|o| o.state == state as i32)
            .count()
    }
}

/// One invariant and what broke it.
#[derive(Debug)]
pub struct Check {
    /// What must hold.
    pub name: &'static str,
    /// Examples of what did not (empty: it holds).
    pub violations: Vec<String>,
}

impl Check {
    /// Whether it holds.
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }
}

fn check(name: &'static str, violations: Vec<String>) -> Check {
    Check { name, violations }
}

fn state(o: &Order) -> OrderState {
    OrderState::try_from(o.state).unwrap_or(OrderState::Pending)
}

/// Checks every invariant of the shop on `s`.
pub fn invariants(s: &Snapshot) -> Vec<Check> {
    let orders: BTreeMap<u64, &Order> = s.orders.orders.iter().map(|o| (o.order_id, o)).collect();
    let charges: HashMap<u64, _> = s
        .payments
        .charges
        .iter()
        .filter_map(|c| c.charge.as_ref().map(|ch| (ch.order_id, (ch, c))))
        .collect();
    let holds: HashMap<u64, _> = s.inventory.holds.iter().map(|h| (h.order_id, h)).collect();
    let mut notices: HashMap<u64, HashSet<&str>> = HashMap::new();
    for n in &s.notices.notices {
        notices
            .entry(n.order_id)
            .or_default()
            .insert(n.kind.as_str());
    }

    let mut negative = Vec::new();
    if s.inventory.underflows > 0 {
        negative.push(format!(
            "{} updates would have taken a level below zero",
            s.inventory.underflows
        ));
    }
    let mut sold_by_orders: HashMap<&str, u64> = HashMap::new();
    for o in orders.values().filter(|o| state(o) == OrderState::Paid) {
        *sold_by_orders.entry(o.sku.as_str()).or_default() += u64::from(o.quantity);
    }
    let mut stock = Vec::new();
    for sku in &s.inventory.skus {
        let sold = sold_by_orders.get(sku.sku.as_str()).copied().unwrap_or(0);
        if sku.on_hand + sold != sku.initial + sku.restocked || sku.sold != sold || sku.held != 0 {
            stock.push(format!(
                "{}: on hand {} held {} sold {} (paid orders: {sold}), initial {} restocked {}",
                sku.sku, sku.on_hand, sku.held, sku.sold, sku.initial, sku.restocked
            ));
        }
    }

    let mut charged_once = Vec::new();
    if charges.len() != s.payments.charges.len() {
        charged_once.push(format!(
            "{} charge records for {} orders",
            s.payments.charges.len(),
            charges.len()
        ));
    }
    let mut nothing_kept = Vec::new();
    let mut final_and_notified = Vec::new();
    for o in orders.values() {
        let id = o.order_id;
        let charge = charges.get(&id);
        let hold = holds.get(&id);
        match state(o) {
            OrderState::Paid => match charge {
                Some((ch, c)) if !c.refunded && ch.amount_cents == o.total_cents => {}
                Some((ch, c)) => charged_once.push(format!(
                    "order {id}: charge of {} (refunded: {}) for a total of {}",
                    ch.amount_cents, c.refunded, o.total_cents
                )),
                None => charged_once.push(format!("paid order {id} has no charge")),
            },
            OrderState::Refused | OrderState::Cancelled => {
                if charge.is_some_and(|(_, c)| !c.refunded) {
                    nothing_kept.push(format!("order {id} ({}) is still charged", state(o).name()));
                }
                if hold.is_some_and(|h| h.state == "held" || h.state == "confirmed") {
                    nothing_kept.push(format!(
                        "order {id} ({}) still holds stock",
                        state(o).name()
                    ));
                }
            }
            OrderState::Pending => {
                final_and_notified.push(format!("order {id} is still pending"));
                if charge.is_some_and(|(_, c)| !c.refunded) {
                    charged_once.push(format!("pending order {id} holds a live charge"));
                }
            }
        }
        let st = state(o);
        let told = notices.get(&id);
        if st != OrderState::Pending && !told.is_some_and(|k| k.contains(st.name())) {
            final_and_notified.push(format!("order {id} ({}) was never notified", st.name()));
        }
        // What a customer may have been told: a cancelled order was paid first.
        let allowed: &[&str] = match st {
            OrderState::Paid => &["paid"],
            OrderState::Cancelled => &["paid", "cancelled"],
            OrderState::Refused => &["refused"],
            OrderState::Pending => &[],
        };
        for kind in told.into_iter().flatten() {
            if !allowed.contains(kind) {
                final_and_notified.push(format!("order {id} ({}) was told {kind:?}", st.name()));
            }
        }
    }
    for id in charges.keys() {
        if !orders.contains_key(id) {
            charged_once.push(format!("a charge for order {id}, which does not exist"));
        }
    }
    for (id, h) in &holds {
        let live = h.state == "held" || h.state == "confirmed";
        if live && !orders.contains_key(id) {
            nothing_kept.push(format!(
                "stock {} for order {id}, which does not exist",
                h.state
            ));
        }
    }
    let mut live_charges: HashMap<u64, u64> = HashMap::new();
    for (ch, c) in charges.values() {
        if !c.refunded {
            *live_charges.entry(ch.account_id).or_default() += ch.amount_cents;
        }
    }
    let mut wallets = Vec::new();
    for w in &s.payments.wallets {
        let spent = live_charges.get(&w.account_id).copied().unwrap_or(0);
        if w.balance_cents + spent != w.topped_up_cents {
            wallets.push(format!(
                "account {}: balance {} + live charges {spent} != topped up {}",
                w.account_id, w.balance_cents, w.topped_up_cents
            ));
        }
    }
    vec![
        check("stock never negative", negative),
        check(
            "stock = initial + restocked - sold to paid orders; nothing held",
            stock,
        ),
        check(
            "every paid order charged exactly once, for its total",
            charged_once,
        ),
        check(
            "refused and cancelled orders hold no stock and no charge",
            nothing_kept,
        ),
        check(
            "every order final, notified of how it ended and of nothing else",
            final_and_notified,
        ),
        check("every wallet = top-ups - live charges", wallets),
    ]
}
