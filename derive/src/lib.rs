//! `#[derive(Persist)]` for the `atomic-persist` crate.
//!
//! Use it through `atomic_persist` (feature `derive`, on by default), which re-exports it
//! beside the trait of the same name; the `atomic_persist::persist` module documents both.
//!
//! The derive only fills in the constants of `atomic_persist::Persist` (default path,
//! format, envelope, durability, schema version) and, with `migrate_from`, the step of
//! the migration chain (`Persist::decode`); every method a user calls is provided by the
//! trait itself, so a hand-written `impl Persist` behaves the same.
//!
//! ```ignore
//! #[derive(Serialize, Deserialize, Default, Persist)]
//! #[persist(path = "settings.toml", envelope = true, version = 2, migrate_from = SettingsV1)]
//! struct Settings { theme: String, font_size: u32 }
//! ```
//!
//! Keys: `path` (string, required), `app` (string: place a relative `path` in that
//! application's configuration directory; needs the `app-dirs` feature), `format`
//! (`"json"`, `"json-pretty"`, `"toml"`, `"yaml"`, `"ron"`, `"binary"`, or the path of a
//! unit struct implementing `atomic_persist::CustomFormat`; default from the extension),
//! `envelope` (bool), `hand_edits` (bool: load an enveloped JSON or TOML file a person
//! edited, see `PersistedBuilder::accept_hand_edits`), `create_dirs` (bool: a save creates
//! missing parent directories), `backup_before_migrate` (bool: keep a file of an older
//! schema before the migrated value replaces it, see
//! `PersistedBuilder::backup_before_migrate`), `durability` (`"full"`, `"data"`, `"none"`), `version` (integer,
//! needs `envelope = true`) and `migrate_from` (a type, needs `version`).
//!
//! Every mistake is a compile error spanned on the attribute (or on the `union`
//! keyword): see `tests/ui/` in `atomic-persist` for the messages.

use darling::{FromDeriveInput, FromMeta};
use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

/// Implements `atomic_persist::Persist` from the `#[persist(..)]` attribute.
#[proc_macro_derive(Persist, attributes(persist))]
pub fn derive_persist(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    if let syn::Data::Union(u) = &input.data {
        return syn::Error::new(
            u.union_token.span,
            "#[derive(Persist)] does not support unions: serde cannot store them; use a \
             struct or an enum",
        )
        .to_compile_error()
        .into();
    }
    match expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.write_errors().into(),
    }
}

/// The `#[persist(..)]` attribute.
#[derive(FromDeriveInput)]
#[darling(attributes(persist), supports(struct_any, enum_any))]
struct Options {
    ident: syn::Ident,
    generics: syn::Generics,
    #[darling(default)]
    path: Option<Str>,
    #[darling(default)]
    app: Option<Str>,
    #[darling(default)]
    format: Option<FormatKey>,
    #[darling(default)]
    envelope: Option<Bool>,
    #[darling(default)]
    hand_edits: Option<Bool>,
    #[darling(default)]
    create_dirs: Option<Bool>,
    #[darling(default)]
    backup_before_migrate: Option<Bool>,
    #[darling(default)]
    durability: Option<Str>,
    #[darling(default)]
    version: Option<SpannedInt>,
    #[darling(default)]
    migrate_from: Option<syn::Path>,
}

/// An integer literal that remembers where it was written, for error spans.
struct SpannedInt {
    value: u32,
    span: Span,
}

impl FromMeta for SpannedInt {
    fn from_value(value: &syn::Lit) -> darling::Result<Self> {
        match value {
            syn::Lit::Int(i) => Ok(SpannedInt {
                value: i.base10_parse().map_err(darling::Error::from)?,
                span: i.span(),
            }),
            other => Err(darling::Error::custom(
                "expected an integer: a schema version such as `version = 2`",
            )
            .with_span(other)),
        }
    }

    fn from_expr(expr: &syn::Expr) -> darling::Result<Self> {
        match expr {
            syn::Expr::Lit(lit) => Self::from_value(&lit.lit),
            other => Err(darling::Error::custom(
                "expected an integer: a schema version such as `version = 2`",
            )
            .with_span(other)),
        }
    }
}

/// A string literal, with a clear error for anything else.
struct Str(syn::LitStr);

impl FromMeta for Str {
    fn from_value(value: &syn::Lit) -> darling::Result<Self> {
        match value {
            syn::Lit::Str(s) => Ok(Str(s.clone())),
            other => Err(darling::Error::custom(
                "expected a string literal, such as \"settings.toml\"",
            )
            .with_span(other)),
        }
    }

    fn from_expr(expr: &syn::Expr) -> darling::Result<Self> {
        match expr {
            syn::Expr::Lit(lit) => Self::from_value(&lit.lit),
            other => Err(darling::Error::custom(
                "expected a string literal (constants and macros are not read here)",
            )
            .with_span(other)),
        }
    }
}

/// The `format` key: a built-in format's name, or the path of a unit struct (or
/// constant) that implements `atomic_persist::CustomFormat`.
enum FormatKey {
    Name(Str),
    Custom(syn::Path),
}

impl FromMeta for FormatKey {
    fn from_expr(expr: &syn::Expr) -> darling::Result<Self> {
        match expr {
            syn::Expr::Lit(_) => Str::from_expr(expr).map(FormatKey::Name),
            syn::Expr::Path(p) => Ok(FormatKey::Custom(p.path.clone())),
            other => Err(darling::Error::custom(
                "expected a format's name, such as \"toml\", or the path of a CustomFormat",
            )
            .with_span(other)),
        }
    }
}

impl std::ops::Deref for Str {
    type Target = syn::LitStr;

    fn deref(&self) -> &syn::LitStr {
        &self.0
    }
}

impl quote::ToTokens for Str {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        self.0.to_tokens(tokens);
    }
}

/// `true`, `false`, or the bare key (true), with a clear error for anything else.
struct Bool(bool);

impl FromMeta for Bool {
    fn from_word() -> darling::Result<Self> {
        Ok(Bool(true))
    }

    fn from_value(value: &syn::Lit) -> darling::Result<Self> {
        match value {
            syn::Lit::Bool(b) => Ok(Bool(b.value)),
            other => Err(darling::Error::custom("expected `true` or `false`").with_span(other)),
        }
    }

    fn from_expr(expr: &syn::Expr) -> darling::Result<Self> {
        match expr {
            syn::Expr::Lit(lit) => Self::from_value(&lit.lit),
            other => Err(darling::Error::custom("expected `true` or `false`").with_span(other)),
        }
    }
}

/// The `format` values and the `AnyFormat` variant of each.
const FORMATS: &[(&str, &str)] = &[
    ("json", "Json"),
    ("json-pretty", "JsonPretty"),
    ("toml", "Toml"),
    ("binary", "Binary"),
    ("yaml", "Yaml"),
    ("ron", "Ron"),
];

fn expand(input: &syn::DeriveInput) -> darling::Result<TokenStream> {
    let opts = Options::from_derive_input(input)?;
    let mut errors = darling::Error::accumulator();
    let format = format_tokens(&opts, &mut errors);
    let durability = durability_tokens(&opts, &mut errors);
    check_keys(&opts, &mut errors);
    errors.finish()?;

    let ident = &opts.ident;
    let path = opts.path.as_ref().expect("checked above");
    let app = match &opts.app {
        Some(a) => quote!(::core::option::Option::Some(#a)),
        None => quote!(::core::option::Option::None),
    };
    let flag = |b: &Option<Bool>| b.as_ref().is_some_and(|b| b.0);
    let (envelope, hand_edits) = (flag(&opts.envelope), flag(&opts.hand_edits));
    let create_dirs = flag(&opts.create_dirs);
    let backup = flag(&opts.backup_before_migrate);
    let version = opts.version.as_ref().map_or(0, |v| v.value);
    let (impl_generics, ty_generics, _) = opts.generics.split_for_impl();
    let where_clause = where_clause(&opts);
    let generic = !opts.generics.params.is_empty();
    let migrate = opts
        .migrate_from
        .as_ref()
        .map(|older| migrate_fn(older, generic));
    // For a type without parameters the version order is checked by a free constant,
    // which `cargo check` evaluates; a generic type checks it when `decode` is compiled.
    let order = match &opts.migrate_from {
        Some(older) if !generic => {
            let check = order_check(older, &quote!(#ident));
            quote!(const _: () = #check;)
        }
        _ => quote!(),
    };

    Ok(quote! {
        #order
        impl #impl_generics ::atomic_persist::Persist for #ident #ty_generics #where_clause {
            const PATH: &'static str = #path;
            const APP: ::core::option::Option<&'static str> = #app;
            const FORMAT: ::core::option::Option<::atomic_persist::AnyFormat> = #format;
            const ENVELOPE: bool = #envelope;
            const HAND_EDITS: bool = #hand_edits;
            const CREATE_DIRS: bool = #create_dirs;
            const BACKUP_BEFORE_MIGRATE: bool = #backup;
            const DURABILITY: ::atomic_persist::Durability = #durability;
            const VERSION: u32 = #version;
            #migrate
        }
    })
}

/// `Persist::FORMAT` for the `format` key: an unknown name is an error on it.
fn format_tokens(opts: &Options, errors: &mut darling::error::Accumulator) -> TokenStream {
    let f = match &opts.format {
        None => return quote!(::core::option::Option::None),
        // A `const` item: the format's reference is promoted to `'static`.
        Some(FormatKey::Custom(path)) => {
            return quote_spanned! {path.span()=>
                ::core::option::Option::Some(::atomic_persist::AnyFormat::custom(&#path))
            };
        }
        Some(FormatKey::Name(f)) => f,
    };
    match FORMATS.iter().find(|(name, _)| *name == f.value()) {
        // Spanned on the literal: with the format's feature off, the missing variant is
        // reported there.
        Some((_, variant)) => {
            let variant = syn::Ident::new(variant, f.span());
            quote_spanned! {f.span()=>
                ::core::option::Option::Some(::atomic_persist::AnyFormat::#variant)
            }
        }
        None => {
            let names: Vec<String> = FORMATS.iter().map(|(n, _)| format!("\"{n}\"")).collect();
            let message = format!(
                "unknown format `{}`: expected one of {}",
                f.value(),
                names.join(", ")
            );
            errors.push(darling::Error::custom(message).with_span(f));
            quote!(::core::option::Option::None)
        }
    }
}

/// `Persist::DURABILITY` for the `durability` key (default `Full`).
fn durability_tokens(opts: &Options, errors: &mut darling::error::Accumulator) -> TokenStream {
    match opts.durability.as_ref().map(|d| (d, d.value())) {
        None => quote!(::atomic_persist::Durability::Full),
        Some((_, v)) if v == "full" => quote!(::atomic_persist::Durability::Full),
        Some((_, v)) if v == "data" => quote!(::atomic_persist::Durability::Data),
        Some((_, v)) if v == "none" => quote!(::atomic_persist::Durability::None),
        Some((d, v)) => {
            let message =
                format!("unknown durability `{v}`: expected \"full\", \"data\" or \"none\"");
            errors.push(darling::Error::custom(message).with_span(d));
            quote!(::atomic_persist::Durability::Full)
        }
    }
}

/// The rules between keys: `version` needs the envelope, `migrate_from` a `version`,
/// every type a `path`, and `app` the `app-dirs` feature.
fn check_keys(opts: &Options, errors: &mut darling::error::Accumulator) {
    let envelope = opts.envelope.as_ref().is_some_and(|b| b.0);
    if let Some(v) = &opts.version
        && !envelope
    {
        errors.push(
            darling::Error::custom(
                "`version` needs `envelope = true`: without the envelope the schema \
                     version is not stored in the file",
            )
            .with_span(&v.span),
        );
    }
    if let Some(m) = &opts.migrate_from
        && opts.version.is_none()
    {
        errors.push(
            darling::Error::custom(
                "`migrate_from` needs `version`: the version this type reads and writes",
            )
            .with_span(m),
        );
    }
    if opts.path.is_none() {
        errors.push(
            darling::Error::custom(
                "#[derive(Persist)] needs the file: add #[persist(path = \"...\")] (relative \
                 to the working directory, or to the `app`'s configuration directory)",
            )
            .with_span(&opts.ident),
        );
    }
    if let Some(a) = &opts.app
        && !cfg!(feature = "app-dirs")
    {
        errors.push(
            darling::Error::custom(
                "`app` needs the `app-dirs` feature of atomic-persist (it finds the \
                 configuration directory with the `directories` crate)",
            )
            .with_span(a),
        );
    }
}

/// The impl's `where` clause: the type's own, plus for a generic type the trait's
/// supertraits (for whichever parameters serde's derive needs them) and, for a generic
/// chain, the older type being `Persist` under its own bounds.
fn where_clause(opts: &Options) -> Option<syn::WhereClause> {
    let mut clause = opts.generics.where_clause.clone();
    if opts.generics.params.is_empty() {
        return clause;
    }
    let (ident, (_, ty_generics, _)) = (&opts.ident, opts.generics.split_for_impl());
    let predicates = &mut clause
        .get_or_insert_with(|| syn::parse_quote!(where))
        .predicates;
    predicates.push(syn::parse_quote! {
        #ident #ty_generics: ::atomic_persist::__private::serde::Serialize
            + ::atomic_persist::__private::serde::de::DeserializeOwned
    });
    if let Some(older) = &opts.migrate_from {
        let bound = quote_spanned!(older.span()=> #older: ::atomic_persist::Persist);
        predicates.push(syn::parse_quote!(#bound));
    }
    clause
}

/// `assert!` that `older`'s version is below `this` one's, spanned on `older`.
fn order_check(older: &syn::Path, this: &TokenStream) -> TokenStream {
    quote_spanned! {older.span()=>
        ::core::assert!(
            <#older as ::atomic_persist::Persist>::VERSION
                < <#this as ::atomic_persist::Persist>::VERSION,
            "`migrate_from` must name a type with a lower `version`"
        )
    }
}

/// The migration step: a file older than this type is read as `older` (which follows
/// its own chain) and converted with `From`.
fn migrate_fn(older: &syn::Path, generic: bool) -> TokenStream {
    // Spans on the attribute's type, so a missing `From` or `Persist` impl is reported
    // where the user wrote `migrate_from`.
    let span = older.span();
    let from = quote_spanned! {span=>
        <Self as ::core::convert::From<#older>>::from(older)
    };
    let decode_older = quote_spanned! {span=>
        <#older as ::atomic_persist::Persist>::decode(found, payload)
    };
    let order = if generic {
        let check = order_check(older, &quote!(Self));
        quote!(const { #check };)
    } else {
        quote!()
    };
    quote! {
        fn decode(
            found: u32,
            payload: ::atomic_persist::persist::Payload<'_>,
        ) -> ::atomic_persist::Result<Self> {
            #order
            if found < <Self as ::atomic_persist::Persist>::VERSION {
                let older = #decode_older?;
                return ::core::result::Result::Ok(#from);
            }
            ::atomic_persist::persist::decode_current::<Self>(found, payload)
        }
    }
}
