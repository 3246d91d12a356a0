//! `#[derive(mp::Pod)]` and `#[derive(mp::Zeroable)]`: bytemuck's derives for mp's shared
//! memory, with the paths set to mp's re-export of bytemuck (`mp::bytemuck`), so that a crate
//! that depends on `mp-rs` needs no `bytemuck` of its own. See the README beside this file.
//!
//! The examples, and the compile-fail tests of what it refuses, are on the facade's
//! re-export (`mp::Pod`), since they need mp itself.
// Feature badges on docs.rs (`--cfg docsrs`, nightly's `doc_cfg`).
#![cfg_attr(docsrs, feature(doc_cfg))]

use proc_macro::TokenStream;
use proc_macro2::TokenStream as Tokens;
use quote::quote;
use syn::{Data, DeriveInput, Error, Fields, LitStr, Path, Type, parse_macro_input};

/// Derives bytemuck's `Pod` (plain data: any bytes are a valid value) through `mp::bytemuck`.
/// The struct must be `#[repr(C)]` or `#[repr(transparent)]`, its fields `Pod`, and it must
/// have no padding; it must also be `Copy` and `Zeroable` (derive `mp::Zeroable`).
#[proc_macro_derive(Pod, attributes(mp_pod, bytemuck))]
pub fn derive_pod(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(&input, Trait::Pod)
        .unwrap_or_else(Error::into_compile_error)
        .into()
}

/// Derives bytemuck's `Zeroable` (all zero bytes are a valid value) through `mp::bytemuck`.
/// Every field must be `Zeroable`.
#[proc_macro_derive(Zeroable, attributes(mp_pod, bytemuck))]
pub fn derive_zeroable(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(&input, Trait::Zeroable)
        .unwrap_or_else(Error::into_compile_error)
        .into()
}

#[derive(Clone, Copy, PartialEq)]
enum Trait {
    Pod,
    Zeroable,
}

fn expand(input: &DeriveInput, which: Trait) -> syn::Result<Tokens> {
    let name = &input.ident;
    let krate = crate_path(input)?;
    if !input.generics.params.is_empty() {
        return Err(Error::new_spanned(
            &input.generics,
            "mp's Pod and Zeroable derives take no generic types: implement the traits by hand",
        ));
    }
    let Data::Struct(data) = &input.data else {
        return Err(Error::new_spanned(
            name,
            "mp's Pod and Zeroable derives take structs only",
        ));
    };
    let types: Vec<&Type> = match &data.fields {
        Fields::Named(f) => f.named.iter().map(|f| &f.ty).collect(),
        Fields::Unnamed(f) => f.unnamed.iter().map(|f| &f.ty).collect(),
        Fields::Unit => Vec::new(),
    };
    let (bound, extra) = match which {
        Trait::Zeroable => (quote!(#krate::Zeroable), quote!()),
        Trait::Pod => {
            if !has_defined_layout(input)? {
                return Err(Error::new_spanned(
                    name,
                    "a Pod struct needs #[repr(C)] or #[repr(transparent)]: without it, Rust may \
                     reorder its fields",
                ));
            }
            let message = format!("`{name}` has padding bytes: a Pod type may have none");
            (
                quote!(#krate::Pod),
                quote! {
                    ::core::assert!(
                        ::core::mem::size_of::<#name>() == 0 #( + ::core::mem::size_of::<#types>() )*,
                        #message
                    );
                },
            )
        }
    };
    Ok(quote! {
        const _: () = {
            // Every field has the trait; the struct has no padding (Pod).
            #[allow(dead_code)]
            fn fields_have_the_trait() {
                fn has<T: #bound>() {}
                #( has::<#types>(); )*
            }
            #extra
        };
        // SAFETY: checked above, at build time, as bytemuck's own derive checks: every field
        // has the trait and (for Pod) the layout is defined and has no padding.
        unsafe impl #bound for #name {}
    })
}

/// `#[mp_pod(crate = "path")]` (or bytemuck's own spelling, `#[bytemuck(crate = "path")]`,
/// which code written for bytemuck's derives through mp already has), or `::mp::bytemuck`.
fn crate_path(input: &DeriveInput) -> syn::Result<Path> {
    let mut path: Path = syn::parse_quote!(::mp::bytemuck);
    let ours = |a: &&syn::Attribute| a.path().is_ident("mp_pod") || a.path().is_ident("bytemuck");
    for attr in input.attrs.iter().filter(ours) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                path = meta.value()?.parse::<LitStr>()?.parse()?;
                Ok(())
            } else {
                Err(meta.error("expected `crate = \"path\"`"))
            }
        })?;
    }
    Ok(path)
}

/// Whether the struct is `#[repr(C)]` or `#[repr(transparent)]` (with `packed` or `align` or
/// not).
fn has_defined_layout(input: &DeriveInput) -> syn::Result<bool> {
    let mut defined = false;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("repr")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("C") || meta.path.is_ident("transparent") {
                defined = true;
            }
            // `packed(2)`, `align(8)`: skip the argument.
            if meta.input.peek(syn::token::Paren) {
                let _content;
                syn::parenthesized!(_content in meta.input);
            }
            Ok(())
        })?;
    }
    Ok(defined)
}
