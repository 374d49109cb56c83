//! The `#[qron::job]` attribute. Use it through the `qron` crate, which documents it.

#![warn(missing_docs)]

use proc_macro::TokenStream;

mod duration;
mod expand;
mod parse;

/// Declares a typed job on an `async fn`. Documented on `qron::job`.
#[proc_macro_attribute]
pub fn job(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::job(args.into(), item.into()).into()
}
