#![cfg(all(feature = "json", feature = "toml", feature = "binary"))]
//! Property tests: any value survives a round trip through every format, plain and
//! enveloped, and through `Persisted`.

mod common;

use std::collections::BTreeMap;

use atomic_persist::{AnyFormat, Format, Persisted};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Record {
    id: i64,
    name: String,
    ratio: f64,
    flags: Vec<bool>,
    limit: Option<u32>,
    nested: Nested,
    counts: BTreeMap<String, i32>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Nested {
    label: String,
    values: Vec<i16>,
}

fn record() -> impl Strategy<Value = Record> {
    (
        any::<i64>(),
        any::<String>(),
        any::<f64>().prop_filter("finite", |f| f.is_finite()),
        proptest::collection::vec(any::<bool>(), 0..8),
        proptest::option::of(any::<u32>()),
        (
            any::<String>(),
            proptest::collection::vec(any::<i16>(), 0..8),
        ),
        proptest::collection::btree_map(any::<String>(), any::<i32>(), 0..6),
    )
        .prop_map(
            |(id, name, ratio, flags, limit, (label, values), counts)| Record {
                id,
                name,
                ratio,
                flags,
                limit,
                nested: Nested { label, values },
                counts,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_format_round_trips(r in record()) {
        for (_, format) in common::formats() {
            let mut bytes = Vec::new();
            format.serialize(&r, &mut bytes).unwrap();
            let back: Record = format.deserialize(&bytes).unwrap();
            prop_assert_eq!(&back, &r, "{:?}", format);
        }
    }

    #[test]
    fn persisted_round_trips_plain_and_enveloped(r in record(), envelope in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        for (ext, format) in common::formats() {
            let path = dir.path().join(format!("r.{ext}"));
            let mut p = Persisted::<Option<Record>>::builder(&path)
                .format(format)
                .envelope(envelope)
                .durability(atomic_persist::Durability::None)
                .open_or_default()
                .unwrap();
            if format == AnyFormat::Toml {
                // TOML's top level is a table: store the record itself.
                let mut q = Persisted::<Record>::builder(&path)
                    .format(format)
                    .envelope(envelope)
                    .open_or_else(|| r.clone())
                    .unwrap();
                q.commit().unwrap();
                let back = Persisted::<Record>::builder(&path).format(format).envelope(envelope).open().unwrap();
                prop_assert_eq!(back.get(), &r);
                prop_assert_eq!(back.meta().is_some(), envelope);
                continue;
            }
            p.set(Some(r.clone())).unwrap();
            let back = Persisted::<Option<Record>>::builder(&path)
                .format(format)
                .envelope(envelope)
                .open()
                .unwrap();
            prop_assert_eq!(back.get(), &Some(r.clone()), "{:?}", format);
            prop_assert_eq!(back.meta(), p.meta());
        }
    }
}
