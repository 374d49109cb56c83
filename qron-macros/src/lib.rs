//! Procedural macros of [qron](https://docs.rs/qron). Use them through `qron::job`.

use proc_macro::TokenStream;

/// Declares a typed job on an `async fn`. Documented on `qron::job`.
#[proc_macro_attribute]
pub fn job(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}
