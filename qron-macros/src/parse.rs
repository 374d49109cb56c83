//! The attribute's arguments: `executor = "…"`, `max_attempts = 5`, `timeout = "30s"`,
//! `concurrency = 10`, `backoff(base = "1s", max = "1h")`, `history = "failed"`, `priority = 0`,
//! `name = "…"`,
//! `crate = "…"`.

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::{LitInt, LitStr, Token};

use crate::duration::parse_micros;

mod kw {
    syn::custom_keyword!(executor);
    syn::custom_keyword!(max_attempts);
    syn::custom_keyword!(timeout);
    syn::custom_keyword!(concurrency);
    syn::custom_keyword!(backoff);
    syn::custom_keyword!(name);
    syn::custom_keyword!(base);
    syn::custom_keyword!(max);
    syn::custom_keyword!(history);
    syn::custom_keyword!(priority);
}

const VALID: &str =
    "executor, max_attempts, timeout, concurrency, backoff, history, priority, name, crate";

/// What the history keeps of an executor's finished jobs.
#[derive(Clone, Copy)]
pub(crate) enum History {
    All,
    Failed,
    None,
}

/// A value and where it was written.
pub(crate) struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

/// The parsed arguments; missing ones take qron's defaults.
#[derive(Default)]
pub(crate) struct Args {
    pub executor: Option<Spanned<String>>,
    pub max_attempts: Option<Spanned<i32>>,
    pub timeout_us: Option<Spanned<u64>>,
    pub concurrency: Option<Spanned<usize>>,
    pub backoff: Option<(u64, u64)>,
    pub history: Option<History>,
    pub priority: Option<u8>,
    pub name: Option<Spanned<String>>,
    pub krate: Option<syn::Path>,
    /// Every mistake found, reported together.
    pub errors: Vec<syn::Error>,
}

fn once<T>(slot: &mut Option<T>, value: T, span: Span, key: &str, errors: &mut Vec<syn::Error>) {
    if slot.is_some() {
        errors.push(syn::Error::new(
            span,
            format!("`{key}` is given twice; keep one"),
        ));
    } else {
        *slot = Some(value);
    }
}

fn duration(lit: &LitStr, key: &str) -> syn::Result<u64> {
    match parse_micros(&lit.value()) {
        Ok(0) => Err(syn::Error::new(
            lit.span(),
            format!("`{key}` must be longer than zero"),
        )),
        Ok(us) => Ok(us),
        Err(why) => Err(syn::Error::new(
            lit.span(),
            format!("`{key}`: {why}; write e.g. \"30 seconds\", \"5m\" or \"1h 30m\""),
        )),
    }
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = Args::default();
        while !input.is_empty() {
            let lookahead = input.lookahead1();
            if lookahead.peek(kw::executor) {
                let key = input.parse::<kw::executor>()?;
                input.parse::<Token![=]>()?;
                let lit = match input.parse::<LitStr>() {
                    Ok(lit) => lit,
                    Err(e) => {
                        return Err(syn::Error::new(
                            e.span(),
                            "`executor` takes a string literal, such as `executor = \"email\"`: \
                             the name is stored with every job and must not depend on code",
                        ));
                    }
                };
                let value = lit.value();
                if value.is_empty() || value.chars().count() > 255 {
                    args.errors.push(syn::Error::new(
                        lit.span(),
                        "`executor` must be 1 to 255 characters long",
                    ));
                }
                once(
                    &mut args.executor,
                    Spanned {
                        value,
                        span: lit.span(),
                    },
                    key.span,
                    "executor",
                    &mut args.errors,
                );
            } else if lookahead.peek(kw::max_attempts) {
                let key = input.parse::<kw::max_attempts>()?;
                input.parse::<Token![=]>()?;
                let lit = input.parse::<LitInt>()?;
                match lit.base10_parse::<i32>() {
                    Ok(n) if (1..=1000).contains(&n) => once(
                        &mut args.max_attempts,
                        Spanned {
                            value: n,
                            span: lit.span(),
                        },
                        key.span,
                        "max_attempts",
                        &mut args.errors,
                    ),
                    _ => args.errors.push(syn::Error::new(
                        lit.span(),
                        "`max_attempts` must be a whole number from 1 to 1000",
                    )),
                }
            } else if lookahead.peek(kw::timeout) {
                let key = input.parse::<kw::timeout>()?;
                input.parse::<Token![=]>()?;
                let lit = input.parse::<LitStr>()?;
                match duration(&lit, "timeout") {
                    Ok(us) => once(
                        &mut args.timeout_us,
                        Spanned {
                            value: us,
                            span: lit.span(),
                        },
                        key.span,
                        "timeout",
                        &mut args.errors,
                    ),
                    Err(e) => args.errors.push(e),
                }
            } else if lookahead.peek(kw::priority) {
                let key = input.parse::<kw::priority>()?;
                input.parse::<Token![=]>()?;
                let lit = input.parse::<LitInt>()?;
                match lit.base10_parse::<u8>() {
                    Ok(n) if n <= 9 => once(
                        &mut args.priority,
                        n,
                        key.span,
                        "priority",
                        &mut args.errors,
                    ),
                    _ => args.errors.push(syn::Error::new(
                        lit.span(),
                        "`priority` is a whole number from 0 (the highest) to 9 (the lowest)",
                    )),
                }
            } else if lookahead.peek(kw::concurrency) {
                let key = input.parse::<kw::concurrency>()?;
                input.parse::<Token![=]>()?;
                let lit = input.parse::<LitInt>()?;
                match lit.base10_parse::<usize>() {
                    Ok(n) if n > 0 => once(
                        &mut args.concurrency,
                        Spanned {
                            value: n,
                            span: lit.span(),
                        },
                        key.span,
                        "concurrency",
                        &mut args.errors,
                    ),
                    _ => args.errors.push(syn::Error::new(
                        lit.span(),
                        "`concurrency` must be a whole number above zero",
                    )),
                }
            } else if lookahead.peek(kw::backoff) {
                let key = input.parse::<kw::backoff>()?;
                let content;
                syn::parenthesized!(content in input);
                let (mut base, mut max) = (None, None);
                while !content.is_empty() {
                    let inner = content.lookahead1();
                    let (slot, name, span) = if inner.peek(kw::base) {
                        let k = content.parse::<kw::base>()?;
                        (&mut base, "base", k.span)
                    } else if inner.peek(kw::max) {
                        let k = content.parse::<kw::max>()?;
                        (&mut max, "max", k.span)
                    } else {
                        return Err(syn::Error::new(
                            content.span(),
                            "`backoff` takes `base` and `max`, such as `backoff(base = \"1s\", max = \"1h\")`",
                        ));
                    };
                    content.parse::<Token![=]>()?;
                    let lit = content.parse::<LitStr>()?;
                    match duration(&lit, name) {
                        Ok(us) => once(slot, us, span, name, &mut args.errors),
                        Err(e) => args.errors.push(e),
                    }
                    if !content.is_empty() {
                        content.parse::<Token![,]>()?;
                    }
                }
                let base = base.unwrap_or(1_000_000);
                let max = max.unwrap_or(3_600_000_000);
                if base > max {
                    args.errors.push(syn::Error::new(
                        key.span,
                        "`backoff`: `base` must not be longer than `max`",
                    ));
                }
                once(
                    &mut args.backoff,
                    (base, max),
                    key.span,
                    "backoff",
                    &mut args.errors,
                );
            } else if lookahead.peek(kw::history) {
                let key = input.parse::<kw::history>()?;
                input.parse::<Token![=]>()?;
                let lit = input.parse::<LitStr>()?;
                let history = match lit.value().as_str() {
                    "all" => Some(History::All),
                    "failed" => Some(History::Failed),
                    "none" => Some(History::None),
                    _ => None,
                };
                match history {
                    Some(h) => once(&mut args.history, h, key.span, "history", &mut args.errors),
                    None => args.errors.push(syn::Error::new(
                        lit.span(),
                        "`history` keeps finished jobs: write \"all\" (the default), \"failed\" or \"none\"",
                    )),
                }
            } else if lookahead.peek(kw::name) {
                let key = input.parse::<kw::name>()?;
                input.parse::<Token![=]>()?;
                let lit = input.parse::<LitStr>()?;
                match syn::parse_str::<syn::Ident>(&lit.value()) {
                    Ok(_) => once(
                        &mut args.name,
                        Spanned { value: lit.value(), span: lit.span() },
                        key.span,
                        "name",
                        &mut args.errors,
                    ),
                    Err(_) => args.errors.push(syn::Error::new(
                        lit.span(),
                        "`name` is the generated type's name and must be an identifier, such as `name = \"SendWelcome\"`",
                    )),
                }
            } else if lookahead.peek(Token![crate]) {
                let key = input.parse::<Token![crate]>()?;
                input.parse::<Token![=]>()?;
                let lit = input.parse::<LitStr>()?;
                match lit.parse::<syn::Path>() {
                    Ok(path) => once(&mut args.krate, path, key.span, "crate", &mut args.errors),
                    Err(_) => args.errors.push(syn::Error::new(
                        lit.span(),
                        "`crate` takes the path of the qron crate, such as `crate = \"my_qron\"`",
                    )),
                }
            } else if input.peek(syn::Ident) {
                let ident: syn::Ident = input.parse()?;
                args.errors.push(syn::Error::new(
                    ident.span(),
                    format!("unknown argument `{ident}`; the arguments are {VALID}"),
                ));
                // Skip its value, to report what follows too.
                if input.peek(Token![=]) {
                    input.parse::<Token![=]>()?;
                    input.parse::<syn::Expr>()?;
                } else if input.peek(syn::token::Paren) {
                    let _content;
                    syn::parenthesized!(_content in input);
                }
            } else {
                return Err(lookahead.error());
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(args)
    }
}
