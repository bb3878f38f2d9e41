//! Saving a value into a loaded TOML document without losing what a person wrote.
//!
//! The value is serialized to a fresh document, then merged into the loaded one: a value
//! that is unchanged keeps its text exactly (`1_000`, quotes, spacing), a changed value
//! is replaced but keeps the comments around it, keys that are gone are removed, and new
//! keys are appended. Tables written inline stay inline, and `[table]`s stay tables.

use serde::Serialize;
use toml_edit::{Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table, Value};

use crate::error::Result;
use crate::format::serialize_error;

/// `old` with `value` merged in, and its text.
pub(crate) fn merged<T: Serialize + ?Sized>(
    old: &DocumentMut,
    value: &T,
) -> Result<(DocumentMut, Vec<u8>)> {
    let error = |e: crate::error::BoxError| serialize_error("toml", e).unplaced();
    let text = toml::to_string(value).map_err(|e| error(e.into()))?;
    let new: DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| error(e.into()))?;
    let mut doc = old.clone();
    merge_table(doc.as_table_mut(), new.as_table());
    let bytes = doc.to_string().into_bytes();
    Ok((doc, bytes))
}

fn merge_table(old: &mut Table, new: &Table) {
    let gone: Vec<String> = old
        .iter()
        .map(|(k, _)| k.to_string())
        .filter(|k| !new.contains_key(k))
        .collect();
    for key in gone {
        old.remove(&key);
    }
    for (key, item) in new.iter() {
        match old.get_mut(key) {
            Some(existing) => merge_item(existing, item),
            None => {
                let mut item = item.clone();
                if let Item::Table(t) = &mut item {
                    t.set_position(None);
                }
                old.insert(key, item);
            }
        }
    }
}

fn merge_item(old: &mut Item, new: &Item) {
    match (&mut *old, new) {
        (Item::Table(o), Item::Table(n)) => merge_table(o, n),
        (Item::Table(o), Item::Value(Value::InlineTable(n))) => {
            merge_table(o, &n.clone().into_table())
        }
        (Item::Value(o), Item::Value(n)) => merge_value(o, n),
        (Item::Value(o @ Value::InlineTable(_)), Item::Table(n)) => {
            merge_value(o, &Value::InlineTable(n.clone().into_inline_table()))
        }
        (Item::ArrayOfTables(o), Item::ArrayOfTables(n)) if o.len() == n.len() => {
            merge_tables(o, n)
        }
        (o, n) => *o = n.clone(),
    }
}

fn merge_tables(old: &mut ArrayOfTables, new: &ArrayOfTables) {
    for (o, n) in old.iter_mut().zip(new.iter()) {
        merge_table(o, n);
    }
}

fn merge_value(old: &mut Value, new: &Value) {
    match (&mut *old, new) {
        (Value::InlineTable(o), Value::InlineTable(n)) => merge_inline(o, n),
        (Value::Array(o), Value::Array(n)) if o.len() == n.len() => merge_array(o, n),
        (o, n) if same_scalar(o, n) => {}
        (o, n) => {
            let decor = o.decor().clone();
            *o = n.clone();
            *o.decor_mut() = decor;
        }
    }
}

fn merge_inline(old: &mut InlineTable, new: &InlineTable) {
    let gone: Vec<String> = old
        .iter()
        .map(|(k, _)| k.to_string())
        .filter(|k| !new.contains_key(k))
        .collect();
    for key in gone {
        old.remove(&key);
    }
    for (key, value) in new.iter() {
        match old.get_mut(key) {
            Some(existing) => merge_value(existing, value),
            None => {
                old.insert(key, value.clone());
            }
        }
    }
}

fn merge_array(old: &mut Array, new: &Array) {
    for (i, n) in new.iter().enumerate() {
        if let Some(o) = old.get_mut(i) {
            merge_value(o, n);
        }
    }
}

fn same_scalar(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.value() == y.value(),
        (Value::Integer(x), Value::Integer(y)) => x.value() == y.value(),
        (Value::Float(x), Value::Float(y)) => {
            x.value() == y.value() || x.value().to_bits() == y.value().to_bits()
        }
        (Value::Boolean(x), Value::Boolean(y)) => x.value() == y.value(),
        (Value::Datetime(x), Value::Datetime(y)) => x.value() == y.value(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Config {
        name: String,
        port: u16,
        server: Server,
    }

    #[derive(Serialize)]
    struct Server {
        host: String,
        threads: u32,
    }

    #[test]
    fn unchanged_value_keeps_the_text_exactly() {
        let text = "# my app\nname = 'demo'   # the name\nport = 8_080\n\n\
                    # where it listens\n[server]\nhost = \"0.0.0.0\"\nthreads = 4\n";
        let doc: DocumentMut = text.parse().unwrap();
        let value = Config {
            name: "demo".into(),
            port: 8080,
            server: Server {
                host: "0.0.0.0".into(),
                threads: 4,
            },
        };
        let (_, bytes) = merged(&doc, &value).unwrap();
        assert_eq!(String::from_utf8(bytes).unwrap(), text);
    }

    #[test]
    fn changed_value_keeps_its_comment() {
        let text = "name = 'demo'   # the name\nport = 8_080\n[server]\nhost = \"h\"\nthreads = 4 # cores\n";
        let doc: DocumentMut = text.parse().unwrap();
        let value = Config {
            name: "demo".into(),
            port: 8080,
            server: Server {
                host: "h".into(),
                threads: 8,
            },
        };
        let (_, bytes) = merged(&doc, &value).unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            text.replace("threads = 4 ", "threads = 8 ")
        );
    }
}
