//! [`Errors`]: every error of one macro input, collected so that one compile shows them all.

use proc_macro2::Span;

/// Accumulates errors so that one compile shows all of them.
#[derive(Default)]
pub(crate) struct Errors {
    all: Option<syn::Error>,
    count: usize,
}

impl Errors {
    pub(crate) fn push(&mut self, e: syn::Error) {
        self.count += 1;
        match &mut self.all {
            Some(all) => all.combine(e),
            None => self.all = Some(e),
        }
    }

    pub(crate) fn at(&mut self, span: Span, msg: impl std::fmt::Display) {
        self.push(syn::Error::new(span, msg));
    }

    /// An error underlining all of `node` (a span of several tokens cannot be joined on stable).
    pub(crate) fn on(&mut self, node: impl quote::ToTokens, msg: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(node, msg));
    }

    /// How many errors were collected so far.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    pub(crate) fn finish(self) -> Result<(), syn::Error> {
        self.all.map_or(Ok(()), Err)
    }
}
