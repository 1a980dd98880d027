//! `shop.reviews.Reviews`, defined IDL-first in `proto/reviews.proto`: `build.rs` generates the
//! messages, the [`Reviews`] trait, [`ReviewsClient`] and [`ReviewsServer`] with
//! `rpc_codec::build`, and [`ReviewBoard`] implements the trait like any `#[service]` trait.
//!
//! The `reviews` example serves it and calls it in all three codecs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rpc_core::{Context, Sender, Status};

/// What `build.rs` generated from `proto/reviews.proto`: package `shop.reviews` as the module
/// `generated::shop::reviews`.
#[allow(missing_docs, unreachable_pub, clippy::all)]
mod generated {
    rpc_core::include_protos!();
}

pub use generated::shop::reviews::post_review::{Author, Photo};
pub use generated::shop::reviews::{
    FlagReview, ListReviews, PostReview, Review, ReviewPage, ReviewStats, Reviews, ReviewsClient,
    ReviewsServer, Visibility,
};

/// The reviews, in memory.
#[derive(Debug, Clone, Default)]
pub struct ReviewBoard {
    state: Arc<Mutex<Board>>,
}

#[derive(Debug, Default)]
struct Board {
    /// By id, which grows with time: the newest last.
    reviews: BTreeMap<u64, Review>,
    flagged: u64,
}

impl ReviewBoard {
    /// An empty board.
    pub fn new() -> ReviewBoard {
        ReviewBoard::default()
    }

    fn board(&self) -> Result<std::sync::MutexGuard<'_, Board>, Status> {
        self.state
            .lock()
            .map_err(|_| Status::internal("the review board is poisoned"))
    }
}

impl Reviews for ReviewBoard {
    async fn post(&self, _ctx: &Context, request: PostReview) -> Result<Review, Status> {
        if !(1..=5).contains(&request.stars) {
            return Err(Status::invalid_argument(format!(
                "stars must be 1 to 5, not {}",
                request.stars
            )));
        }
        if request.sku.is_empty() {
            return Err(Status::invalid_argument("a review names its product (sku)"));
        }
        let mut board = self.board()?;
        let id = board.reviews.keys().next_back().map_or(1, |last| last + 1);
        let review = Review {
            id,
            review: Some(request),
            visibility: Visibility::Public as i32,
            flags: None,
        };
        board.reviews.insert(id, review.clone());
        Ok(review)
    }

    async fn list(&self, _ctx: &Context, request: ListReviews) -> Result<ReviewPage, Status> {
        let limit = if request.limit == 0 {
            20
        } else {
            request.limit as usize
        };
        let board = self.board()?;
        let of_sku: Vec<&Review> = board
            .reviews
            .values()
            .filter(|r| r.review.as_ref().is_some_and(|p| p.sku == request.sku))
            .collect();
        let stars: u32 = of_sku
            .iter()
            .filter_map(|r| r.review.as_ref().map(|p| p.stars))
            .sum();
        let average_stars = if of_sku.is_empty() {
            0.0
        } else {
            f64::from(stars) / of_sku.len() as f64
        };
        let reviews = of_sku
            .into_iter()
            .rev()
            .filter(|r| r.visibility() == Visibility::Public)
            .take(limit)
            .cloned()
            .collect();
        Ok(ReviewPage {
            reviews,
            average_stars,
        })
    }

    async fn flag(&self, _ctx: &Context, request: FlagReview) -> Result<(), Status> {
        let mut board = self.board()?;
        let review = board
            .reviews
            .get_mut(&request.id)
            .ok_or_else(|| Status::not_found(format!("no review {}", request.id)))?;
        let first = review.flags.is_none();
        review.flags = Some(review.flags.unwrap_or(0) + 1);
        review.set_visibility(Visibility::Hidden);
        if first {
            board.flagged += 1;
        }
        Ok(())
    }

    async fn browse(
        &self,
        _ctx: &Context,
        request: ListReviews,
        mut replies: Sender<Review>,
    ) -> Result<(), Status> {
        // A snapshot, so that no lock is held while the client takes its time.
        let reviews: Vec<Review> = self
            .board()?
            .reviews
            .values()
            .filter(|r| r.visibility() == Visibility::Public)
            .filter(|r| r.review.as_ref().is_some_and(|p| p.sku == request.sku))
            .cloned()
            .collect();
        for review in &reviews {
            replies.send(review).await?;
        }
        Ok(())
    }

    async fn stats(&self, _ctx: &Context) -> Result<ReviewStats, Status> {
        let board = self.board()?;
        let mut stats = ReviewStats {
            reviews: board.reviews.len() as u64,
            flagged: board.flagged,
            ..ReviewStats::default()
        };
        for r in board.reviews.values() {
            if let Some(p) = &r.review {
                *stats.per_sku.entry(p.sku.clone()).or_default() += 1;
            }
        }
        Ok(stats)
    }
}
