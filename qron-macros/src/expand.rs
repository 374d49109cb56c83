//! Generation: the user's function as written, and beside it the job type, its `Job` impl and
//! its registration.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned as _;
use syn::{FnArg, ItemFn, ReturnType, Type};

use crate::parse::Args;

/// Expands `#[qron::job(args)] item`. On any mistake, the function is still emitted (so editors
/// keep working) together with every error found.
pub(crate) fn job(args: TokenStream, item: TokenStream) -> TokenStream {
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(e) => {
            let e = syn::Error::new(
                e.span(),
                "#[qron::job] goes on an `async fn`, such as `async fn email(msg: Welcome) -> Result<(), qron::JobError>`",
            );
            let err = e.to_compile_error();
            return quote! { #item #err };
        }
    };
    let args = match syn::parse2::<Args>(args) {
        Ok(a) => a,
        Err(e) => {
            let err = e.to_compile_error();
            return quote! { #func #err };
        }
    };
    match generate(&func, args) {
        Ok(extra) => quote! { #func #extra },
        Err(e) => {
            let err = e.to_compile_error();
            quote! { #func #err }
        }
    }
}

fn combine(errors: Vec<syn::Error>) -> Result<(), syn::Error> {
    let mut it = errors.into_iter();
    match it.next() {
        None => Ok(()),
        Some(mut first) => {
            for e in it {
                first.combine(e);
            }
            Err(first)
        }
    }
}

/// `send_welcome` → `SendWelcome`.
fn upper_camel(name: &str) -> String {
    name.split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect::<String>(),
                None => String::new(),
            }
        })
        .collect()
}

/// What an argument of the function is, by its type.
enum Argument<'a> {
    /// `qron::Context` (any path ending in `Context`).
    Context(&'a Type),
    /// `qron::State<T>`: the `T`.
    State(&'a Type),
    /// The payload.
    Payload(&'a Type),
}

impl Argument<'_> {
    fn ty(&self) -> &Type {
        match self {
            Argument::Context(t) | Argument::State(t) | Argument::Payload(t) => t,
        }
    }
}

/// Whether `path` names qron's `name`: `name` alone (as imported), or under the crate's path
/// (`qron::`, `::qron::`, or the `crate = "…"` option's). A user's own type of that name under
/// another path (`app::State<Step>`) is not qron's.
fn names_ours(path: &syn::Path, name: &str, krate: &syn::Path) -> bool {
    let idents: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    let Some((last, prefix)) = idents.split_last() else {
        return false;
    };
    if last != name {
        return false;
    }
    let krate: Vec<String> = krate.segments.iter().map(|s| s.ident.to_string()).collect();
    prefix.is_empty() && path.leading_colon.is_none() || prefix == krate || prefix == ["qron"]
}

/// The one type argument of a path's last segment (`State<T>`'s `T`), if it has exactly one.
fn one_type_argument(seg: &syn::PathSegment) -> Option<&Type> {
    match &seg.arguments {
        syn::PathArguments::AngleBracketed(args) => {
            match args.args.iter().collect::<Vec<_>>()[..] {
                [syn::GenericArgument::Type(inner)] => Some(inner),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Sorts an argument by its type: qron's `Context` (`Context` or `qron::Context`) is the
/// context, qron's `State<T>` a state, anything else the payload (a payload may be a type of
/// the application's named `State` or `Context`, as `State` without a type or `app::State<T>`).
/// A context or state by reference, and `qron::State` without one type, are errors.
fn classify<'a>(ty: &'a Type, krate: &syn::Path) -> syn::Result<Argument<'a>> {
    fn path(t: &Type) -> Option<&syn::Path> {
        match t {
            Type::Path(p) if p.qself.is_none() => Some(&p.path),
            _ => None,
        }
    }
    let context = |p: &syn::Path| {
        names_ours(p, "Context", krate) && p.segments.last().is_some_and(|s| s.arguments.is_empty())
    };
    let state = |p: &syn::Path| {
        names_ours(p, "State", krate) && p.segments.last().and_then(one_type_argument).is_some()
    };
    if let Type::Reference(r) = ty
        && let Some(p) = path(&r.elem)
        && (context(p) || state(p))
    {
        let name = if context(p) { "Context" } else { "State" };
        return Err(syn::Error::new_spanned(
            ty,
            format!("#[qron::job] passes `{name}` by value: write `{name}` without `&`"),
        ));
    }
    let Some(p) = path(ty) else {
        return Ok(Argument::Payload(ty));
    };
    if context(p) {
        return Ok(Argument::Context(ty));
    }
    if let Some(inner) = p.segments.last().and_then(one_type_argument)
        && state(p)
    {
        return Ok(Argument::State(inner));
    }
    // `qron::State` spelled out, without its one type: surely meant as a state.
    if names_ours(p, "State", krate) && p.segments.len() > 1 {
        return Err(syn::Error::new_spanned(
            ty,
            "`State` takes one type: `State<MyState>`",
        ));
    }
    Ok(Argument::Payload(ty))
}

/// The code beside the function.
pub(crate) fn generate(func: &ItemFn, args: Args) -> syn::Result<TokenStream> {
    let krate = args
        .krate
        .clone()
        .unwrap_or_else(|| syn::parse_quote!(::qron));
    let mut errors = args.errors;
    let sig = &func.sig;
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new(
            sig.fn_token.span,
            "#[qron::job] needs an `async fn`: write `async fn`",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(syn::Error::new(
            sig.generics.span(),
            "#[qron::job] functions cannot be generic: the worker must know the payload type; \
             declare one job per concrete type",
        ));
    }
    let mut arguments = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => errors.push(syn::Error::new(
                r.span(),
                "#[qron::job] functions cannot take `self`: use a free function, and give it \
                 shared values as `qron::State<T>` arguments",
            )),
            FnArg::Typed(t) => match classify(&t.ty, &krate) {
                Ok(a) => arguments.push(a),
                Err(e) => errors.push(e),
            },
        }
    }
    let contexts: Vec<&Argument> = arguments
        .iter()
        .filter(|a| matches!(a, Argument::Context(_)))
        .collect();
    if let [_, second, ..] = contexts.as_slice() {
        errors.push(syn::Error::new_spanned(
            second.ty(),
            "#[qron::job] functions take at most one `qron::Context`",
        ));
    }
    let payloads: Vec<&Type> = arguments
        .iter()
        .filter_map(|a| match a {
            Argument::Payload(t) => Some(*t),
            _ => None,
        })
        .collect();
    let payload_ty: Option<&Type> = match payloads.as_slice() {
        [] => {
            errors.push(syn::Error::new(
                sig.paren_token.span.join(),
                "#[qron::job] functions take a payload: `async fn email(msg: Welcome)`, with \
                 optionally a `ctx: qron::Context` and `qron::State<T>` arguments",
            ));
            None
        }
        [payload] => Some(payload),
        [_, extra, ..] => {
            errors.push(syn::Error::new_spanned(
                extra,
                "#[qron::job] functions take one payload: put the values in one struct; the \
                 other arguments may be a `qron::Context` and `qron::State<T>`s (the worker's \
                 `.state(value)`)",
            ));
            None
        }
    };
    if let ReturnType::Default = sig.output {
        errors.push(syn::Error::new(
            sig.ident.span(),
            "#[qron::job] functions return `Result<(), E>` where `E: Into<qron::JobError>`: \
             add `-> Result<(), qron::JobError>`",
        ));
    }
    let executor = match &args.executor {
        Some(e) => Some(e.value.clone()),
        None => {
            errors.push(syn::Error::new(
                Span::call_site(),
                "#[qron::job] needs an executor: `#[qron::job(executor = \"email\")]`",
            ));
            None
        }
    };
    combine(errors)?;
    let (Some(payload_ty), Some(executor)) = (payload_ty, executor) else {
        return Err(syn::Error::new(
            Span::call_site(),
            "unreachable: checked above",
        ));
    };

    let fn_name = &sig.ident;
    let vis = &func.vis;
    let type_name = match &args.name {
        Some(n) => format_ident!("{}", n.value, span = n.span),
        None => format_ident!(
            "{}",
            upper_camel(&fn_name.to_string()),
            span = fn_name.span()
        ),
    };
    let type_name_str = type_name.to_string();
    let max_attempts = match &args.max_attempts {
        Some(n) => {
            let v = n.value;
            quote!(#v)
        }
        None => quote!(#krate::DEFAULT_MAX_ATTEMPTS),
    };
    let timeout = match &args.timeout_us {
        Some(t) => {
            let us = t.value;
            quote!(#krate::__private::Duration::from_micros(#us))
        }
        None => quote!(#krate::DEFAULT_TIMEOUT),
    };
    let concurrency = match &args.concurrency {
        Some(c) => {
            let v = c.value;
            quote!(#v)
        }
        None => quote!(#krate::DEFAULT_CONCURRENCY),
    };
    let (base, max) = args.backoff.unwrap_or((1_000_000, 3_600_000_000));
    let priority = args.priority.unwrap_or(5);
    let history = match args.history {
        None | Some(crate::parse::History::All) => quote!(#krate::History::All),
        Some(crate::parse::History::Failed) => quote!(#krate::History::Failed),
        Some(crate::parse::History::None) => quote!(#krate::History::None),
    };
    let payload_span = payload_ty.span();
    let assert_payload = quote_spanned! {payload_span=>
        const _: () = #krate::__private::assert_payload::<#payload_ty>();
    };
    // The states are taken from the context before it moves into the call.
    let mut take_states = Vec::new();
    let mut assert_states = Vec::new();
    let mut state_types = Vec::new();
    let mut call_args = Vec::new();
    for (i, a) in arguments.iter().enumerate() {
        match a {
            Argument::Context(_) => call_args.push(quote!(ctx)),
            Argument::Payload(_) => call_args.push(quote!(payload)),
            Argument::State(ty) => {
                let var = format_ident!("__qron_state_{}", i);
                take_states.push(quote! {
                    let #var = #krate::__private::state::<#ty>(&ctx)?;
                });
                assert_states.push(quote_spanned! {ty.span()=>
                    const _: () = #krate::__private::assert_state::<#ty>();
                });
                state_types.push(quote!(#krate::__private::StateType::of::<#ty>()));
                call_args.push(quote!(#var));
            }
        }
    }
    let call = quote!({
        #(#take_states)*
        let _ = &ctx;
        #fn_name(#(#call_args),*)
    });
    let output_span = match &sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => sig.ident.span(),
    };
    let finish = quote_spanned! {output_span=>
        match #call.await {
            ::core::result::Result::Ok(()) => ::core::result::Result::Ok(()),
            ::core::result::Result::Err(e) => ::core::result::Result::Err(#krate::__private::into_job_error(e)),
        }
    };
    let doc = format!(
        "The job type of [`{fn_name}`]: executor `{executor}`. Enqueue with `{type_name_str}::schedule(expr, payload)`."
    );
    let doc_schedule = format!(
        "Enqueues a `{executor}` job through the default client (`qron::init`). The returned \
         builder sets a name, meta, start time, owner or conflict policy, and is awaited to run."
    );
    let doc_schedule_with = format!(
        "As [`{type_name_str}::schedule`], through an explicit client (`&client`), a transaction \
         (`&mut tx` or `&mut *tx`: the job is created if and when it commits), a connection or \
         a pool (`&pool`); with the default client's owner unless `.owner()` names another."
    );
    let doc_enqueue = format!(
        "Enqueues a `{executor}` job to run now (`{type_name_str}::schedule(\"@after 0s\", \
         payload)`), through the default client."
    );
    let doc_enqueue_with = format!(
        "As [`{type_name_str}::enqueue`], through an explicit client, a transaction, a \
         connection or a pool (see [`{type_name_str}::schedule_with`])."
    );
    let doc_schedule_many = format!(
        "Enqueues many `{executor}` jobs with a handful of statements, through the default \
         client; returns their ids in input order."
    );
    Ok(quote! {
        #[doc = #doc]
        #[derive(Debug, Clone, Copy, Default)]
        #vis struct #type_name;

        #[allow(dead_code)]
        impl #type_name {
            #[doc = #doc_schedule]
            #vis fn schedule(expr: &str, payload: #payload_ty) -> #krate::Enqueue<'static, Self> {
                #krate::__private::schedule::<Self>(expr, payload)
            }

            #[doc = #doc_enqueue]
            #vis fn enqueue(payload: #payload_ty) -> #krate::Enqueue<'static, Self> {
                #krate::__private::schedule::<Self>("@after 0s", payload)
            }

            #[doc = #doc_enqueue_with]
            #vis fn enqueue_with<'a>(
                via: impl ::core::convert::Into<#krate::Via<'a>>,
                payload: #payload_ty,
            ) -> #krate::Enqueue<'a, Self> {
                #krate::__private::schedule_with::<Self>(via, "@after 0s", payload)
            }

            #[doc = #doc_schedule_with]
            #vis fn schedule_with<'a>(
                via: impl ::core::convert::Into<#krate::Via<'a>>,
                expr: &str,
                payload: #payload_ty,
            ) -> #krate::Enqueue<'a, Self> {
                #krate::__private::schedule_with::<Self>(via, expr, payload)
            }

            #[doc = #doc_schedule_many]
            #vis fn schedule_many<'e, I>(
                items: I,
            ) -> impl ::core::future::Future<
                Output = #krate::Result<::std::vec::Vec<i64>>,
            > + ::core::marker::Send
            where
                I: ::core::iter::IntoIterator<Item = (&'e str, #payload_ty)>,
            {
                #krate::__private::schedule_many::<Self, I>(items)
            }
        }

        const _: () = {
            #assert_payload
            #(#assert_states)*

            impl #krate::Job for #type_name {
                type Payload = #payload_ty;
                const EXECUTOR: &'static str = #executor;
                const STATES: &'static [#krate::__private::StateType] = &[#(#state_types),*];
                const OPTIONS: #krate::JobOptions = #krate::JobOptions::new(
                    #max_attempts,
                    #timeout,
                    #concurrency,
                    #krate::Backoff::new(
                        #krate::__private::Duration::from_micros(#base),
                        #krate::__private::Duration::from_micros(#max),
                    ),
                )
                .with_history(#history)
                .with_priority(#priority);

                fn __run(
                    ctx: #krate::Context,
                    payload: ::core::option::Option<::std::string::String>,
                ) -> #krate::__private::HandlerFuture {
                    #krate::__private::Box::pin(async move {
                        let payload: #payload_ty = #krate::__private::decode(payload.as_deref())?;
                        #finish
                    })
                }
            }

            #krate::__private::inventory::submit! {
                #krate::__private::Registration::of::<#type_name>(
                    ::core::concat!(::core::module_path!(), "::", #type_name_str),
                )
            }
        };
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(args: TokenStream, item: TokenStream) -> String {
        job(args, item).to_string()
    }

    #[test]
    fn names_the_type_after_the_function() {
        assert_eq!(upper_camel("email"), "Email");
        assert_eq!(upper_camel("send_welcome_email"), "SendWelcomeEmail");
        let out = expand(
            quote!(executor = "email"),
            quote!(
                async fn send_welcome(msg: u32) -> Result<(), qron::JobError> {
                    Ok(())
                }
            ),
        );
        assert!(out.contains("struct SendWelcome"), "{out}");
        assert!(out.contains("\"email\""), "{out}");
        assert!(!out.contains("compile_error"), "{out}");
    }

    #[test]
    fn reports_every_mistake_and_keeps_the_function() {
        let out = expand(
            quote!(executor = "e", bogus = 1, max_attempts = 0),
            quote!(
                fn f(a: u32, b: u32, c: u32) {}
            ),
        );
        assert!(out.contains("fn f"), "{out}");
        for needle in [
            "unknown argument `bogus`",
            "max_attempts",
            "async fn",
            "one payload",
            "return",
        ] {
            assert!(out.contains(needle), "{needle} missing from {out}");
        }
    }

    #[test]
    fn a_payload_may_be_named_state_or_context() {
        // Regression: any type whose path ended in `State` was taken for `qron::State<T>`, so
        // a workflow's payload `State` (or `app::State<T>`) was refused.
        let ty = |t: TokenStream| syn::parse2::<Type>(t).unwrap_or_else(|e| panic!("{e}"));
        let qron: syn::Path = syn::parse_quote!(::qron);
        let kind = |t: &Type| match classify(t, &qron) {
            Ok(Argument::Context(_)) => "context",
            Ok(Argument::State(_)) => "state",
            Ok(Argument::Payload(_)) => "payload",
            Err(_) => "error",
        };
        for (t, want) in [
            (quote!(State), "payload"),
            (quote!(app::State<Step>), "payload"),
            (quote!(app::Context), "payload"),
            (quote!(State<Pool>), "state"),
            (quote!(qron::State<Pool>), "state"),
            (quote!(::qron::State<Pool>), "state"),
            (quote!(Context), "context"),
            (quote!(qron::Context), "context"),
            (quote!(qron::State), "error"),
            (quote!(&qron::Context), "error"),
        ] {
            assert_eq!(kind(&ty(t.clone())), want, "{t}");
        }
        let renamed: syn::Path = syn::parse_quote!(my_qron);
        let t = ty(quote!(my_qron::State<Pool>));
        assert!(matches!(classify(&t, &renamed), Ok(Argument::State(_))));
    }

    #[test]
    fn options_reach_the_impl() {
        let out = expand(
            quote!(
                executor = "e",
                max_attempts = 3,
                timeout = "30s",
                concurrency = 4,
                backoff(base = "2s", max = "1m"),
                name = "Custom",
                crate = "my_qron"
            ),
            quote!(
                pub async fn f(ctx: my_qron::Context, p: u32) -> Result<(), my_qron::JobError> {
                    Ok(())
                }
            ),
        );
        assert!(out.contains("pub struct Custom"), "{out}");
        assert!(out.contains("my_qron :: JobOptions :: new (3i32 , my_qron :: __private :: Duration :: from_micros (30000000u64)"), "{out}");
        assert!(
            out.contains("from_micros (2000000u64)") && out.contains("from_micros (60000000u64)"),
            "{out}"
        );
    }
}
